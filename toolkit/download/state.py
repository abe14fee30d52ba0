"""Resume state of one partial file: its parts and how far each got, saved atomically beside the data.

partial/<key>/data         the pre-sized file, written at each part's offset
partial/<key>/state.json   {"size", "etag", "ranges", "parts": [[start, end, done], ...]}

A part's `done` counts bytes already written from its start, so after a crash (even SIGKILL) each
part resumes where its last saved count says; at most the bytes written since the last save are
fetched again. Only the process holding the file's lock touches these files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from catalog import jsonio
from toolkit.download.plan import Part
from toolkit.files import write_atomic

STATE_VERSION = 1


@dataclass
class PartialState:
    size: int
    etag: str | None = None
    ranges: bool = True
    parts: list[Part] = field(default_factory=list)

    @property
    def done_bytes(self) -> int:
        return sum(min(p.done, p.end - p.start) for p in self.parts)

    def to_json(self) -> dict:
        return {
            "version": STATE_VERSION,
            "size": self.size,
            "etag": self.etag,
            "ranges": self.ranges,
            "parts": [[p.start, p.end, p.done] for p in self.parts],
        }


def load_state(path: Path, data_path: Path, size: int) -> PartialState | None:
    """The saved state if it matches the expected size and its data file exists; else None."""
    try:
        raw = jsonio.loads(path.read_text(encoding="utf-8"))
        if raw.get("version") != STATE_VERSION or raw.get("size") != size:
            return None
        if not data_path.is_file() or data_path.stat().st_size != size:
            return None
        parts = [Part(int(s), int(e), int(d)) for s, e, d in raw["parts"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    covered = sorted((p.start, p.end) for p in parts)
    cursor = 0
    for s, e in covered:
        if s != cursor or e < s or e > size:
            return None
        cursor = e
    if cursor != size or any(p.done < 0 or p.done > p.end - p.start for p in parts):
        return None
    return PartialState(size=size, etag=raw.get("etag"), ranges=bool(raw.get("ranges", True)), parts=parts)


def save_state(path: Path, state: PartialState) -> None:
    """Write the state so that a crash leaves the old or the new one, never half."""
    write_atomic(path, json.dumps(state.to_json()))
