"""The prefix hasher digests the bytes that end up in the file, however the transfer rewrote them."""

from __future__ import annotations

import hashlib
from pathlib import Path

from toolkit.download.diskio import PrefixHasher

FIRST = b"real bytes " * 10_000
SECOND = b"other byte " * 10_000


def test_a_restart_that_begins_while_a_block_is_read_makes_the_hasher_start_over(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.write_bytes(FIRST)
    calls = []

    def written_end(cursor: int) -> tuple[int, int]:
        calls.append(cursor)
        if len(calls) == 2:  # right after the first read: the transfer starts again and writes other bytes
            data.write_bytes(SECOND)
        return len(FIRST), 0 if len(calls) < 2 else 1

    hasher = PrefixHasher(data, len(FIRST), written_end, git=False, md5=False)
    hasher.start()
    hasher.join(10)
    assert hasher.cursor == len(FIRST)
    assert hasher.sha256.hexdigest() == hashlib.sha256(SECOND).hexdigest()
    assert hasher.epoch == 1


def test_bytes_of_one_epoch_are_read_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.write_bytes(FIRST)
    hasher = PrefixHasher(data, len(FIRST), lambda cursor: (len(FIRST), 7), git=True, md5=True)
    hasher.start()
    hasher.join(10)
    assert hasher.sha256.hexdigest() == hashlib.sha256(FIRST).hexdigest() and hasher.rewinds == 0
    assert hasher.sha1.hexdigest() == hashlib.sha1(f"blob {len(FIRST)}\0".encode() + FIRST).hexdigest()
