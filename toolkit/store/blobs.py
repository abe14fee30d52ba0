"""Content-addressed blobs, partial downloads and inter-process locks under the store root (toolkit.paths)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
from pathlib import Path

from filelock import FileLock

from catalog.errors import StoreError
from toolkit import paths

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file, read in chunks (flat memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


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

    def commit_blob(self, src: Path, sha256: str) -> Path:
        """Move a verified file to its blob name (atomic rename) and make it read-only."""
        dest = self.blob_path(sha256)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(src, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        os.replace(src, dest)
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
