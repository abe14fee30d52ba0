"""What `toolkit cache` does: list variants, re-hash them, remove them, and reclaim unused space."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from filelock import Timeout

from catalog.errors import NotInStoreError, StoreError
from toolkit import paths
from toolkit.files import sha256_file
from toolkit.store.blobs import Store, rmtree_readonly, unlink_readonly
from toolkit.store.snapshots import last_used, snapshot_files

# An unreferenced blob younger than this is kept: downloads pin what they will link (blobs.Pins), this also
# covers a toolkit too old to pin.
BLOB_GRACE_S = 3600.0
GC_WAIT_S = 60.0  # how long remove/prune wait for another remove/prune to finish before giving up


@dataclass
class CachedVariant:
    variant_id: str
    path: Path
    size: int
    files: int
    last_used: float | None
    source: str
    revision: str


def list_cached(store: Store) -> list[CachedVariant]:
    """Every complete variant in the store, with its size and when it was last used."""
    out = []
    for vid in sorted(paths.installed_variant_ids(store.root)):
        record = paths.read_complete_marker(vid, store.root) or {}
        files = snapshot_files(vid, store.root)
        snap = paths.snapshot_dir(vid, store.root)
        out.append(
            CachedVariant(
                vid,
                snap,
                sum(f.size for f in files),
                len(files),
                last_used(snap),
                str(record.get("source", "")),
                str(record.get("revision", "")),
            )
        )
    return out


@dataclass
class VerifyResult:
    variant_id: str
    checked: int = 0
    problems: list[str] = field(default_factory=list)
    bad_blobs: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_variant(store: Store, variant_id: str) -> VerifyResult:
    """Re-hash every file of a snapshot against its record; report missing, resized or altered files.
    NotInStoreError when the store has no snapshot of the variant at all (nothing to verify or repair)."""
    result = VerifyResult(variant_id)
    snap = paths.snapshot_dir(variant_id, store.root)
    if not snap.is_dir():
        raise NotInStoreError(f"{variant_id} is not in the store ({snap}); see `toolkit cache list`")
    files = snapshot_files(variant_id, store.root)
    if not files:
        result.problems.append(f"{snap}: not a complete snapshot")
        return result
    for f in files:
        result.checked += 1
        target = snap / f.path
        blob = store.blob_path(f.sha256)
        for label, p in (("file", target), ("blob", blob)):
            try:
                size = p.stat().st_size
            except OSError:
                result.problems.append(f"{f.path}: {label} {p} is missing")
                result.bad_blobs.append(f.sha256)
                break
            if size != f.size:
                result.problems.append(f"{f.path}: {label} has {size} bytes, expected {f.size}")
                result.bad_blobs.append(f.sha256)
                break
            if label == "blob" and target.samefile(blob):
                continue
            got = sha256_file(p)
            if got != f.sha256:
                result.problems.append(f"{f.path}: {label} sha256 {got}, expected {f.sha256}")
                result.bad_blobs.append(f.sha256)
                break
    return result


def forget_bad(store: Store, result: VerifyResult) -> None:
    """Drop the bad blobs and the snapshot's completion marker so the next download fetches them again.
    The caller holds the variant (Store.writing), with its healthy blobs pinned."""
    for sha in set(result.bad_blobs):
        unlink_readonly(store.blob_path(sha))
    (paths.snapshot_dir(result.variant_id, store.root) / paths.COMPLETE_MARKER).unlink(missing_ok=True)


def remove_variant(store: Store, variant_id: str) -> int:
    """Delete a variant's snapshot folder and the blobs no other variant uses and no running download
    pinned; return the bytes freed. StoreError, removing nothing, while another process writes it."""
    snap = paths.snapshot_dir(variant_id, store.root)
    if not snap.is_dir():
        raise NotInStoreError(f"{variant_id} is not in the store ({snap}); see `toolkit cache list`")
    with _collecting(store) as pinned:
        freed = _remove(store, variant_id, pinned)
    if freed is None:
        raise StoreError(
            f"{variant_id} is being downloaded or repaired by another process; nothing removed "
            "(try again when it has finished)"
        )
    return freed


@contextmanager
def _collecting(store: Store, clear_stale: bool = True) -> Iterator[dict[str, set[str]]]:
    """Hold the store's gc lock and yield what running downloads and repairs pinned (variant -> blobs).
    While it is held no writer can pin a blob, so a blob found unpinned and unreferenced may go."""
    lock = store.gc_lock()
    try:
        lock.acquire(timeout=GC_WAIT_S)
    except Timeout as e:
        raise StoreError(
            f"{lock.lock_file}: another `toolkit cache remove` or `prune` held it for {GC_WAIT_S:.0f} s; "
            "try again when it has finished"
        ) from e
    try:
        yield store.pinned(clear_stale)
    finally:
        lock.release()


def _remove(store: Store, variant_id: str, pinned: dict[str, set[str]]) -> int | None:
    """remove_variant under the gc lock; None, with nothing removed, when a live process holds the variant."""
    lock = store.variant_lock(variant_id)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return None
    snap = paths.snapshot_dir(variant_id, store.root)
    try:
        own = {f.sha256 for f in snapshot_files(variant_id, store.root)}
        rmtree_readonly(snap)
    finally:
        lock.release()
    try:
        snap.parent.rmdir()
    except OSError:
        pass
    keep = referenced_blobs(store).union(*pinned.values())
    return sum(_delete_blob(store, store.blob_path(sha)) or 0 for sha in sorted(own - keep))


def _delete_blob(store: Store, blob: Path, dry_run: bool = False) -> int | None:
    """Delete a blob unless a download holds its lock; return its size (None when left alone)."""
    lock = store.lock(f"blob-{blob.name}")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return None
    try:
        size = blob.stat().st_size
        if not dry_run:
            unlink_readonly(blob)
        return size
    except OSError:
        return None
    finally:
        lock.release()


@dataclass
class PruneReport:
    removed_blobs: int = 0
    removed_partials: int = 0
    removed_variants: list[str] = field(default_factory=list)
    freed_bytes: int = 0
    busy_variants: list[str] = field(default_factory=list)  # held by a running download or repair: left alone


def referenced_blobs(store: Store) -> set[str]:
    return {
        f.sha256 for vid in paths.installed_variant_ids(store.root) for f in snapshot_files(vid, store.root)
    }


def _incomplete_snapshots(store: Store) -> list[Path]:
    base = store.root / "snapshots"
    out = []
    for name_dir in sorted(base.iterdir()) if base.is_dir() else []:
        for version_dir in sorted(name_dir.iterdir()) if name_dir.is_dir() else []:
            if not (version_dir / paths.COMPLETE_MARKER).is_file():
                out.append(version_dir)
    return out


def collect_garbage(
    store: Store,
    unused_days: float | None = None,
    partial_age_s: float = 86400.0,
    grace_s: float = BLOB_GRACE_S,
    dry_run: bool = False,
) -> PruneReport:
    """Remove variants unused for `unused_days` (if given), then unreferenced blobs, stale partials,
    and incomplete snapshot folders. A variant a running download or repair holds is left alone, with
    every blob it pinned, and listed in `busy_variants`."""
    report = PruneReport()
    with _collecting(store, clear_stale=not dry_run) as pinned:
        busy = _collect(store, report, pinned, unused_days, partial_age_s, grace_s, dry_run)
    report.busy_variants = sorted(busy)
    return report


def _collect(
    store: Store,
    report: PruneReport,
    pinned: dict[str, set[str]],
    unused_days: float | None,
    partial_age_s: float,
    grace_s: float,
    dry_run: bool,
) -> set[str]:
    """collect_garbage under the gc lock; returns the variants it left alone because they are busy."""
    busy = set(pinned)
    now = time.time()
    if unused_days is not None:
        for cv in list_cached(store):
            if cv.variant_id in busy or cv.last_used is None or now - cv.last_used <= unused_days * 86400:
                continue
            freed = cv.size if dry_run else _remove(store, cv.variant_id, pinned)
            if freed is None:
                busy.add(cv.variant_id)
                continue
            report.removed_variants.append(cv.variant_id)
            report.freed_bytes += freed
    keep = referenced_blobs(store).union(*pinned.values())
    for blob in store.iter_blobs():
        if blob.name in keep:
            continue
        try:
            if now - blob.stat().st_mtime < grace_s:
                continue
        except OSError:  # gone already (a repair dropped it)
            continue
        freed = _delete_blob(store, blob, dry_run)
        if freed is not None:
            report.removed_blobs += 1
            report.freed_bytes += freed
    for d in _partials_older_than(store, partial_age_s):
        lock = store.lock(f"blob-{d.name}")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue
        try:
            report.removed_partials += 1
            report.freed_bytes += sum(p.stat().st_blocks * 512 for p in d.iterdir() if p.is_file())
            if not dry_run:
                shutil.rmtree(d, ignore_errors=True)
        finally:
            lock.release()
    for snap in _incomplete_snapshots(store):
        variant_id = f"{snap.parent.name}:{snap.name}"
        lock = store.variant_lock(variant_id)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            busy.add(variant_id)  # a download or repair is writing it
            continue
        try:
            if not dry_run and not (snap / paths.COMPLETE_MARKER).is_file():
                shutil.rmtree(snap, ignore_errors=True)
        finally:
            lock.release()
    return busy


def _partials_older_than(store: Store, age_s: float) -> list[Path]:
    base = store.root / "partial"
    now = time.time()
    out = []
    for d in sorted(base.iterdir()) if base.is_dir() else []:
        try:
            newest = max((p.stat().st_mtime for p in d.iterdir()), default=d.stat().st_mtime)
        except OSError:
            continue
        if now - newest >= age_s:
            out.append(d)
    return out
