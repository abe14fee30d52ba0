"""Path safety: a file path from a manifest or a source must stay inside the folder it is written to."""

from __future__ import annotations

import re
from pathlib import Path

from catalog.errors import StoreError

_DRIVE = re.compile(r"^[A-Za-z]:")


def check_relpath(path: str, where: str = "") -> str:
    """Return `path` if it is a plain relative POSIX path; refuse absolute, '..', drive letters, NUL, '\\'."""
    why = None
    if not path or path in (".", "/"):
        why = "is empty"
    elif "\x00" in path:
        why = "contains NUL"
    elif "\\" in path:
        why = "contains a backslash"
    elif path.startswith("/") or _DRIVE.match(path):
        why = "is absolute"
    elif ".." in path.split("/"):
        why = "contains '..'"
    elif any(part in ("", ".") for part in path.split("/")):
        why = "has an empty or '.' component"
    elif path.split("/")[0] == ".toolkit":
        why = "uses the reserved .toolkit folder"
    if why:
        raise StoreError(f"unsafe file path {path!r}{' from ' + where if where else ''}: it {why}")
    return path


def safe_join(root: Path, path: str, where: str = "") -> Path:
    """root/path, refusing paths (and existing links) that would land outside root."""
    target = root / check_relpath(path, where)
    real_root = root.resolve()
    real = target.resolve()
    if real != real_root and real_root not in real.parents:
        raise StoreError(
            f"unsafe file path {path!r}{' from ' + where if where else ''}: it leaves {root} through a link"
        )
    return target
