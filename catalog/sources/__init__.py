"""Sources turn a variant into a list of files to fetch: path, size, digests, URL and headers.

`resolve(variant)` picks the source module by `variant.source.type`; each module exposes
`resolve(variant, client) -> ResolvedVariant`. Network access goes through an `httpx.Client`
passed in (the download engine builds it with the proxy and CA settings).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from catalog.errors import IntegrityError, NotFoundError, SourceError

if TYPE_CHECKING:
    import httpx

    from catalog.schema import Variant


@dataclass(frozen=True)
class ResolvedFile:
    """One file to fetch. `headers` are sent only to the URL's own host, never after a redirect elsewhere."""

    path: str
    url: str
    size: int | None = None
    sha256: str | None = None
    git_sha1: str | None = None
    md5: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ResolvedVariant:
    """A variant's files at one pinned revision of one source."""

    variant_id: str
    source: str
    revision: str
    files: tuple[ResolvedFile, ...]
    origin: str = ""

    @property
    def total_size(self) -> int:
        return sum(f.size or 0 for f in self.files)


def select_files(variant: Variant, listing: dict[str, ResolvedFile], where: str) -> tuple[ResolvedFile, ...]:
    """Keep the files the variant asks for (its pinned list, else `include` globs, else all),
    cross-checking pinned sizes and digests against what the source reports."""
    src = variant.source
    if variant.files:
        chosen = []
        for entry in variant.files:
            found = listing.get(entry.path)
            if found is None:
                raise NotFoundError(
                    f"{where}: file {entry.path!r} of {variant.id} is not in the source listing"
                )
            if entry.size is not None and found.size is not None and entry.size != found.size:
                raise IntegrityError(
                    f"{where}: {entry.path}: the manifest pins {entry.size} bytes, "
                    f"the source reports {found.size}"
                )
            if entry.sha256 and found.sha256 and entry.sha256 != found.sha256:
                raise IntegrityError(
                    f"{where}: {entry.path}: the manifest pins sha256 {entry.sha256}, "
                    f"the source reports {found.sha256}"
                )
            chosen.append(
                ResolvedFile(
                    path=found.path,
                    url=found.url,
                    size=entry.size if entry.size is not None else found.size,
                    sha256=entry.sha256 or found.sha256,
                    git_sha1=found.git_sha1,
                    md5=found.md5,
                    headers=found.headers,
                )
            )
        return tuple(chosen)
    paths = sorted(listing)
    if src.include:
        paths = [p for p in paths if any(fnmatch.fnmatchcase(p, pat) for pat in src.include)]
    if not paths:
        raise NotFoundError(
            f"{where}: no files for {variant.id}" + (f" match {list(src.include)}" if src.include else "")
        )
    return tuple(listing[p] for p in paths)


def resolve(variant: Variant, client: httpx.Client) -> ResolvedVariant:
    """Resolve a variant through the source its manifest names (`toolkit.download.http.make_client()`)."""
    kind = variant.source.type
    if kind == "huggingface":
        from catalog.sources import huggingface as mod
    elif kind in ("mirror", "url"):
        from catalog.sources import mirror as mod
    elif kind == "local":
        from catalog.sources import local as mod
    elif kind == "azureml":
        from catalog.sources import azureml as mod
    else:
        raise SourceError(f"{variant.id}: unknown source type {kind!r}")
    return mod.resolve(variant, client)
