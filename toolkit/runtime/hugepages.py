"""Back the loaded weights with transparent huge pages (Linux).

Decoding streams every weight once per token. onnxruntime copies the weights into its own buffers when
it prepacks them (MatMulNBits), and glibc hands those out in 4 KiB pages unless the process was started
with `GLIBC_TUNABLES=glibc.malloc.hugetlb=1`; most distributions set transparent huge pages to
`madvise`, so nothing else asks for 2 MiB pages. A gigabyte of weights in 4 KiB pages misses the TLB on
every page it streams through. Measured on the 1.5B cpu-int4 package, 2 cores, interleaved A/B:
decode +24-29 %, time to first token -26-39 % (onnxruntime-genai started with the tunable gains 3-23 %).

After the sessions exist, `collapse_resident_memory()` asks the kernel to re-back the process's large,
mostly resident, private anonymous mappings with huge pages: `madvise(MADV_HUGEPAGE)` so that later
faults in them get huge pages, and `madvise(MADV_COLLAPSE)` (Linux 6.1+) to move what is there now.
Mostly-empty mappings (a reserved KV buffer) are only marked, never collapsed, so the resident size does
not grow. Everything here is a hint: any failure leaves the memory as it was and the model runs as before.

Collapsing costs time when free memory is fragmented (the kernel compacts to find 2 MiB blocks: ~3-4 s for
1.2 GB on the test machine with a full page cache) and, while it runs, it slows the threads reading the
same memory (a one-shot answer started at once: time to first token 0.3 s -> 0.9 s). So `start_collapse()`
works on a background thread at the lowest priority, in small chunks, and only while the model is idle
(`gate`: the pipeline's idle event): a chat collapses while its user reads and types, a server between
requests, a one-shot answer runs at its old speed; `toolkit bench` waits for it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

MADV_HUGEPAGE = 14
MADV_COLLAPSE = 25
HUGE = 2 << 20
CHUNK = 8 << 20  # ~20-30 ms of collapsing: the longest a new request can wait for the thread
MIN_MAPPING = 8 << 20  # smaller mappings are not worth a system call
MIN_RESIDENT_SHARE = 0.9  # collapse only mappings this full: collapsing fills holes with zero pages
ENV_SWITCH = "TOOLKIT_HUGE_PAGES"  # "0" turns this off


@dataclass
class HugePageReport:
    collapsed_bytes: int = 0
    marked_bytes: int = 0
    seconds: float = 0.0
    reason: str = ""  # why nothing was done, when nothing was


def _thp_mode() -> str:
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled", encoding="ascii") as f:
            text = f.read()
    except OSError:
        return ""
    start, end = text.find("["), text.find("]")
    return text[start + 1:end] if 0 <= start < end else ""


def _candidates(smaps_text: str) -> list[tuple[int, int, int]]:
    """(start, end, resident bytes) of private anonymous read-write mappings of at least MIN_MAPPING bytes."""
    out: list[tuple[int, int, int]] = []
    current: list | None = None
    for line in smaps_text.splitlines():
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5 and ":" in head[3]:  # a mapping's header line
            current = None
            start, end = (int(x, 16) for x in head[0].split("-"))
            path = head[5] if len(head) > 5 else ""
            if head[1].startswith("rw") and head[1].endswith("p") and head[4] == "0" and path in ("", "[heap]") \
                    and end - start >= MIN_MAPPING:
                current = [start, end, 0]
                out.append(current)  # type: ignore[arg-type]
        elif current is not None and line.startswith("Rss:"):
            current[2] = int(line.split()[1]) * 1024
    return [tuple(c) for c in out]  # type: ignore[misc]


def collapse_resident_memory(gate: Callable[[], object] | None = None) -> HugePageReport:
    """Mark large private anonymous mappings for huge pages and collapse the mostly resident ones; `gate()` is
    called before each chunk and may block (until the model is idle)."""
    report = HugePageReport()
    start = time.perf_counter()
    try:
        _collapse(report, gate)
    finally:
        report.seconds = time.perf_counter() - start
    return report


def _collapse(report: HugePageReport, gate: Callable[[], object] | None) -> None:
    if not sys.platform.startswith("linux"):
        report.reason = "not Linux"
        return
    if os.environ.get(ENV_SWITCH, "1") == "0":
        report.reason = f"{ENV_SWITCH}=0"
        return
    mode = _thp_mode()
    if mode in ("", "never"):
        report.reason = "transparent huge pages are off" if mode else "no transparent huge pages"
        return
    try:
        with open("/proc/self/smaps", encoding="ascii", errors="replace") as f:
            mappings = _candidates(f.read())
        libc = ctypes.CDLL(None, use_errno=True)
        madvise = libc.madvise
        madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
        madvise.restype = ctypes.c_int
    except (OSError, AttributeError) as e:
        report.reason = f"cannot inspect memory: {e}"
        return
    before = _anon_huge_bytes()
    can_collapse = _kernel_at_least(6, 1)  # MADV_COLLAPSE is Linux 6.1+
    for start, end, resident in mappings:
        lo = -(-start // HUGE) * HUGE
        hi = end // HUGE * HUGE
        if hi - lo < HUGE:
            continue
        if madvise(lo, hi - lo, MADV_HUGEPAGE) == 0:
            report.marked_bytes += hi - lo
        if not can_collapse or resident < MIN_RESIDENT_SHARE * (end - start):
            continue
        for at in range(lo, hi, CHUNK):  # in chunks: one busy page (EAGAIN) spoils only its chunk
            if gate is not None:
                gate()
            if madvise(at, min(CHUNK, hi - at), MADV_COLLAPSE) != 0 and ctypes.get_errno() == errno.EINVAL:
                break  # this mapping cannot have huge pages (another library marked it so): the next one
    report.collapsed_bytes = max(0, _anon_huge_bytes() - before)
    if not can_collapse:
        report.reason = "the kernel cannot collapse memory (MADV_COLLAPSE needs Linux 6.1)"


def _kernel_at_least(major: int, minor: int) -> bool:
    try:
        parts = os.uname().release.split(".")
        return (int(parts[0]), int(parts[1].split("-")[0])) >= (major, minor)
    except (ValueError, IndexError):
        return False


def _anon_huge_bytes() -> int:
    """The process's anonymous memory in huge pages (AnonHugePages of /proc/self/smaps_rollup)."""
    try:
        with open("/proc/self/smaps_rollup", encoding="ascii") as f:
            for line in f:
                if line.startswith("AnonHugePages:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class BackgroundCollapse:
    """`collapse_resident_memory()` on a daemon thread; `wait()` returns its report."""

    def __init__(self, gate: Callable[[], object] | None = None) -> None:
        self.report = HugePageReport()
        self._gate = gate
        self._thread = threading.Thread(target=self._run, name="toolkit-huge-pages", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:  # lowest priority (on Linux, for this thread only): the model's own threads come first
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except (AttributeError, OSError):
            pass
        self.report = collapse_resident_memory(self._gate)

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> HugePageReport:
        self._thread.join(timeout)
        return self.report


def start_collapse(gate: Callable[[], object] | None = None) -> BackgroundCollapse:
    return BackgroundCollapse(gate)
