"""Put a package folder you built into the store under a variant id, with a manifest that pins its files.

`toolkit cache add PACKAGE --id NAME:VERSION` reads the package (genai_config.json must load), takes each
file's sha256 here, installs the files through the download engine's `local` source (which checks every
byte against those digests) and writes a manifest into the user's manifests folder. Then `toolkit run
ALIAS` runs it, `toolkit mirror serve` publishes it, and another machine given the manifest file downloads
it with `toolkit download ALIAS --mirror URL`, checking each file against the pinned digests, which the
mirror cannot choose.

It takes over nothing: no name another manifest answers to, no manifest file it did not write itself (its own
carry `publisher: local` and ADDED_NOTE in every variant's notes), and a failure leaves no half state (the
manifest is written to a temporary file before the install and renamed into place after it).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog import jsonio
from catalog.errors import (
    DiskFullError,
    ManifestError,
    MissingFileError,
    PackageError,
    SourceError,
    StoreError,
    ToolkitError,
)
from catalog.loader import (
    builtin_manifest_dir,
    config_dir,
    load_manifest_file,
    normalize_name,
    user_manifest_paths,
)
from catalog.schema import ALIAS_RE, PROVIDERS, VARIANT_ID_RE, Manifest, parse_manifest
from catalog.sources.local import list_folder
from toolkit import paths
from toolkit.download.api import ensure_variant
from toolkit.download.progress import Progress
from toolkit.files import sha256_file
from toolkit.runtime.config import GenaiConfig, load_genai_config
from toolkit.runtime.model import package_root
from toolkit.store.blobs import Store
from toolkit.store.cache import remove_variant
from toolkit.store.snapshots import snapshot_files

# What marks a manifest `cache add` wrote (and so may add variants to): this publisher, and every variant's
# notes starting with ADDED_NOTE. A manifest without both is never rewritten.
LOCAL_PUBLISHER = "local"
ADDED_NOTE = "added with `toolkit cache add`"


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
            found = PROVIDERS.get(provider.name.lower())
            if found is not None and found[1] != "cpu":
                ep, device, vendor = found
                return device, vendor, ep
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
        "publisher": LOCAL_PUBLISHER,
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
            "notes": f"{ADDED_NOTE} from {folder}",
        }],
    }


def add_package(folder: str | Path, variant_id: str, alias: str | None = None,
                progress: Progress | None = None, root: Path | None = None) -> AddedPackage:
    """Install the package at `folder` as `variant_id` (NAME:VERSION) and write its manifest as `alias`.

    Everything that can be checked is checked before anything is written: the ids, the names (no other
    model may answer to them), the paths (UTF-8 text, no link leaving the package), the store (no other bytes
    under the id) and the manifests folder (the new manifest is written to a temporary file in it). Then the
    files are installed and the manifest renamed into place; if that rename fails, what this call installed
    is removed again."""
    given = Path(folder).expanduser()
    _require_text(str(given), "the package path")
    if not given.is_dir():
        raise MissingFileError(f"{given}: no such folder (expected a model package with genai_config.json)")
    if not VARIANT_ID_RE.match(variant_id):
        raise ManifestError("--id", "", f"{variant_id!r} is not a variant id like my-model-cpu:1 (NAME:VERSION)")
    alias = alias or default_alias(variant_id)
    if not ALIAS_RE.match(alias):
        raise ManifestError("--alias", "", f"{alias!r}: lower-case letters, digits and _ only")
    manifest_path = config_dir() / "manifests" / f"{alias}.json"
    earlier_bytes, earlier = _own_earlier_manifest(manifest_path, alias)
    _check_names(alias, variant_id, manifest_path, earlier)  # cheap: before hashing gigabytes
    pkg = package_root(given).resolve()
    _require_text(str(pkg), "the package path")
    config = load_genai_config(pkg)  # refuses a folder that is not a loadable package, naming the field
    _refuse_links_leaving(pkg)
    listing = list_folder(pkg)
    for rel in listing:
        _require_text(str(pkg / rel), "a file name in the package")
    files = [{"path": rel, "size": rf.size, "sha256": sha256_file(pkg / rel)} for rel, rf in sorted(listing.items())]
    store_root = Store(root).root
    _check_store(variant_id, files, store_root)
    data = _merged(earlier_bytes, _manifest_data(alias, variant_id, pkg, config, files))
    manifest: Manifest = parse_manifest(data, str(manifest_path))  # the file we write must load
    was_in_store = variant_id in paths.installed_variant_ids(store_root)
    tmp, created = _write_temporary(manifest_path, _json_bytes(data))
    try:
        snapshot = ensure_variant(manifest, manifest.variant(variant_id), progress, root=root)
    except BaseException:
        _discard(tmp, created)
        raise
    try:
        _put_in_place(tmp, manifest_path, earlier_bytes)
    except (OSError, ToolkitError) as e:
        _discard(tmp, created)
        raise _undo_install(variant_id, was_in_store, store_root, manifest_path, e) from e
    except BaseException:
        _discard(tmp, created)
        raise
    return AddedPackage(alias, variant_id, manifest_path, snapshot, len(files), sum(f["size"] for f in files))


def _require_text(path: str, what: str) -> None:
    """Refuse a path that is not UTF-8 text: the manifest records it as text, and file:// URLs need it."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        try:
            shown = os.fsencode(path).decode("utf-8", "backslashreplace")
        except UnicodeError:
            shown = path.encode("utf-8", "backslashreplace").decode("ascii")
        raise PackageError(f"{shown}: {what} is not valid UTF-8 text, which the manifest needs; "
                           "rename it (or move the package to a folder whose path is)") from None


