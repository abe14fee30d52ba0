"""A folder on disk: every regular file under `source.path` (optionally a subfolder), copied and hashed
into the store by the engine. Links that leave the folder are refused."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from catalog.errors import NotFoundError, SourceError
from catalog.schema import Variant
from catalog.sources import ResolvedFile, ResolvedVariant, select_files


def list_folder(root: Path) -> dict[str, ResolvedFile]:
    """Every regular file under root, by POSIX relative path."""
    files: dict[str, ResolvedFile] = {}
    real_root = root.resolve()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != ".toolkit")
        for name in sorted(filenames):
            p = Path(dirpath) / name
            real = p.resolve()
            if real_root not in real.parents:
                raise SourceError(f"{p}: a link that leaves {root} is refused")
            if not real.is_file():
                continue
            rel = p.relative_to(root).as_posix()
            files[rel] = ResolvedFile(path=rel, url=real.as_uri(), size=real.stat().st_size)
    return files


def resolve(variant: Variant, client: httpx.Client | None = None) -> ResolvedVariant:
    """Resolve a `local` variant from its folder."""
    src = variant.source
    root = Path(os.path.expanduser(src.path or ""))
    if src.subfolder:
        root = root / src.subfolder
    if not root.is_dir():
        raise NotFoundError(f"{root}: no such folder (source.path of {variant.id})")
    return ResolvedVariant(
        variant.id, "local", str(root), select_files(variant, list_folder(root), str(root)), origin=str(root)
    )
