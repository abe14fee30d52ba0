"""Pure decisions of the engine: segment planning, work stealing, Content-Range parsing (retries and waits:
catalog.sources.retry, shared with every other request).

No I/O here, so each rule is tested with a table (tests/download/test_plan.py).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

MiB = 1024 * 1024


@dataclass
class Part:
    """A byte range [start, end) of a file and how many bytes from `start` are already on disk."""

    start: int
    end: int
    done: int = 0

    @property
    def pos(self) -> int:
        return self.start + self.done

    @property
    def remaining(self) -> int:
        return max(0, self.end - self.pos)

    @property
    def complete(self) -> bool:
        return self.pos >= self.end


def segment_size(
    size: int, connections: int, min_segment: int, max_segment: int, per_connection: int = 1
) -> int:
    """`per_connection` segments per connection, clamped to [min_segment, max_segment] (adapts to the size).

    Smaller segments keep every connection busy to the end and the in-order written prefix close behind
    the transfer, so the sha256 (sequential) finishes moments after the last byte; larger ones cost
    fewer requests (one round trip each).
    """
    if size <= 0:
        return max(1, min_segment)
    return max(min_segment, min(max_segment, math.ceil(size / max(1, connections * per_connection))))


def plan_parts(
    size: int,
    connections: int,
    min_segment: int = 4 * MiB,
    max_segment: int = 16 * MiB,
    per_connection: int = 1,
) -> list[Part]:
    """Split a file of `size` bytes into parts; a small file is one part."""
    if size <= 0:
        return [Part(0, 0)]
    step = segment_size(size, connections, min_segment, max_segment, per_connection)
    return [Part(s, min(size, s + step)) for s in range(0, size, step)]


def split_largest(active: list[Part], min_split: int) -> Part | None:
    """Steal the back half of the active part with the most bytes left, when both halves stay >= min_split.

    The victim's `end` shrinks in place; its worker notices and stops at the new end.
    """
    candidates = [p for p in active if p.remaining >= 2 * min_split]
    if not candidates:
        return None
    victim = max(candidates, key=lambda p: p.remaining)
    mid = victim.pos + victim.remaining // 2
    new = Part(mid, victim.end)
    victim.end = mid
    return new


def contiguous_end(parts: list[Part], cursor: int) -> int:
    """How far the bytes from `cursor` onwards are written without a gap (for in-order hashing)."""
    for p in sorted(parts, key=lambda p: p.start):
        if p.end <= cursor:
            continue
        if p.start > cursor:
            return cursor
        if p.pos <= cursor:
            return cursor
        if p.pos < p.end:
            return p.pos
        cursor = p.end
    return cursor


_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$")


def parse_content_range(value: str | None) -> tuple[int, int, int | None] | None:
    """'bytes 0-99/1000' -> (0, 99, 1000); None when absent or malformed."""
    m = _CONTENT_RANGE.match(value or "")
    if not m:
        return None
    total = None if m.group(3) == "*" else int(m.group(3))
    return int(m.group(1)), int(m.group(2)), total
