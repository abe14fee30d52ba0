"""Where the toolkit keeps things on disk, and the store layout every module agrees on.

$TOOLKIT_HOME (default: platformdirs' user cache dir for "toolkit")
  blobs/sha256/<hex>                     content-addressed files, each verified before it gets its name
  snapshots/<variant name>/<version>/    one folder per downloaded variant: hard links (or copies) to blobs
      .toolkit/complete.json             written last, atomically: the variant is complete when it exists
  partial/                               in-progress downloads and their resume state
  locks/                                 inter-process file locks
  device.json                            cached device and execution-provider probe
"""

from __future__ import annotations

import os
from pathlib import Path

from catalog import jsonio
from catalog.errors import NotInStoreError, StoreError
from catalog.schema import VARIANT_ID_RE

ENV_HOME = "TOOLKIT_HOME"
COMPLETE_MARKER = Path(".toolkit") / "complete.json"


def home() -> Path:
    """The store root: TOOLKIT_HOME, else the user cache dir; a file where the folder should be is a StoreError."""
    if os.environ.get(ENV_HOME):
        root = Path(os.environ[ENV_HOME])
        where = f"{ENV_HOME}={root}"
    else:
        from platformdirs import user_cache_dir

        root = Path(user_cache_dir("toolkit", appauthor=False))
        where = str(root)
    if root.exists() and not root.is_dir():
        raise StoreError(f"{where}: not a folder; the store must be a folder (set {ENV_HOME} to one)")
    return root


def snapshot_dir(variant_id: str, root: Path | None = None) -> Path:
    """The folder of one variant (`name:version` -> snapshots/name/version; ':' is not allowed on Windows)."""
    if not VARIANT_ID_RE.fullmatch(variant_id):  # a name with '/' or '..' would point outside the store
        raise NotInStoreError(f"{variant_id[:200]!r} is not a variant id (NAME:VERSION, e.g. "
                              "deepseek-r1-distill-qwen-1.5b-generic-cpu:1); see `toolkit cache list`")
    name, _, version = variant_id.rpartition(":")
    return (root or home()) / "snapshots" / name / version


def installed_variant_ids(root: Path | None = None) -> set[str]:
    """Ids of the variants whose snapshot is complete (cheap: reads folder names, no hashing)."""
    base = (root or home()) / "snapshots"
    found = set()
    try:
        names = list(base.iterdir())
    except OSError:
        return found
    for name_dir in names:
        try:
            for version_dir in name_dir.iterdir():
                if (version_dir / COMPLETE_MARKER).is_file():
                    found.add(f"{name_dir.name}:{version_dir.name}")
        except OSError:
            continue
    return found


def read_complete_marker(variant_id: str, root: Path | None = None) -> dict | None:
    """The completion record of a downloaded variant, or None."""
    try:
        return jsonio.loads((snapshot_dir(variant_id, root) / COMPLETE_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
