"""The Hugging Face Hub: the revision API gives the commit, sizes and LFS sha256; files come from resolve/.

HF_ENDPOINT moves the whole Hub (a mirror speaking the same API); HF_TOKEN is sent as a bearer
token to that endpoint's host only (see catalog.sources.http.send).
"""

from __future__ import annotations

import os
from urllib.parse import quote

import httpx

from catalog.errors import SettingError, SourceError
from catalog.schema import Variant
from catalog.sources import ResolvedFile, ResolvedVariant, select_files
from catalog.sources.http import get_json, setting_url

DEFAULT_ENDPOINT = "https://huggingface.co"
TOKEN_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


def endpoint() -> str:
    """HF_ENDPOINT (an http or https URL, else a SettingError naming it), or huggingface.co."""
    value = os.environ.get("HF_ENDPOINT")
    return setting_url(value, "HF_ENDPOINT") if value else DEFAULT_ENDPOINT


def token_headers() -> dict[str, str]:
    """The bearer token of HF_TOKEN (or HUGGING_FACE_HUB_TOKEN), without surrounding white space: visible
    ASCII, as an HTTP header must be, else a SettingError naming the variable (never showing the token)."""
    for name in TOKEN_VARS:
        token = (os.environ.get(name) or "").strip()
        if token:
            if not all("!" <= c <= "~" for c in token):
                raise SettingError(f"{name}: a token must be visible ASCII characters (no spaces or accents); "
                                   "this one is not: check how it was copied")
            return {"Authorization": f"Bearer {token}"}
    return {}


def resolve_repo(
    client: httpx.Client,
    base: str,
    repo: str,
    revision: str,
    subfolder: str | None,
    private_headers: dict[str, str],
    pin_commit: bool = True,
) -> tuple[str, dict[str, ResolvedFile]]:
    """Ask `{base}/api/models/{repo}/revision/{revision}`; return the commit and the files by path.

    File URLs name the commit (a moving branch cannot change under a download) unless `pin_commit`
    is False, for mirrors whose revisions never move and whose static exports only have revision folders.
    """
    api = f"{base}/api/models/{repo}/revision/{quote(revision, safe='')}?blobs=true"
    info = get_json(client, api, private_headers, what=f"no model {repo!r} at revision {revision!r}")
    commit = info.get("sha") if isinstance(info, dict) else None
    siblings = info.get("siblings") if isinstance(info, dict) else None
    if not isinstance(commit, str) or not isinstance(siblings, list):
        raise SourceError(
            f"{api}: the answer has no 'sha' and 'siblings' (is this a Hub-compatible endpoint?)"
        )
    prefix = subfolder.strip("/") + "/" if subfolder else ""
    files: dict[str, ResolvedFile] = {}
    for s in siblings:
        name = s.get("rfilename") if isinstance(s, dict) else None
        if not isinstance(name, str) or not name.startswith(prefix):
            continue
        lfs = s.get("lfs") if isinstance(s.get("lfs"), dict) else None
        size = lfs.get("size") if lfs else s.get("size")
        sha256 = lfs.get("sha256") or lfs.get("oid") if lfs else s.get("sha256")
        git_sha1 = None if lfs else s.get("blobId")
        rel = name[len(prefix) :]
        files[rel] = ResolvedFile(
            path=rel,
            url=f"{base}/{repo}/resolve/{commit if pin_commit else quote(revision, safe='')}/{quote(name)}",
            size=size if isinstance(size, int) else None,
            sha256=sha256 if isinstance(sha256, str) else None,  # checked_file refuses a malformed one
            git_sha1=git_sha1 if isinstance(git_sha1, str) else None,
            headers=private_headers,
        )
    return commit, files


def resolve(variant: Variant, client: httpx.Client) -> ResolvedVariant:
    """Resolve a `huggingface` variant against HF_ENDPOINT (default huggingface.co)."""
    src = variant.source
    base = endpoint()
    commit, files = resolve_repo(
        client, base, src.repo or "", src.revision or "main", src.subfolder, token_headers()
    )
    where = f"{base}/{src.repo}@{src.revision or 'main'}"
    return ResolvedVariant(
        variant.id, "huggingface", commit, select_files(variant, files, where), origin=base
    )
