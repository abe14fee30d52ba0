"""Bytes on disk for the engine: positional writes and reads (portable), disk errors, the prefix hasher."""

from __future__ import annotations

import errno
import hashlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from catalog.errors import DiskFullError, StoreError

BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation


def write_at(fd: int, data: bytes, offset: int) -> None:
    """Write all of `data` at `offset` (pwrite; seek + write where it is missing, under the caller's lock)."""
    view = memoryview(data)
    while view:
        if hasattr(os, "pwrite"):
            n = os.pwrite(fd, view, offset)
        else:
            os.lseek(fd, offset, os.SEEK_SET)
            n = os.write(fd, view)
        view, offset = view[n:], offset + n


def read_at(fd: int, size: int, offset: int) -> bytes:
    """Read up to `size` bytes at `offset` from an fd that only one thread uses."""
    if hasattr(os, "pread"):
        return os.pread(fd, size, offset)
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, size)


def disk_error(path: Path, e: OSError) -> DiskFullError | StoreError:
    """ENOSPC/EDQUOT/EFBIG become DiskFullError (EFBIG: e.g. FAT32's 4 GB file limit), the rest StoreError."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(
            f"{path}: the disk is full ({e.strerror}); free space or set TOOLKIT_HOME elsewhere"
        )
    if e.errno == errno.EFBIG:
        return DiskFullError(
            f"{path}: file too large for this filesystem or limit ({e.strerror}); "
            "set TOOLKIT_HOME to a disk that takes large files (not FAT32)"
        )
    return StoreError(f"{path}: cannot write: {e.strerror or e}")


class PrefixHasher(threading.Thread):
    """Hashes a file's written prefix as it grows: sha256, and git's blob sha1 or an md5 when asked.

    `written_end(cursor)` gives how far the bytes from `cursor` are on disk without a gap, and the transfer's
    epoch: a number the transfer raises (under the lock `written_end` takes) before it writes again over bytes
    it had written, as a retried stream without Range does. The digest is of the bytes in the file, whatever
    path the transfer took: a new epoch, seen before or right after a read, makes it start over from byte 0.
    """

    FLUSH_EVERY = 64 << 20

    def __init__(
        self, path: Path, size: int, written_end: Callable[[int], tuple[int, int]], git: bool, md5: bool,
        flush: bool = False,
    ) -> None:
        super().__init__(daemon=True, name="toolkit-hasher")
        self.path, self.size, self.written_end = path, size, written_end
        # With `flush`, what it has hashed is written back to the disk as it goes (fsync here blocks only this
        # thread), so the fsync before the blob's rename has little left to do.
        self.flush = flush
        self.git, self.with_md5 = git, md5
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.rewinds = 0
        self.epoch: int | None = None  # the transfer epoch of the bytes hashed so far
        self._start_over()

    def _start_over(self) -> None:
        self.cursor = 0
        self.sha256 = hashlib.sha256()
        self.sha1 = hashlib.sha1(f"blob {self.size}\0".encode()) if self.git else None
        self.md5 = hashlib.md5(usedforsecurity=False) if self.with_md5 else None

    def _flush(self, fd: int) -> None:
        try:
            os.fsync(fd)
        except OSError:  # e.g. Windows cannot flush a read-only handle: the final fsync does it all
            self.flush = False

    def run(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDONLY | BINARY)
        except OSError as e:
            self.error = e
            return
        try:
            while not self.stop.is_set():
                end, epoch = self.written_end(self.cursor)
                if epoch != self.epoch:
                    self.rewinds += self.cursor > 0
                    self.epoch = epoch
                    self._start_over()
                    continue
                if self.cursor >= self.size:
                    return
                data = read_at(fd, min(end - self.cursor, 1 << 20), self.cursor) if end > self.cursor else b""
                if not data:
                    time.sleep(0.02)
                    continue
                if self.written_end(self.cursor)[1] != epoch:
                    continue  # the transfer started writing again while this was read: start over above
                self.sha256.update(data)
                if self.sha1:
                    self.sha1.update(data)
                if self.md5:
                    self.md5.update(data)
                self.cursor += len(data)
                if self.flush and self.cursor // self.FLUSH_EVERY != (self.cursor - len(data)) // self.FLUSH_EVERY:
                    self._flush(fd)
        except OSError as e:
            self.error = e
        finally:
            os.close(fd)
