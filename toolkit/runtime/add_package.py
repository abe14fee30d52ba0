"""Put a package folder you built into the store under a variant id, with a manifest that pins its files.

`toolkit cache add PACKAGE --id NAME:VERSION` reads the package (genai_config.json must load), takes each
file's sha256 here, installs the files through the download engine's `local` source (which checks every
byte against those digests) and writes a manifest into the user's manifests folder. Then `toolkit run
ALIAS` runs it, `toolkit mirror serve` publishes it, and another machine given the manifest file downloads
it with `toolkit download ALIAS --mirror URL`, checking each file against the pinned digests, which the
mirror cannot choose.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog import jsonio
from catalog.errors import ManifestError, MissingFileError, StoreError
from catalog.loader import Catalog, config_dir, load_manifest_file
from catalog.schema import ALIAS_RE, VARIANT_ID_RE, Manifest, parse_manifest
from catalog.sources.local import list_folder
from toolkit import paths
from toolkit.download.api import ensure_variant
from toolkit.download.progress import Progress
from toolkit.runtime.config import GenaiConfig, load_genai_config
from toolkit.runtime.model import package_root
from toolkit.store.blobs import Store, sha256_file
from toolkit.store.snapshots import snapshot_files

# Provider names in genai_config.json -> (device, vendor, execution provider) of the manifest's variant.
PROVIDER_DEVICES = {
    "qnn": ("npu", "qualcomm", "QNNExecutionProvider"),
    "openvino": ("npu", "intel", "OpenVINOExecutionProvider"),
    "vitisai": ("npu", "amd", "VitisAIExecutionProvider"),
    "cuda": ("gpu", "nvidia", "CUDAExecutionProvider"),
    "dml": ("gpu", "any", "DmlExecutionProvider"),
    "webgpu": ("gpu", "any", "WebGpuExecutionProvider"),
}


@dataclass(frozen=True)
class AddedPackage:
    alias: str
    variant_id: str
    manifest_path: Path
    snapshot: Path
    files: int
    size_bytes: int

    def as_dict(self) -> dict[str, Any]:
        return {"alias": self.alias, "variant": self.variant_id, "manifest": str(self.manifest_path),
                "path": str(self.snapshot), "files": self.files, "size_bytes": self.size_bytes}


def default_alias(variant_id: str) -> str:
    """`my-model-cpu:1` -> `my_model_cpu`."""
    name = variant_id.rpartition(":")[0].lower()
    return re.sub(r"[^a-z0-9_]+", "_", name).strip("_") or "model"


def _device(config: GenaiConfig) -> tuple[str, str, str]:
    """The device a package was built for: the first non-CPU provider any stage (or the decoder) names."""
    sessions = [config.session, *(s.session for s in config.stages if s.session is not None)]
    for session in sessions:
        for provider in session.providers:
            if provider.name.lower() in PROVIDER_DEVICES:
                return PROVIDER_DEVICES[provider.name.lower()]
    return "cpu", "any", "CPUExecutionProvider"


def _build_info(folder: Path) -> dict[str, Any]:
    """What `toolkit build` recorded about the package (toolkit_manifest.json), or nothing."""
    try:
        data = jsonio.loads((folder / "toolkit_manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _parameter_count(config: GenaiConfig) -> int:
    """An estimate for the catalog's `parameters` column: embeddings and head plus ~12 h^2 per layer."""
    hidden = config.hidden_size or 0
    return max(1, (config.vocab_size or 0) * hidden * 2 + config.num_hidden_layers * 12 * hidden * hidden)


