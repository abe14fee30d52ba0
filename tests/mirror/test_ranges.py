"""The mirror's Range parsing, as a table."""

from __future__ import annotations

import pytest

from toolkit.mirror.server import parse_range


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-99", (0, 100)),
        ("bytes=900-", (900, 1000)),
        ("bytes=900-5000", (900, 1000)),  # clamped to the file
        ("bytes=-100", (900, 1000)),  # the last 100 bytes
        ("bytes=1000-", "unsatisfiable"),
        ("bytes=5-4", "unsatisfiable"),
        ("bytes=-0", "unsatisfiable"),
        ("items=0-1", None),  # not bytes: ignored, the whole file is sent
        ("bytes=0-1,5-6", None),  # multiple ranges are not supported: the whole file
    ],
)
def test_range_header(header: str | None, expected: object) -> None:
    assert parse_range(header, 1000) == expected
