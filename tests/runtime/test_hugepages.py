"""Huge pages for loaded weights: which mappings are chosen, and that collapsing really happens on Linux."""

from __future__ import annotations

import ctypes
import mmap
import os
import sys
import threading
import time

import numpy as np
import pytest

from toolkit.runtime import hugepages
from toolkit.runtime.hugepages import MIN_MAPPING, _candidates, collapse_resident_memory

SMAPS = """\
7f0000000000-7f0001000000 rw-p 00000000 00:00 0
Size:              16384 kB
Rss:               16384 kB
AnonHugePages:         0 kB
7f0002000000-7f0002400000 rw-p 00000000 00:00 0
Size:               4096 kB
Rss:                4096 kB
7f0003000000-7f0004000000 rw-p 00000000 08:01 1234                       /usr/lib/libbig.so
Size:              16384 kB
Rss:               16384 kB
7f0005000000-7f0006000000 r--p 00000000 00:00 0
Size:              16384 kB
Rss:               16384 kB
55aa00000000-55aa00a00000 rw-p 00000000 00:00 0                          [heap]
Size:              10240 kB
Rss:                1024 kB
7ffc00000000-7ffc01000000 rw-p 00000000 00:00 0                          [stack]
Size:              16384 kB
Rss:               16384 kB
"""


def test_only_large_private_anonymous_writable_mappings_are_candidates():
    found = _candidates(SMAPS)
    assert found == [
        (0x7F0000000000, 0x7F0001000000, 16384 * 1024),  # anonymous, 16 MiB, resident
        (0x55AA00000000, 0x55AA00A00000, 1024 * 1024),  # the heap, mostly empty (marked, never collapsed)
    ]


def _mapping_of(address: int) -> dict[str, int]:
    """Rss and AnonHugePages (bytes) of the mapping holding `address`, from /proc/self/smaps."""
    inside = False
    out: dict[str, int] = {}
    with open("/proc/self/smaps", encoding="ascii", errors="replace") as f:
        for line in f:
            head = line.split()
            if head and "-" in head[0] and len(head) >= 5 and ":" in head[3]:
                if inside:
                    break
                lo, hi = (int(x, 16) for x in head[0].split("-"))
                inside = lo <= address < hi
            elif inside and head and head[0] in ("Rss:", "AnonHugePages:"):
                out[head[0][:-1]] = int(head[1]) * 1024
    return out


needs_thp = pytest.mark.skipif(
    not sys.platform.startswith("linux") or hugepages._thp_mode() in ("", "never") or not hugepages._kernel_at_least(6, 1),
    reason="needs Linux 6.1+ with transparent huge pages not set to 'never'",
)


def _private_anonymous(size: int) -> tuple[mmap.mmap, int]:
    """A private anonymous mapping (what malloc gives onnxruntime) and its address; numpy arrays are not used
    because numpy asks for huge pages itself."""
    mm = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    mm.madvise(mmap.MADV_NOHUGEPAGE)  # 4 KiB pages to start with, whatever the system's THP mode ("always" too)
    return mm, ctypes.addressof(ctypes.c_char.from_buffer(mm))


@needs_thp
def test_resident_buffer_moves_to_huge_pages_and_keeps_its_bytes(monkeypatch):
    monkeypatch.delenv(hugepages.ENV_SWITCH, raising=False)
    size = 96 << 20
    mm, address = _private_anonymous(size)
    payload = np.random.default_rng(0).integers(0, 255, size, dtype=np.uint8).tobytes()
    mm[:] = payload  # every page touched: fully resident
    middle = address + size // 2
    assert _mapping_of(middle).get("AnonHugePages", 0) == 0
    report = collapse_resident_memory()
    assert report.reason == ""
    assert report.collapsed_bytes >= 64 << 20
    assert _mapping_of(middle)["AnonHugePages"] >= 64 << 20
    assert mm[:] == payload  # a hint, never a change of contents
    mm.close()


@needs_thp
def test_mostly_empty_buffer_is_not_filled_in(monkeypatch):
    monkeypatch.delenv(hugepages.ENV_SWITCH, raising=False)
    size = max(MIN_MAPPING, 64 << 20)
    mm, address = _private_anonymous(size)  # untouched pages, like a reserved KV buffer
    mm[:4096] = b"\x01" * 4096
    collapse_resident_memory()
    assert _mapping_of(address + size // 2).get("Rss", 0) < 8 << 20
    assert mm[0] == 1 and mm[4096] == 0
    mm.close()


def test_switched_off_by_environment(monkeypatch):
    monkeypatch.setenv(hugepages.ENV_SWITCH, "0")
    report = collapse_resident_memory()
    assert report.collapsed_bytes == 0 and report.marked_bytes == 0
    assert report.reason == f"{hugepages.ENV_SWITCH}=0"


def test_model_reports_the_background_collapse(float_package, monkeypatch):
    from toolkit.runtime.model import LocalModel
    from toolkit.runtime.pipeline import RuntimeOptions

    monkeypatch.setenv(hugepages.ENV_SWITCH, os.environ.get(hugepages.ENV_SWITCH, "0"))
    model = LocalModel(float_package, RuntimeOptions(threads=1))
    model.wait_for_huge_pages(timeout=60)
    info = model.describe()["huge_pages"]
    assert info["enabled"] is True and info["done"] is True
    assert set(info) >= {"collapsed_bytes", "seconds"}
    off = LocalModel(float_package, RuntimeOptions(threads=1, huge_pages=False))
    assert off.describe()["huge_pages"] == {"enabled": False}


@needs_thp
def test_background_collapse_waits_while_the_model_is_busy(monkeypatch):
    monkeypatch.delenv(hugepages.ENV_SWITCH, raising=False)
    mm, _ = _private_anonymous(32 << 20)
    mm[:] = b"\x07" * (32 << 20)  # resident: at least one chunk to collapse
    idle = threading.Event()  # cleared: a generation is running
    job = hugepages.start_collapse(idle.wait)
    time.sleep(0.5)
    assert not job.done
    idle.set()
    report = job.wait(timeout=60)
    assert job.done and report.collapsed_bytes > 0
    mm.close()


def test_a_generation_marks_the_pipeline_busy(float_package):
    from toolkit.runtime.generate import GenerationConfig, generate_step
    from toolkit.runtime.model import LocalModel
    from toolkit.runtime.pipeline import RuntimeOptions

    model = LocalModel(float_package, RuntimeOptions(threads=1, huge_pages=False))
    idle = model.pipeline._idle
    steps = generate_step(model, [1, 2, 3], GenerationConfig(max_new_tokens=3, ignore_eos=True))
    assert idle.is_set()
    next(steps)
    assert not idle.is_set()
    list(steps)
    assert idle.is_set()
    steps = generate_step(model, [1, 2, 3], GenerationConfig(max_new_tokens=3, ignore_eos=True))
    next(steps)
    steps.close()  # a cancelled answer frees the pipeline too
    assert idle.is_set()