def _short_count(n: int) -> str:
    for unit, size in (("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= size:
            return f"~{n / size:.1f}{unit}"
    return f"~{n}"


def _manifest_data(alias: str, variant_id: str, folder: Path, config: GenaiConfig, files: list[dict]) -> dict:
    info = _build_info(folder)
    device, vendor, ep = _device(config)
    count = _parameter_count(config)
    quantization = info.get("target") or "as built"
    return {
        "schema_version": 1,
        "alias": alias,
        "names": [variant_id.rpartition(":")[0]],
        "display_name": alias,
        "publisher": "local",
        "license": "see the package's source",
        "parameters": _short_count(count),
        "parameter_count": count,
        "context_length": config.context_length,
        "architecture": str(info.get("architecture") or config.model_type),
        "task": "chat",
        "variants": [{
            "id": variant_id,
            "device": device,
            "vendor": vendor,
            "execution_provider": ep,
            "format": "onnx-genai",
            "quantization": str(quantization),
            "source": {"type": "local", "path": str(folder)},
            "size_bytes": sum(f["size"] for f in files),
            "files": files,
            "notes": f"added with `toolkit cache add` from {folder}",
        }],
    }


def _write_manifest(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def add_package(folder: str | Path, variant_id: str, alias: str | None = None,
                progress: Progress | None = None, root: Path | None = None) -> AddedPackage:
    """Install the package at `folder` as `variant_id` (NAME:VERSION) and write its manifest as `alias`."""
    given = Path(folder).expanduser()
    if not given.is_dir():
        raise MissingFileError(f"{given}: no such folder (expected a model package with genai_config.json)")
    if not VARIANT_ID_RE.match(variant_id):
        raise ManifestError("--id", "", f"{variant_id!r} is not a variant id like my-model-cpu:1 (NAME:VERSION)")
    alias = alias or default_alias(variant_id)
    if not ALIAS_RE.match(alias):
        raise ManifestError("--alias", "", f"{alias!r}: lower-case letters, digits and _ only")
    pkg = package_root(given).resolve()
    config = load_genai_config(pkg)  # refuses a folder that is not a loadable package, naming the field
    files = [{"path": rel, "size": rf.size, "sha256": sha256_file(pkg / rel)}
             for rel, rf in sorted(list_folder(pkg).items())]
    manifest_path = config_dir() / "manifests" / f"{alias}.json"
    _check_names(alias, variant_id, manifest_path, files, root)
    data = _manifest_data(alias, variant_id, pkg, config, files)
    if manifest_path.is_file():  # the alias has other variants added before: keep them
        earlier = jsonio.loads(manifest_path.read_text(encoding="utf-8"))
        data["variants"] += [v for v in earlier["variants"] if v.get("id") != variant_id]
    manifest: Manifest = parse_manifest(data, str(manifest_path))  # the file we write must load
    snapshot = ensure_variant(manifest, manifest.variants[0], progress, root=root)
    _write_manifest(manifest_path, data)
    return AddedPackage(alias, variant_id, manifest_path, snapshot, len(files), sum(f["size"] for f in files))


def _check_names(alias: str, variant_id: str, manifest_path: Path, files: list[dict], root: Path | None) -> None:
    """Refuse to shadow another model's alias or to put other bytes under a variant id already in the store."""
    catalog = Catalog.load()
    owner = next((m for m in catalog if m.alias == alias), None)
    if owner is not None and Path(owner.file) != manifest_path:
        raise ManifestError(str(owner.file), "alias", f"{alias!r} is taken; give another with --alias")
    found = catalog.find_variant(variant_id)
    if found is not None and Path(found[0].file) != manifest_path:
        raise ManifestError(str(found[0].file), "variants.id", f"{variant_id!r} is already in this manifest; "
                            "give the package another --id")
    if manifest_path.is_file():
        load_manifest_file(manifest_path)  # a broken file we would overwrite: say so rather than lose it
    store_root = Store(root).root
    if variant_id in paths.installed_variant_ids(store_root):
        have = {(f.path, f.sha256) for f in snapshot_files(variant_id, store_root)}
        if have != {(f["path"], f["sha256"]) for f in files}:
            raise StoreError(f"{variant_id} is already in the store with other files; "
                             f"remove it first (toolkit cache remove {variant_id}) or give another --id")
