"""Per-variant snapshot folders: hard links to blobs (copies where links fail), completion marker last."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from catalog.errors import StoreError
from toolkit import paths
from toolkit.store.blobs import Store, fsync_dir, fsync_file, unlink_readonly
from toolkit.store.safety import safe_join

LAST_USED = Path(".toolkit") / "last_used"


@dataclass(frozen=True)
class SnapshotFile:
    path: str
    size: int
    sha256: str


def _place(blob: Path, target: Path, durable: bool = True) -> None:
    """Link (or copy, then rename) a blob to `target`, replacing whatever was there; a copy reaches the disk
    before its name when `durable`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    unlink_readonly(tmp)
    try:
        os.link(blob, tmp)
    except OSError:
        shutil.copyfile(blob, tmp)
        if durable:
            fsync_file(tmp)
    if os.name == "nt":
        unlink_readonly(target)  # Windows cannot replace a read-only file (the marker is gone already)
    os.replace(tmp, target)


def write_snapshot(store: Store, variant_id: str, files: list[SnapshotFile], meta: dict,
                   durable: bool = True) -> Path:
    """Build snapshots/<name>/<version>/ from blobs; `.toolkit/complete.json` is written last, atomically.
    The caller holds the variant (Store.writing) with these blobs pinned, so no prune or remove touches them.
    When `durable`, the links reach the disk before the marker, and the marker before this returns."""
    snap = paths.snapshot_dir(variant_id, store.root)
    marker = snap / paths.COMPLETE_MARKER
    try:
        marker.unlink()
    except FileNotFoundError:
        pass
    snap.mkdir(parents=True, exist_ok=True)
    wanted = set()
    for f in files:
        target = safe_join(snap, f.path, where=variant_id)
        blob = store.blob_path(f.sha256)
        if not blob.is_file():
            raise StoreError(f"{blob}: blob missing while building the snapshot of {variant_id}")
        _place(blob, target, durable)
        wanted.add(target)
    for p in sorted(snap.rglob("*"), reverse=True):  # files left from an older snapshot go
        if p.is_file() and p not in wanted and ".toolkit" not in p.relative_to(snap).parts:
            unlink_readonly(p)
    record = dict(
        meta,
        variant_id=variant_id,
        completed_at=time.time(),
        files=[{"path": f.path, "size": f.size, "sha256": f.sha256} for f in files],
    )
    if durable:  # every folder that got an entry: the files' folders up to the snapshot, and its own parent
        folders = {snap, snap.parent} | {d for t in wanted for d in t.parents if d.is_relative_to(snap)}
        for folder in sorted(folders, key=lambda d: len(d.parts), reverse=True):
            fsync_dir(folder)
    marker.parent.mkdir(parents=True, exist_ok=True)
    tmp = marker.with_name(marker.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=1), encoding="utf-8")
    if durable:
        fsync_file(tmp)
    os.replace(tmp, marker)
    if durable:
        fsync_dir(marker.parent)
    touch_last_used(snap)
    return snap


def touch_last_used(snap: Path) -> None:
    """Record that a variant was used now (`cache list` shows it; `cache prune --unused-days` reads it)."""
    p = snap / LAST_USED
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(str(time.time()), encoding="utf-8")
    except OSError:
        pass


def last_used(snap: Path) -> float | None:
    try:
        return float((snap / LAST_USED).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        try:
            return (snap / paths.COMPLETE_MARKER).stat().st_mtime
        except OSError:
            return None


def snapshot_files(variant_id: str, root: Path) -> list[SnapshotFile]:
    """The files a complete snapshot records (empty when it is not complete)."""
    record = paths.read_complete_marker(variant_id, root) or {}
    out = []
    for f in record.get("files", []):
        try:
            out.append(SnapshotFile(str(f["path"]), int(f["size"]), str(f["sha256"])))
        except (KeyError, TypeError, ValueError):
            continue
    return out
