"""Progress for people: rich bars on a terminal, plain periodic lines otherwise (both on stderr)."""

from __future__ import annotations

import sys
import threading
import time

from toolkit.api import Progress


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


class PlainProgress(Progress):
    """One line every `interval` seconds with bytes, percent, speed and ETA; notes as they come."""

    def __init__(self, interval: float = 2.0, stream=None) -> None:
        self.interval, self.stream = interval, stream or sys.stderr
        self.lock = threading.Lock()
        self._print_lock = threading.Lock()
        self.total = self.done = 0
        self.t0 = self.last = time.monotonic()
        self.variant = ""

    def _line(self, text: str) -> None:
        with self._print_lock:  # download threads report at once: one whole line each
            print(text, file=self.stream, flush=True)

    def begin(self, variant_id: str, total_bytes: int, files: int) -> None:
        self.variant, self.total, self.t0 = variant_id, total_bytes, time.monotonic()
        self._line(f"downloading {variant_id}: {files} file(s), {_mb(total_bytes)} to fetch")

    def advance(self, path: str, nbytes: int) -> None:
        with self.lock:
            self.done += nbytes
            now = time.monotonic()
            if now - self.last < self.interval:
                return
            self.last = now
            elapsed = max(1e-6, now - self.t0)
            speed = self.done / elapsed
            pct = 100 * self.done / self.total if self.total else 100
            eta = (self.total - self.done) / speed if speed > 0 else 0
        self._line(
            f"  {_mb(self.done)} / {_mb(self.total)} ({pct:.0f}%) {speed / 1e6:.1f} MB/s ETA {eta:.0f} s"
        )

    def file_done(self, path: str, fetched: bool) -> None:
        self._line(f"  {path}: {'verified' if fetched else 'already in the store'}")

    def note(self, message: str) -> None:
        self._line(f"  {message}")

    def end(self) -> None:
        elapsed = time.monotonic() - self.t0
        self._line(f"  {_mb(self.done)} in {elapsed:.1f} s")


class RichProgress(Progress):
    """An overall bar and one bar per file, with speed and ETA."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
        from rich.progress import Progress as Bars

        self.bars = Bars(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self.tasks: dict[str, int] = {}
        self.overall: int | None = None
        self.lock = threading.Lock()

    def begin(self, variant_id: str, total_bytes: int, files: int) -> None:
        self.bars.start()
        self.overall = self.bars.add_task(f"[bold]{variant_id}", total=total_bytes)

    def file_started(self, path: str, size: int, already: int) -> None:
        with self.lock:
            self.tasks[path] = self.bars.add_task(f"  {path}", total=size, completed=already)

    def advance(self, path: str, nbytes: int) -> None:
        with self.lock:
            task = self.tasks.get(path)
        if task is not None:
            self.bars.advance(task, nbytes)
        if self.overall is not None:
            self.bars.advance(self.overall, nbytes)

    def file_done(self, path: str, fetched: bool) -> None:
        with self.lock:
            task = self.tasks.get(path)
        if task is not None:
            self.bars.update(task, description=f"  [green]{path}")

    def note(self, message: str) -> None:
        self.bars.console.print(f"  [yellow]{message}")

    def end(self) -> None:
        self.bars.stop()


def for_terminal(quiet: bool = False) -> Progress:
    """Rich bars when stderr is a terminal, plain lines otherwise, nothing when quiet."""
    if quiet:
        return Progress()
    return RichProgress() if sys.stderr.isatty() else PlainProgress()
