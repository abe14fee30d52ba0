"""A toolkit mirror: the Hub-compatible subset that `toolkit mirror serve` serves and `mirror export` writes.

A variant `name:version` lives at repo `toolkit/<name>`, revision `<version>`:
`{base}/api/models/toolkit/<name>/revision/<version>` and `{base}/toolkit/<name>/resolve/<version>/<path>`.
"""

from __future__ import annotations

import os

import httpx

from catalog.schema import Variant
from catalog.sources import ResolvedVariant, select_files
from catalog.sources.huggingface import resolve_repo

ENV_MIRROR = "TOOLKIT_MIRROR"
MIRROR_OWNER = "toolkit"


def mirror_repo(variant_id: str) -> tuple[str, str]:
    """The (repo, revision) under which a mirror serves a variant."""
    name, _, version = variant_id.rpartition(":")
    return f"{MIRROR_OWNER}/{name}", version


def configured_mirror(explicit: str | None = None) -> str | None:
    """--mirror, else TOOLKIT_MIRROR, else None."""
    url = explicit or os.environ.get(ENV_MIRROR) or None
    return url.rstrip("/") if url else None


def resolve_from(base: str, variant: Variant, client: httpx.Client) -> ResolvedVariant:
    """Resolve any variant (whatever its own source) from the mirror at `base`."""
    repo, revision = mirror_repo(variant.id)
    commit, files = resolve_repo(client, base.rstrip("/"), repo, revision, None, {}, pin_commit=False)
    return ResolvedVariant(variant.id, "mirror", commit, select_files(variant, files, base), origin=base)


def resolve(variant: Variant, client: httpx.Client) -> ResolvedVariant:
    """Resolve a `mirror`/`url` variant: its base_url, and its repo/revision when the manifest names them."""
    src = variant.source
    base = (src.base_url or "").rstrip("/")
    if src.repo:
        commit, files = resolve_repo(client, base, src.repo, src.revision or "main", src.subfolder, {})
        return ResolvedVariant(variant.id, "mirror", commit, select_files(variant, files, base), origin=base)
    return resolve_from(base, variant, client)
