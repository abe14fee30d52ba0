"""Sources turn a variant into a list of files to fetch: path, size, digests, URL and headers.

`resolve(variant)` picks the source module by `variant.source.type`; each module exposes
`resolve(variant, client) -> ResolvedVariant`. Network access goes through an `httpx.Client`
passed in (the download engine builds it with the proxy and CA settings).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from catalog.errors import IntegrityError, NotFoundError, SourceError

if TYPE_CHECKING:
    import httpx

    from catalog.schema import Variant


# Who vouches for a file's digest (sha256, else git's blob sha1 or md5). The promise: bytes get a final name
# only after a check against a digest that the server sending them could not choose: PINNED (the manifest),
# ORIGIN (the variant's own source: the Hub's API, the registry's listing) or LOCAL (the user's own disk).
# Anything less is said in the output: MIRROR (only the mirror's own listing), NONE (no digest, size only).
PINNED, ORIGIN, LOCAL, MIRROR, NONE = "pinned", "origin", "local", "mirror", "none"
INDEPENDENT = (PINNED, ORIGIN, LOCAL)
MAX_FILE_BYTES = 1 << 40  # 1 TiB: far above any model file, far below what would overflow a plan
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ResolvedFile:
    """One file to fetch. `headers` are sent only to the URL's own host, never after a redirect elsewhere.
    `digest_from` says who vouches for `sha256` (PINNED, ORIGIN, MIRROR or NONE)."""

    path: str
    url: str
    size: int | None = None
    sha256: str | None = None
    git_sha1: str | None = None
    md5: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    digest_from: str = ORIGIN


def checked_file(rf: ResolvedFile, where: str) -> ResolvedFile:
    """A listed file whose size and digests are in range and well formed; SourceError naming it otherwise."""
    if rf.size is not None and (type(rf.size) is not int or not 0 <= rf.size <= MAX_FILE_BYTES):
        raise SourceError(f"{where}: {rf.path}: size {rf.size!r} is out of range (0 to {MAX_FILE_BYTES} bytes)")
    sha = rf.sha256.lower() if isinstance(rf.sha256, str) else rf.sha256
    if sha is not None and not SHA256_HEX.match(sha):
        raise SourceError(f"{where}: {rf.path}: sha256 {str(rf.sha256)[:80]!r} is not 64 hex digits")
    for name, value, length in (("git sha1", rf.git_sha1, 40), ("md5", rf.md5, 32)):
        if value is not None and not re.fullmatch(f"[0-9a-f]{{{length}}}", str(value).lower()):
            raise SourceError(f"{where}: {rf.path}: {name} {str(value)[:80]!r} is malformed")
    vouched = sha or rf.git_sha1 or rf.md5 or rf.digest_from == LOCAL
    return replace(rf, sha256=sha, digest_from=rf.digest_from if vouched else NONE)


def digest_counts(files: tuple[ResolvedFile, ...] | list[ResolvedFile]) -> dict[str, int]:
    """How many files each kind of digest vouches for (for reports and --json)."""
    counts = dict.fromkeys((PINNED, ORIGIN, LOCAL, MIRROR, NONE), 0)
    for f in files:
        counts[f.digest_from] += 1
    return counts


@dataclass(frozen=True)
class ResolvedVariant:
    """A variant's files at one pinned revision of one source."""

    variant_id: str
    source: str
    revision: str
    files: tuple[ResolvedFile, ...]
    origin: str = ""
    notes: tuple[str, ...] = ()  # what the caller should tell the user (e.g. digests only the mirror vouches for)

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
            found = checked_file(found, where)
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
                    digest_from=PINNED if entry.sha256 else found.digest_from,
                )
            )
        return tuple(checked_file(f, where) for f in chosen)
    paths = sorted(listing)
    if src.include:
        paths = [p for p in paths if any(fnmatch.fnmatchcase(p, pat) for pat in src.include)]
    if not paths:
        raise NotFoundError(
            f"{where}: no files for {variant.id}" + (f" match {list(src.include)}" if src.include else "")
        )
    return tuple(checked_file(listing[p], where) for p in paths)


def resolve(variant: Variant, client: httpx.Client) -> ResolvedVariant:
    """Resolve a variant through the source its manifest names (`catalog.sources.http.make_client()`)."""
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
