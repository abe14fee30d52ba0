"""`toolkit mirror export DIR`: the mirror's layout as static files, for any web server, bucket or CDN.

Files are hard links to the store's blobs where DIR is on the same filesystem, copies otherwise.
Static servers supply Range and ETag themselves; the sha256 of each file is in the revision JSON.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from catalog.errors import StoreError
from toolkit.files import write_atomic
from toolkit.mirror.layout import index_json, published_variants
from toolkit.store.blobs import Store
from toolkit.store.safety import safe_join


@dataclass
class ExportReport:
    variants: list[str]
    files: int
    linked: int
    copied: int
    bytes: int


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(data, indent=1))


def export(store: Store, dest: Path, variant_ids: set[str] | None = None) -> ExportReport:
    """Write the mirror layout of every complete variant (or those named) under `dest`."""
    published = published_variants(store)
    if variant_ids is not None:
        published = {k: v for k, v in published.items() if v.variant_id in variant_ids}
        missing = variant_ids - {v.variant_id for v in published.values()}
        if missing:
            raise StoreError(f"not in the store (or incomplete): {', '.join(sorted(missing))}")
    report = ExportReport([], 0, 0, 0, 0)
    done = set()
    for (repo, revision), pv in sorted(published.items()):
        if revision != pv.revision or pv.variant_id in done:
            continue
        done.add(pv.variant_id)
        report.variants.append(pv.variant_id)
        _write_json(dest / "api" / "models" / repo / "revision" / revision, pv.revision_json())
        base = dest / repo / "resolve" / revision
        base.mkdir(parents=True, exist_ok=True)
        for f in pv.files:
            target = safe_join(base, f.path, where=pv.variant_id)
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists() and target.stat().st_size == f.size:
                report.files += 1
                continue
            tmp = target.with_name(f".{target.name}.tmp")
            tmp.unlink(missing_ok=True)
            try:
                os.link(store.blob_path(f.sha256), tmp)
                report.linked += 1
            except OSError:
                shutil.copyfile(store.blob_path(f.sha256), tmp)
                report.copied += 1
            os.replace(tmp, target)
            report.files += 1
            report.bytes += f.size
    _write_json(dest / "api" / "toolkit" / "variants", index_json(published))
    return report
