"""What a mirror publishes, computed from the store: one Hub-style repo per complete variant.

Variant `name:version` -> repo `toolkit/<name>`, revision `<version>` (or its commit id):
  api/models/toolkit/<name>/revision/<version>      {"id", "sha", "siblings": [{rfilename, size, lfs}]}
  toolkit/<name>/resolve/<version>/<path>          the file (Range, ETag = "<sha256>")
  api/toolkit/variants                             an index of every variant served
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from catalog.sources.mirror import mirror_repo
from toolkit import paths
from toolkit.store.blobs import Store
from toolkit.store.snapshots import SnapshotFile, snapshot_files


@dataclass(frozen=True)
class PublishedVariant:
    variant_id: str
    repo: str
    revision: str
    commit: str
    files: tuple[SnapshotFile, ...]

    def revision_json(self) -> dict:
        return {
            "id": self.repo,
            "modelId": self.repo,
            "sha": self.commit,
            "toolkit_variant": self.variant_id,
            "siblings": [
                {"rfilename": f.path, "size": f.size, "lfs": {"sha256": f.sha256, "size": f.size}}
                for f in self.files
            ],
        }


def commit_id(files: tuple[SnapshotFile, ...]) -> str:
    """A stable 40-hex id for a snapshot's content (Hub clients expect a commit hash)."""
    text = json.dumps([[f.path, f.size, f.sha256] for f in files])
    return hashlib.sha1(text.encode()).hexdigest()


def published_variants(store: Store) -> dict[tuple[str, str], PublishedVariant]:
    """Every complete variant in the store, by (repo, revision); the commit id works as a revision too."""
    out: dict[tuple[str, str], PublishedVariant] = {}
    for vid in sorted(paths.installed_variant_ids(store.root)):
        files = tuple(snapshot_files(vid, store.root))
        repo, revision = mirror_repo(vid)
        pv = PublishedVariant(vid, repo, revision, commit_id(files), files)
        out[(repo, revision)] = pv
        out[(repo, pv.commit)] = pv
    return out


def index_json(published: dict[tuple[str, str], PublishedVariant]) -> dict:
    seen = {pv.variant_id: pv for pv in published.values()}
    return {
        "variants": [
            {
                "id": pv.variant_id,
                "repo": pv.repo,
                "revision": pv.revision,
                "sha": pv.commit,
                "size": sum(f.size for f in pv.files),
                "files": len(pv.files),
            }
            for pv in sorted(seen.values(), key=lambda p: p.variant_id)
        ]
    }


def blob_for(store: Store, f: SnapshotFile) -> Path:
    return store.blob_path(f.sha256)
