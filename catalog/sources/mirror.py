"""A toolkit mirror: the Hub-compatible subset that `toolkit mirror serve` serves and `mirror export` writes.

A variant `name:version` lives at repo `toolkit/<name>`, revision `<version>`:
`{base}/api/models/toolkit/<name>/revision/<version>` and `{base}/toolkit/<name>/resolve/<version>/<path>`.
"""

from __future__ import annotations

import os
from dataclasses import replace

import httpx

from catalog.errors import DiskFullError, DownloadError, IntegrityError, SourceError, ToolkitError
from catalog.schema import Variant
from catalog.sources import INDEPENDENT, MIRROR, ORIGIN, PINNED, ResolvedFile, ResolvedVariant, select_files
from catalog.sources import resolve as resolve_origin
from catalog.sources.http import quick_checks, setting_url
from catalog.sources.huggingface import resolve_repo

ENV_MIRROR = "TOOLKIT_MIRROR"
MIRROR_OWNER = "toolkit"


def mirror_repo(variant_id: str) -> tuple[str, str]:
    """The (repo, revision) under which a mirror serves a variant."""
    name, _, version = variant_id.rpartition(":")
    return f"{MIRROR_OWNER}/{name}", version


def configured_mirror(explicit: str | None = None) -> str | None:
    """--mirror, else TOOLKIT_MIRROR, else None; a SettingError naming the one given if it is not an http(s) URL."""
    if explicit:
        return setting_url(explicit, "--mirror")
    url = os.environ.get(ENV_MIRROR)
    return setting_url(url, ENV_MIRROR) if url else None


def hands_over(variant: Variant, mirror: str, error: BaseException) -> bool:
    """Whether a failure of the mirror at `mirror` (resolving or transferring `variant`) hands the variant over
    to its own source: any source or network failure, a file list or digest the origin contradicts included,
    unless the disk is full (the own source would not fit either) or the variant's own source is that mirror."""
    if isinstance(error, DiskFullError) or not isinstance(error, SourceError | DownloadError):
        return False
    own = variant.source
    return not (own.type in ("mirror", "url") and (own.base_url or "").rstrip("/") == mirror.rstrip("/"))


def resolve_from(base: str, variant: Variant, client: httpx.Client) -> ResolvedVariant:
    """Resolve any variant (whatever its own source) from the mirror at `base`.

    The mirror's own digests are only as good as the mirror: a file the manifest does not pin is checked
    against the variant's own source (origin) when that answers, with the origin's digests only (for a
    Hub file outside LFS that is its git blob sha1, never the sha256 the mirror adds); a digest that differs,
    or a file list that differs, is an IntegrityError. Where the origin cannot be reached the files stay
    marked MIRROR for the caller to report (or refuse, with require_pinned).
    """
    repo, revision = mirror_repo(variant.id)
    commit, listing = resolve_repo(client, base.rstrip("/"), repo, revision, None, {}, pin_commit=False)
    served = {p: replace(f, digest_from=MIRROR) for p, f in listing.items()}
    files = select_files(variant, served, base)
    unpinned = [f for f in files if f.digest_from != PINNED]
    if not unpinned or variant.source.type in ("mirror", "url"):
        return ResolvedVariant(variant.id, "mirror", commit, files, origin=base)
    try:
        with quick_checks():
            origin = {f.path: f for f in resolve_origin(variant, client).files}
    except ToolkitError as e:
        note = f"the origin source could not vouch for the mirror's digests ({e})"
        return ResolvedVariant(variant.id, "mirror", commit, files, origin=base, notes=(note,))
    listed = {f.path for f in files}
    if listed != set(origin):
        missing, extra = sorted(set(origin) - listed), sorted(listed - set(origin))
        raise IntegrityError(f"{base}: {variant.id}: the mirror's file list is not the origin's "
                             f"(missing {missing[:5]}, extra {extra[:5]})")
    return ResolvedVariant(variant.id, "mirror", commit, tuple(_vouched(f, origin[f.path], base) for f in files),
                           origin=base)


def _vouched(served: ResolvedFile, own: ResolvedFile, base: str) -> ResolvedFile:
    """A mirror's file to be checked against the origin's digests alone; the mirror's must not contradict them."""
    if served.digest_from == PINNED or own.digest_from not in INDEPENDENT:
        return served
    for name, mine, theirs in (("sha256", own.sha256, served.sha256), ("size", own.size, served.size)):
        if mine is not None and theirs is not None and mine != theirs:
            raise IntegrityError(f"{base}: {served.path}: the mirror says {name} {theirs}, the origin says {mine}")
    # the origin's digests replace the mirror's: a sha256 only the mirror gave would make the transfer skip the
    # origin's git sha1 or md5
    return replace(served, sha256=own.sha256, git_sha1=own.git_sha1, md5=own.md5,
                   size=own.size if own.size is not None else served.size, digest_from=ORIGIN)


def resolve(variant: Variant, client: httpx.Client) -> ResolvedVariant:
    """Resolve a `mirror`/`url` variant: its base_url, and its repo/revision when the manifest names them."""
    src = variant.source
    base = (src.base_url or "").rstrip("/")
    if src.repo:
        commit, files = resolve_repo(client, base, src.repo, src.revision or "main", src.subfolder, {})
        return ResolvedVariant(variant.id, "mirror", commit, select_files(variant, files, base), origin=base)
    return resolve_from(base, variant, client)
