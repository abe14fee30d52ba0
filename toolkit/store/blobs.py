"""Content-addressed blobs, partial downloads and inter-process locks under the store root (toolkit.paths).

Locks (locks/, filelock: released by the OS when a process dies):
  blob-<key>         one process fetches a file (its partial folder) at a time
  variant-<n>@<v>    held by a download or repair of that variant for its whole write, and by
                     `cache remove`/`prune` (never waiting) while they delete its snapshot
  gc                 held by `cache remove`/`prune` while they choose and delete, and briefly by a
                     writer recording its pins (variant-<n>@<v>.pins: the blobs it may still link)
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from catalog.errors import StoreError
from toolkit import paths

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def fsync_file(path: Path) -> None:
    """Flush a file's bytes to the disk (before it gets a final name: a power cut must not leave that name on
    an empty or partial file)."""
    fd = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (a rename or a new link in it). Windows cannot open folders for this and
    journals them with the rename itself."""
    if os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def unlink_readonly(path: Path) -> None:
    """Delete a file even if it is read-only (blobs are; Windows refuses to delete read-only files)."""
    try:
        path.unlink()
    except FileNotFoundError:
        return
    except PermissionError:
        os.chmod(path, stat.S_IWRITE | stat.S_IREAD)
        path.unlink()


def rmtree_readonly(path: Path) -> None:
    """shutil.rmtree that also removes read-only files (snapshot hard links share the blobs' mode)."""

    def retry(func, p, _exc):  # noqa: ANN001 - shutil's onerror signature
        os.chmod(p, stat.S_IWRITE | stat.S_IREAD)
        func(p)

    if path.exists():
        shutil.rmtree(path, onerror=retry)


class Store:
    """The on-disk store: blobs/sha256/<hex>, snapshots/, partial/, locks/ under `root`."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else paths.home()

    @property
    def blobs_dir(self) -> Path:
        return self.root / "blobs" / "sha256"

    def blob_path(self, sha256: str) -> Path:
        if not _HEX64.match(sha256):
            raise StoreError(f"not a sha256 digest: {sha256!r}")
        return self.blobs_dir / sha256

    def has_blob(self, sha256: str, size: int | None = None) -> bool:
        """A blob with this digest exists (and has this size, when given). No re-hashing."""
        try:
            st = self.blob_path(sha256).stat()
        except OSError:
            return False
        return size is None or st.st_size == size

    def commit_blob(self, src: Path, sha256: str, durable: bool = True) -> Path:
        """Move a verified file to its blob name (atomic rename) and make it read-only; when `durable`, its
        bytes reach the disk before the rename and the rename before this returns."""
        dest = self.blob_path(sha256)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if durable:
            fsync_file(src)
        os.chmod(src, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        os.replace(src, dest)
        if durable:
            fsync_dir(dest.parent)
        return dest

    def partial_dir(self, key: str) -> Path:
        return self.root / "partial" / key

    def remove_partial(self, key: str) -> None:
        shutil.rmtree(self.partial_dir(key), ignore_errors=True)

    def lock(self, name: str, timeout: float = -1) -> FileLock:
        """An inter-process lock at locks/<name>.lock (fcntl/msvcrt through filelock)."""
        d = self.root / "locks"
        d.mkdir(parents=True, exist_ok=True)
        return FileLock(str(d / f"{name}.lock"), timeout=timeout)

    def variant_lock(self, variant_id: str, timeout: float = -1) -> FileLock:
        """The lock of one variant's snapshot folder."""
        return self.lock(_variant_lock_name(variant_id), timeout)

    def gc_lock(self, timeout: float = -1) -> FileLock:
        return self.lock("gc", timeout)

    @contextmanager
    def writing(self, variant_id: str, on_wait: Callable[[str], None] | None = None) -> Iterator[Pins]:
        """Hold the variant's lock for a whole download or repair (waiting for another writer of it);
        yield the Pins through which it records the blobs it will link."""
        lock = self.variant_lock(variant_id)
        try:
            lock.acquire(timeout=1)  # `cache prune` and `remove` hold it for moments
        except Timeout:
            if on_wait is not None:
                on_wait(f"{variant_id}: another process is downloading or repairing it; waiting")
            lock.acquire()
        try:
            pins = Pins(self, variant_id)
            try:
                yield pins
            finally:
                pins.clear()
        finally:
            lock.release()

    def pinned(self, clear_stale: bool = True) -> dict[str, set[str]]:
        """The variants a live process is writing, each with the blobs it pinned. Call under the gc lock.
        Pins whose variant lock is free were left by a process that died: ignored (and deleted)."""
        out: dict[str, set[str]] = {}
        for path in sorted((self.root / "locks").glob("variant-*.pins")):
            lock = self.lock(path.stem)
            try:
                lock.acquire(timeout=0)
            except Timeout:
                lines = _read_lines(path)
                if lines:
                    out.setdefault(lines[0], set()).update(lines[1:])
                continue
            try:
                if clear_stale:
                    path.unlink(missing_ok=True)
            finally:
                lock.release()
        return out

    def iter_blobs(self) -> list[Path]:
        try:
            return sorted(p for p in self.blobs_dir.iterdir() if _HEX64.match(p.name))
        except OSError:
            return []

    def free_bytes(self) -> int:
        """Free space on the store's filesystem (the root's nearest existing parent)."""
        p = self.root
        while not p.exists() and p != p.parent:
            p = p.parent
        return shutil.disk_usage(p).free


class Pins:
    """The blobs a download or repair of one variant may still link: locks/variant-<n>@<v>.pins, first
    line the variant id, then one sha256 a line. Only the variant's lock holder writes it, always under
    the gc lock, and `cache remove`/`prune` read it under the gc lock: a blob a writer pinned before it
    looked for it in the store, or before it gave it its name, is never deleted under it."""

    def __init__(self, store: Store, variant_id: str) -> None:
        self.store = store
        self.path = store.root / "locks" / f"{_variant_lock_name(variant_id)}.pins"
        self._blobs: set[str] = set()
        self._guard = threading.Lock()  # the file threads of one download pin from their own threads
        with store.gc_lock():  # replaces pins a dead process left
            self.path.write_text(f"{variant_id}\n", encoding="utf-8")

    def add(self, blobs: Iterable[str]) -> None:
        """Pin these blobs (already pinned ones cost nothing: no lock, no write)."""
        with self._guard:
            new = sorted(set(blobs) - self._blobs)
            if not new:
                return
            with self.store.gc_lock(), open(self.path, "a", encoding="utf-8") as f:
                f.write("".join(f"{sha}\n" for sha in new))
            self._blobs.update(new)

    def clear(self) -> None:
        try:
            self.path.unlink(missing_ok=True)
        except OSError:  # Windows, while a collector reads it: stale once the variant lock is free
            pass


def _variant_lock_name(variant_id: str) -> str:
    """variant-<n>@<v>, after the snapshot folder snapshots/<n>/<v>, so a folder leads to its lock."""
    snap = paths.snapshot_dir(variant_id, Path())
    return f"variant-{snap.parent.name}@{snap.name}"


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").split()
    except OSError:
        return []
