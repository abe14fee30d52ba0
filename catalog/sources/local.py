"""A folder or an archive (.zip, .tar, .tar.gz, ...) on disk: every regular file under `source.path`
(optionally a subfolder), copied and hashed into the store by the engine. Links that leave the folder,
and links inside archives, are refused; member paths go through the store's path checks (no zip-slip)."""

from __future__ import annotations

import contextlib
import os
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, unquote, urlsplit
from urllib.request import url2pathname

import httpx

from catalog.errors import NotFoundError, SourceError
from catalog.schema import Variant
from catalog.sources import LOCAL, ResolvedFile, ResolvedVariant, select_files


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
            files[rel] = ResolvedFile(path=rel, url=real.as_uri(), size=real.stat().st_size, digest_from=LOCAL)
    return files


def list_archive(archive: Path, subfolder: str | None) -> dict[str, ResolvedFile]:
    """Every regular member of a zip or tar archive (under `subfolder`), by path relative to it."""
    prefix = subfolder.strip("/") + "/" if subfolder else ""
    members: list[tuple[str, int]] = []
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            members = [(i.filename, i.file_size) for i in z.infolist() if not i.is_dir()]
    else:
        with tarfile.open(archive) as t:
            for m in t.getmembers():
                if m.issym() or m.islnk():
                    raise SourceError(
                        f"{archive}: member {m.name!r} is a link; links in archives are refused"
                    )
                if m.isfile():
                    members.append((m.name, m.size))
    base = archive.resolve().as_uri()
    return {
        name[len(prefix) :]: ResolvedFile(path=name[len(prefix) :], url=f"{base}#{quote(name)}", size=size,
                                          digest_from=LOCAL)
        for name, size in members
        if name.startswith(prefix) and len(name) > len(prefix)
    }


@contextlib.contextmanager
def open_local(url: str) -> Iterator[BinaryIO]:
    """Open a file:// URL from this source for reading; `#member` names a member of an archive."""
    u = urlsplit(url)
    path = Path(url2pathname(u.path))
    if not u.fragment:
        with open(path, "rb") as f:
            yield f
        return
    member = unquote(u.fragment)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z, z.open(member) as f:
            yield f  # type: ignore[misc]
        return
    with tarfile.open(path) as t:
        f = t.extractfile(member)
        if f is None:
            raise SourceError(f"{path}: member {member!r} is not a regular file")
        with f:
            yield f


def resolve(variant: Variant, client: httpx.Client | None = None) -> ResolvedVariant:
    """Resolve a `local` variant from its folder or archive."""
    src = variant.source
    root = Path(os.path.expanduser(src.path or ""))
    if root.is_file() and (zipfile.is_zipfile(root) or tarfile.is_tarfile(root)):
        files = list_archive(root, src.subfolder)
    else:
        if src.subfolder:
            root = root / src.subfolder
        if not root.is_dir():
            raise NotFoundError(f"{root}: no such folder or archive (source.path of {variant.id})")
        files = list_folder(root)
    return ResolvedVariant(
        variant.id, "local", str(root), select_files(variant, files, str(root)), origin=str(root)
    )
