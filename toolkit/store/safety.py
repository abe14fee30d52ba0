"""Path safety: a file path from a manifest or a source must stay inside the folder it is written to."""

from __future__ import annotations

import re
from pathlib import Path

from catalog.errors import StoreError

_DRIVE = re.compile(r"^[A-Za-z]:")
MAX_NAME_BYTES = 255  # one path component, on ext4, NTFS, APFS


def _shown(path: str) -> str:
    """A path for an error message: a hostile one may be megabytes long."""
    return repr(path) if len(path) <= 120 else repr(path[:120]) + f"... ({len(path)} characters)"


def check_listing(paths: list[str], where: str = "") -> None:
    """Every path safe, and no two that cannot both be files in one folder: `a` and `a/b`, or names equal but
    for case (one file on Windows and macOS). Checked before anything is fetched."""
    seen: dict[str, str] = {}
    for path in paths:
        check_relpath(path, where)
        key = path.casefold()
        if key in seen:
            raise StoreError(f"file paths {_shown(seen[key])} and {_shown(path)}{' from ' + where if where else ''} "
                             "differ only in case: they would be one file on Windows and macOS")
        seen[key] = path
    folders = {p.casefold().rsplit("/", i)[0] for p in paths for i in range(1, p.count("/") + 1)}
    for path in paths:
        if path.casefold() in folders:
            raise StoreError(f"file path {_shown(path)}{' from ' + where if where else ''} is also a folder of "
                             "another file in the listing")


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
    elif any(len(part.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES for part in path.split("/")):
        why = f"has a name longer than {MAX_NAME_BYTES} bytes, more than file systems take"
    if why:
        raise StoreError(f"unsafe file path {_shown(path)}{' from ' + where if where else ''}: it {why}")
    return path


def safe_join(root: Path, path: str, where: str = "") -> Path:
    """root/path, refusing paths (and existing links) that would land outside root."""
    target = root / check_relpath(path, where)
    real_root = root.resolve()
    real = target.resolve()
    if real != real_root and real_root not in real.parents:
        raise StoreError(
            f"unsafe file path {_shown(path)}{' from ' + where if where else ''}: it leaves {root} through a link"
        )
    return target