def _is_own(manifest: Manifest) -> bool:
    """Whether `toolkit cache add` wrote this manifest: publisher `local`, every variant's notes saying so."""
    return manifest.publisher == LOCAL_PUBLISHER and all(v.notes.startswith(ADDED_NOTE) for v in manifest.variants)


def _own_earlier_manifest(path: Path, alias: str) -> tuple[bytes | None, Manifest | None]:
    """The bytes and manifest `cache add` wrote earlier for `alias` at `path` (None, None if there is none);
    any other file there is refused, so that a manifest someone else wrote is never rewritten."""
    if not os.path.lexists(path):
        return None, None
    leave = "left as it is (`toolkit cache add` only adds to a manifest it wrote for the same alias); give another --alias"
    if path.is_symlink() or not path.is_file():
        raise ManifestError(str(path), "", f"not a plain file, {leave}")
    earlier = load_manifest_file(path)  # a broken file we would overwrite: say so rather than lose it
    if earlier.alias != alias:
        raise ManifestError(str(path), "alias", f"holds model {earlier.alias!r}, not {alias!r}, and is {leave}")
    if not _is_own(earlier):
        raise ManifestError(str(path), "", f"model {alias!r} was not written by `toolkit cache add` and is {leave}")
    return path.read_bytes(), earlier


def _merged(earlier: bytes | None, new: dict) -> dict:
    """The new manifest; or the earlier one as it was, with the new variant first (or in place of the variant
    with its id, added before and since removed from the store)."""
    if earlier is None:
        return new
    data = jsonio.loads(earlier)
    variant = new["variants"][0]
    ids = [v.get("id") for v in data["variants"]]
    if variant["id"] in ids:
        data["variants"][ids.index(variant["id"])] = variant
    else:
        data["variants"].insert(0, variant)
    return data


def _json_bytes(data: dict) -> bytes:
    """The manifest as UTF-8 JSON; with \\u escapes where a string holds a lone surrogate (JSON allows it)."""
    try:
        return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    except UnicodeEncodeError:
        return (json.dumps(data, indent=2) + "\n").encode("ascii")


def _answers_to(manifest: Manifest) -> dict[str, str]:
    """Every name `Catalog.get` may resolve to this model, normalized, with what it is (`variant 'x-cpu'`)."""
    names = {normalize_name(i): f"variant {i!r}" for v in manifest.variants for i in (v.id, v.name)}
    for kind, values in (("name", (manifest.display_name, *manifest.names)), ("alias", (manifest.alias,))):
        names.update((normalize_name(n), f"{kind} {n!r}") for n in values)
    return names


def _manifest_files() -> list[Path]:
    """Every manifest file the catalog loads (built-in, the user's folder, TOOLKIT_MANIFESTS)."""
    found = []
    for p in [builtin_manifest_dir(), *user_manifest_paths()]:
        if p.is_file():
            found.append(p)
        elif p.is_dir():
            found += sorted(f for f in p.glob("*.json") if f.is_file())
    return found


