"""The engine's pure decisions, table by table."""

from __future__ import annotations

import pytest

from catalog.errors import DiskFullError
from toolkit.download.manager import check_free_space
from toolkit.download.plan import (
    MiB,
    Part,
    contiguous_end,
    parse_content_range,
    plan_parts,
    segment_size,
    split_largest,
)


@pytest.mark.parametrize(
    ("size", "connections", "per_connection", "expected"),
    [
        (400 * 1000 * 1000, 8, 1, 50 * 1000 * 1000),  # one segment per connection
        (400 * 1000 * 1000, 8, 8, 6_250_000),  # eight per connection
        (2 * 1024 * MiB, 8, 8, 16 * MiB),  # capped at max_segment
        (10 * MiB, 8, 8, 4 * MiB),  # at least min_segment
        (0, 8, 8, 4 * MiB),
    ],
)
def test_segment_size_adapts_to_the_file_within_bounds(
    size: int, connections: int, per_connection: int, expected: int
) -> None:
    assert (
        segment_size(size, connections, 4 * MiB, 16 * MiB if per_connection > 1 else 64 * MiB, per_connection)
        == expected
    )


@pytest.mark.parametrize("size", [1, 8 * MiB - 1, 8 * MiB, 8 * MiB + 1, 100 * MiB, 3 * 1024 * MiB + 7])
def test_parts_tile_the_file_exactly(size: int) -> None:
    parts = plan_parts(size, 8)
    assert parts[0].start == 0 and parts[-1].end == size
    assert all(a.end == b.start for a, b in zip(parts, parts[1:], strict=False))
    assert all(p.end > p.start for p in parts)


def test_small_file_is_one_part() -> None:
    assert plan_parts(1000, 8) == [Part(0, 1000)]


def test_split_takes_back_half_of_largest_remaining() -> None:
    a, b = Part(0, 100, done=90), Part(100, 200, done=20)
    new = split_largest([a, b], min_split=10)
    assert (b.end, new.start, new.end) == (160, 160, 200)
    assert a.end == 100


def test_split_refuses_when_halves_would_be_too_small() -> None:
    p = Part(0, 100, done=85)
    assert split_largest([p], min_split=10) is None
    assert p.end == 100


@pytest.mark.parametrize(
    ("parts", "cursor", "expected"),
    [
        ([Part(0, 10, 10), Part(10, 20, 5)], 0, 15),
        ([Part(0, 10, 4), Part(10, 20, 10)], 0, 4),
        ([Part(0, 10, 10), Part(10, 20, 10)], 20, 20),
        ([Part(10, 20, 10), Part(0, 10, 10)], 3, 20),  # order of the list does not matter
        ([Part(0, 10, 10), Part(10, 20, 0)], 10, 10),
    ],
)
def test_contiguous_end(parts: list[Part], cursor: int, expected: int) -> None:
    assert contiguous_end(parts, cursor) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("bytes 0-99/1000", (0, 99, 1000)), ("bytes 5-9/*", (5, 9, None)), ("bytes */1000", None), (None, None)],
)
def test_content_range(value: str | None, expected: tuple | None) -> None:
    assert parse_content_range(value) == expected


def test_free_space_error_names_needed_and_available(tmp_path) -> None:
    check_free_space(100, 1000, 10, tmp_path)
    with pytest.raises(DiskFullError) as e:
        check_free_space(5_000_000_000, 1_000_000_000, 0, tmp_path)
    assert (
        "5.0 GB needed" in str(e.value)
        and "1.0 GB available" in str(e.value)
        and str(tmp_path) in str(e.value)
    )
    assert e.value.exit_code == 7