def _check_names(alias: str, variant_id: str, manifest_path: Path, earlier: Manifest | None) -> None:
    """Refuse an alias, model name or variant name that any other manifest (built-in or the user's, whether
    or not the catalog shows it) answers to: the new model would shadow it, or be shadowed by it."""
    name = variant_id.rpartition(":")[0]
    ours = {normalize_name(variant_id): (f"--id {variant_id!r}", "--id"),
            normalize_name(name): (f"the name of --id {variant_id!r}", "--id"),
            normalize_name(alias): (f"--alias {alias!r}", "--alias")}
    if earlier is not None:  # the earlier manifest, kept as it is, must still answer only to its own names
        for key, what in _answers_to(earlier).items():
            ours.setdefault(key, (f"the {what} in {manifest_path.name}", "--alias"))
    here = _real(manifest_path)
    for file in _manifest_files():
        if _real(file) == here:
            continue
        other = load_manifest_file(file)
        for key, theirs in _answers_to(other).items():
            if key in ours:
                what, flag = ours[key]
                raise ManifestError(str(file), "", f"model {other.alias!r} already answers to {what} (its "
                                    f"{theirs}); `toolkit cache add` does not shadow it: give another {flag}")


def _real(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path.absolute()


def _refuse_links_leaving(pkg: Path) -> None:
    """Refuse links to files or folders outside the package (list_folder alone would skip a linked folder)."""
    for dirpath, dirnames, filenames in os.walk(pkg):
        dirnames[:] = sorted(d for d in dirnames if d != ".toolkit")
        for entry in (*dirnames, *filenames):
            p = Path(dirpath) / entry
            real = _real(p)
            if p.is_symlink() and real != pkg and pkg not in real.parents:
                raise SourceError(f"{p}: a link that leaves {pkg} is refused; copy what it points to into the package")


def _check_store(variant_id: str, files: list[dict], store_root: Path) -> None:
    """Refuse to put other bytes under a variant id already in the store."""
    if variant_id in paths.installed_variant_ids(store_root):
        have = {(f.path, f.sha256) for f in snapshot_files(variant_id, store_root)}
        if have != {(f["path"], f["sha256"]) for f in files}:
            raise StoreError(f"{variant_id} is already in the store with other files; "
                             f"remove it first (toolkit cache remove {variant_id}) or give another --id")


def _write_temporary(path: Path, data: bytes) -> tuple[Path, list[Path]]:
    """Write `data` to a temporary file next to `path`, creating its folder; return it and the folders made.
    An OSError here (no folder, read-only, full disk) is raised before anything was installed."""
    created = []
    folder = path.parent
    while not os.path.lexists(folder) and folder != folder.parent:
        created.append(folder)
        folder = folder.parent
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        name = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        with open(name, "xb") as f:  # not mkstemp: the manifest gets the umask's usual mode, not 0600
            tmp = name
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        _discard(tmp, created)
        error = DiskFullError if e.errno in (errno.ENOSPC, errno.EDQUOT) else StoreError
        raise error(f"{path.parent}: cannot write the manifest there ({e.strerror or e}); "
                    "nothing was installed") from e
    return tmp, created


def _discard(tmp: Path | None, created: list[Path]) -> None:
    """Remove the temporary manifest and the folders made for it (when still empty)."""
    if tmp is not None:
        with contextlib.suppress(OSError):
            tmp.unlink()
    for folder in created:  # deepest first
        with contextlib.suppress(OSError):
            folder.rmdir()


_OTHER = object()  # what is at the manifest's path is not a file we can read


def _put_in_place(tmp: Path, path: Path, earlier: bytes | None) -> None:
    """Rename the temporary manifest to `path`, unless another process changed `path` meanwhile."""
    now: object = None
    if os.path.lexists(path):
        try:
            now = _OTHER if path.is_symlink() else path.read_bytes()
        except OSError:
            now = _OTHER
    if now != earlier:
        raise ManifestError(str(path), "", "was changed by another process while the package was installed")
    os.replace(tmp, path)


def _undo_install(variant_id: str, was_in_store: bool, store_root: Path, path: Path,
                  error: BaseException) -> ToolkitError:
    """After the manifest could not be put in place: remove what this call installed; the error to raise."""
    why = str(error) if isinstance(error, ToolkitError) else f"{path}: {getattr(error, 'strerror', None) or error}"
    if was_in_store:
        rest = (f"nothing was added to the catalog; {variant_id} was in the store before and stays there "
                f"(`toolkit cache remove {variant_id}` removes it)")
    else:
        try:
            remove_variant(Store(store_root), variant_id)
            rest = f"nothing was added (the files this call installed as {variant_id} were removed again)"
        except (OSError, ToolkitError) as e:
            rest = (f"nothing was added to the catalog, but {variant_id} stays in the store ({e}); "
                    f"`toolkit cache remove {variant_id}` removes it")
    if isinstance(error, ManifestError):
        return ManifestError(error.file, error.field, f"{error.reason}; {rest}")
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(f"{why}; {rest}")
    return StoreError(f"{why}; {rest}")
