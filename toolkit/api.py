"""The library's one surface: the CLI calls these and nothing below them (the server and provisioning to come
will too).

    choice = api.select("deepseek_r1_1_5")             # the variant for this machine, and why
    api.ensure(choice, progress)                        # downloaded and verified (nothing to do when it is there)
    model = api.load(choice)                            # or api.load("/path/to/package")
    print(api.generate(model, "Hello").text)            # or `for event in api.stream(model, "Hello")`

Choices honour TOOLKIT_DEVICE (and `device=`/`variant=`), the execution provider chosen at selection is
carried to the runtime, and every record has `to_dict()` for --json. Errors are the `toolkit.errors` tree.
Heavy parts (httpx for downloads, onnxruntime and numpy for the runtime) are imported inside the functions
that need them, so `toolkit list` starts fast.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from catalog.errors import DownloadDeclined, MissingFileError, NotInStoreError, NoVariantError, ToolkitError
from catalog.loader import Catalog
from catalog.schema import DEVICES, Manifest  # noqa: F401  (DEVICES: the choices front ends offer)
from catalog.selection import Candidate, DeviceProfile, select_variant, usability
from toolkit import paths
from toolkit.device import DeviceReport, current_profile, current_report, detect, recorded_sources
from toolkit.download.progress import Progress
from toolkit.units import human_size

if TYPE_CHECKING:
    from toolkit.download.api import DownloadPlan
    from toolkit.download.config import DownloadConfig
    from toolkit.download.manager import TransferReport
    from toolkit.runtime.generate import GenerationConfig
    from toolkit.runtime.model import LocalModel
    from toolkit.runtime.pipeline import RuntimeOptions

ENV_DEVICE = "TOOLKIT_DEVICE"
CONFIG_NAME = "genai_config.json"


def device_preference(device: str | None = None) -> str | None:
    """`device` when given, else TOOLKIT_DEVICE, else None (the best for this machine)."""
    return device or os.environ.get(ENV_DEVICE) or None


def catalog() -> Catalog:
    """Every model: the built-in manifests, the user's folder and TOOLKIT_MANIFESTS."""
    return Catalog.load()


def machine(refresh: bool = False) -> DeviceReport:
    """This machine's CPU, NPUs, GPUs and execution providers (cached in the store for a day)."""
    return current_report(refresh)


def replay_machine(folder: str | Path, eps_file: str = "eps.json") -> DeviceReport:
    """A recorded machine's report (a folder as in tests/fixtures/machines), to see what it would get."""
    return detect(recorded_sources(Path(folder), eps_file))


@dataclass(frozen=True)
class Choice:
    """A model's variant for this machine and why; `variant` is None when none fits (`reason` says why)."""

    manifest: Manifest
    variant: Any  # catalog.schema.Variant | None
    reason: str
    candidates: tuple[Candidate, ...] = ()
    installed: frozenset[str] = field(default_factory=frozenset)

    @property
    def line(self) -> str:
        """`alias -> variant (device): reason`, the one line the CLI prints."""
        if self.variant is None:
            return f"{self.manifest.alias}: {self.reason}"
        return f"{self.manifest.alias} -> {self.variant.id} ({self.variant.device}): {self.reason}"

    @property
    def downloaded(self) -> bool:
        return self.variant is not None and self.variant.id in self.installed

    def required(self) -> Choice:
        """This choice, or NoVariantError when no variant fits."""
        if self.variant is None:
            raise NoVariantError(self.reason)
        return self

    def variants(self, manifest_order: bool = False) -> list[dict[str, Any]]:
        """Every variant of the model, best first (or in the manifest's order): where it runs, whether it runs
        here and why, whether it is downloaded."""
        chosen = self.variant.id if self.variant is not None else None
        candidates = self.candidates
        if manifest_order:
            order = {v.id: i for i, v in enumerate(self.manifest.variants)}
            candidates = tuple(sorted(candidates, key=lambda c: order[c.variant.id]))
        return [
            {
                "id": c.variant.id,
                "device": c.variant.device,
                "vendor": c.variant.vendor,
                "execution_provider": c.variant.execution_provider,
                "quantization": c.variant.quantization,
                "size_bytes": c.variant.size_bytes,
                "source": c.variant.source.type,
                "downloaded": c.downloaded,
                "usable": c.usable,
                "why": c.why,
                "chosen": c.variant.id == chosen,
                "unconfirmed": list(c.variant.unconfirmed),
            }
            for c in candidates
        ]

    def to_dict(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "alias": m.alias,
            "display_name": m.display_name,
            "names": list(m.names),
            "parameters": m.parameters,
            "context_length": m.context_length,
            "license": m.license,
            "manifest": m.file,
            "best_variant": self.variant.id if self.variant is not None else None,
            "reason": self.line if self.variant is not None else self.reason,
            "variants": self.variants(),
        }


def choose(manifest: Manifest, *, device: str | None = None, variant: str | None = None,
           profile: DeviceProfile | None = None, installed: set[str] | frozenset[str] | None = None) -> Choice:
    """The variant of `manifest` for this machine (or `profile`); a Choice without variant when none fits.
    An unknown `variant` or `device` still raises (UnknownModelError, DeviceError)."""
    profile = profile if profile is not None else current_profile()
    installed = frozenset(paths.installed_variant_ids() if installed is None else installed)
    try:
        sel = select_variant(manifest, profile, installed, device_preference(device), variant)
    except NoVariantError as e:
        every = tuple(Candidate(v, *usability(v, profile), v.id in installed) for v in manifest.variants)
        return Choice(manifest, None, str(e), every, installed)
    return Choice(manifest, sel.variant, sel.reason, tuple(sel.candidates), installed)  # best first


def select(name: str, *, device: str | None = None, variant: str | None = None) -> Choice:
    """The variant to use for a model name (alias, other name or variant id); NoVariantError when none fits."""
    return choose(catalog().get(name), device=device, variant=variant).required()


def select_all(*, device: str | None = None, profile: DeviceProfile | None = None,
               installed: set[str] | None = None, refresh: bool = False) -> list[Choice]:
    """A Choice for every model of the catalog (those where nothing fits say why)."""
    profile = profile if profile is not None else current_profile(refresh)
    installed = paths.installed_variant_ids() if installed is None else installed
    return [choose(m, device=device, profile=profile, installed=installed) for m in catalog()]


@dataclass(frozen=True)
class Downloaded:
    """Where a chosen variant is on disk, and what the transfer did (None when it was already complete)."""

    choice: Choice
    path: Path
    report: TransferReport | None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"alias": self.choice.manifest.alias, "variant": self.choice.variant.id,
                                "reason": self.choice.reason, "path": str(self.path),
                                "already_complete": self.report is None}
        r = self.report
        if r is not None:
            data.update(source=r.source, revision=r.revision, fetched_bytes=r.fetched_bytes,
                        resumed_bytes=r.resumed_bytes, fetched_files=r.fetched_files, reused_files=r.reused_files,
                        digests=r.digests, files=[{"path": f.path, "size": f.size, "sha256": f.sha256}
                                                  for f in r.files])
        return data


def ensure(choice: Choice, progress: Progress | None = None, *, mirror: str | None = None,
           config: DownloadConfig | None = None, force: bool = False) -> Downloaded:
    """Download and verify the chosen variant unless its snapshot is complete (`force` fetches again)."""
    from toolkit.download.api import download_variant  # httpx: only commands that use the network import it

    choice = choice.required()
    path, report = download_variant(choice.manifest, choice.variant, progress, mirror=mirror, config=config,
                                    force=force)
    return Downloaded(choice, path, report)


def plan(choice: Choice, *, mirror: str | None = None, config: DownloadConfig | None = None,
         quick: bool = False) -> DownloadPlan:
    """What `ensure` would fetch: the resolved source and each file's state; nothing is downloaded. With
    `quick`, each source is asked once (5 s), so an offline machine hears at once."""
    from catalog.sources.http import quick_checks  # httpx: only commands that use the network import it
    from toolkit.download.api import plan_variant

    choice = choice.required()
    if not quick:
        return plan_variant(choice.manifest, choice.variant, mirror=mirror, config=config)
    with quick_checks():
        return plan_variant(choice.manifest, choice.variant, mirror=mirror, config=config)


@dataclass(frozen=True)
class Target:
    """What `load` opens: a package folder, and the choice it came from (None for a path given by hand)."""

    folder: Path
    choice: Choice | None = None

    @property
    def alias(self) -> str | None:
        return self.choice.manifest.alias if self.choice else None

    @property
    def variant_id(self) -> str | None:
        return self.choice.variant.id if self.choice else None


def looks_like_path(name: str) -> bool:
    """Whether a MODEL argument names a folder rather than a catalog name."""
    p = Path(name).expanduser()
    return p.is_dir() or "/" in name or "\\" in name or name.startswith(".")


def resolve(name: str, *, device: str | None = None, variant: str | None = None,
            confirm: Callable[[str], bool] | None = None, progress: Progress | None = None,
            mirror: str | None = None, config: DownloadConfig | None = None) -> Target:
    """The package folder for a name or path; a missing variant is downloaded only when `confirm(question)`
    says yes (scripts pass `lambda q: True`), else DownloadDeclined."""
    from toolkit.runtime.model import package_root  # numpy/onnx: only commands that load a model import them

    if looks_like_path(name):
        path = Path(name).expanduser()
        if not path.is_dir():
            raise MissingFileError(f"{path}: no such folder (expected a model package with {CONFIG_NAME})")
        return Target(package_root(path).resolve())
    choice = select(name, device=device, variant=variant)
    if choice.downloaded:
        return Target(package_root_of(choice), choice)
    question = f"{choice.manifest.alias}: download {choice.variant.id} ({human_size(choice.variant.size_bytes)})?"
    if confirm is None or not confirm(question):
        raise DownloadDeclined(f"{choice.variant.id} is not downloaded; run `toolkit download "
                               f"{choice.manifest.alias}` or pass --yes")
    done = ensure(choice, progress, mirror=mirror, config=config)
    return Target(package_root(done.path), choice)


def load(target: Target | Choice | str | Path, options: RuntimeOptions | None = None) -> LocalModel:
    """Open a model for generation: the chosen variant's execution provider is preferred for the stages
    that list it, and the catalog's reasoning markers and stop strings apply."""
    from toolkit.runtime.model import ChatMarkers, LocalModel

    if isinstance(target, Choice):
        target = Target(package_root_of(target), target)
    elif not isinstance(target, Target):
        target = resolve(str(target))
    options = options or runtime_options()
    markers = None
    if target.choice is not None:
        chat = target.choice.manifest.chat
        markers = ChatMarkers(chat.reasoning_start, chat.reasoning_end, tuple(chat.stop))
        if options.preferred_provider is None:
            options = replace(options, preferred_provider=target.choice.variant.execution_provider)
    return LocalModel(target.folder, options, markers)


def package_root_of(choice: Choice) -> Path:
    """The package folder of a downloaded choice (MissingFileError naming `toolkit download` when it is not)."""
    from toolkit.runtime.model import package_root

    choice = choice.required()
    if not choice.downloaded:
        raise MissingFileError(f"{choice.variant.id} is not downloaded; run `toolkit download "
                               f"{choice.manifest.alias}`")
    return package_root(paths.snapshot_dir(choice.variant.id))


def generate(model: LocalModel, prompt: Any, config: GenerationConfig | None = None):
    """The whole answer for a prompt (chat messages, text, or token ids): text, reasoning apart, and stats."""
    from toolkit.runtime.generate import generate as run

    return run(model, prompt, config)


def stream(model: LocalModel, prompt: Any, config: GenerationConfig | None = None, cancel: Any = None):
    """Events as the answer is generated: ("reasoning" | "answer", text) pieces, then ("done", stats)."""
    from toolkit.runtime.generate import stream_generate

    return stream_generate(model, prompt, config, cancel)


def chat(model: LocalModel, system: str | None = None):
    """A conversation that keeps its history and reuses the cache of its earlier turns."""
    from toolkit.runtime.chat import ChatSession

    return ChatSession(model, system)


def add_package(folder: str | Path, variant_id: str, alias: str | None = None, progress: Progress | None = None):
    """Put a package you built into the store as NAME:VERSION, with a manifest that pins each file."""
    from toolkit.runtime.add_package import add_package as add  # numpy, httpx: only `cache add` needs them

    return add(folder, variant_id, alias, progress)


def runtime_options(*, threads: int | None = None, provider: str | None = None, huge_pages: bool = True,
                    allow_custom_ops: bool = False) -> RuntimeOptions:
    """How to load: CPU threads per stage, a provider forced on every stage, huge pages, a package's native
    custom ops (only for a package folder you trust); compiled NPU graphs are cached in the store."""
    from toolkit.runtime.pipeline import RuntimeOptions

    return RuntimeOptions(threads=threads, provider=provider, ep_cache_dir=paths.home() / "ep-cache",
                          huge_pages=huge_pages, allow_custom_ops=allow_custom_ops)


def bench(model: LocalModel, config: Any, on_run: Callable[[Any], None] | None = None):
    """Time to first token, prefill and decode tokens/s and peak memory at each prompt length."""
    from toolkit.runtime.bench import run_bench

    return run_bench(model, config, on_run)



# -- the store: what is on disk, integrity, reclaiming space, and serving it to a fleet -----------------------

def download_settings(*, require_pinned: bool | None = None) -> DownloadConfig:
    """The download engine's settings (TOOLKIT_DL_* and TOOLKIT_REQUIRE_PINNED), with overrides."""
    from toolkit.download.config import DownloadConfig  # the retry rules: only commands that download

    return DownloadConfig.from_env(require_pinned=require_pinned)


def _store():
    from toolkit.store.blobs import Store  # filelock, hashlib: only commands that touch the store

    return Store()


def store_root() -> Path:
    """The store folder ($TOOLKIT_HOME, else the user cache folder)."""
    return paths.home()


def cached() -> list[Any]:
    """Downloaded variants: id, size, files, last used, source and revision, folder."""
    from toolkit.store.cache import list_cached  # store modules (filelock, hashlib): only store commands

    return list_cached(_store())


@dataclass(frozen=True)
class Verified:
    """One variant re-hashed: how many files, the problems found, whether --repair fetched them again."""

    variant_id: str
    files: int
    ok: bool
    problems: tuple[str, ...]
    repaired: bool

    def to_dict(self) -> dict[str, Any]:
        return {"variant": self.variant_id, "files": self.files, "ok": self.ok, "problems": list(self.problems),
                "repaired": self.repaired}


def verify(variant_ids: list[str] | None = None, *, repair: bool = False,
           progress: Progress | None = None) -> list[Verified]:
    """Re-hash downloaded variants (all when none are named); with `repair`, fetch damaged files again.
    A variant that is not in the store is NotInStoreError, before anything is hashed."""
    from toolkit.download.api import repair_variant  # httpx: only when the store is checked
    from toolkit.store.cache import verify_variant

    store = _store()
    ids = list(dict.fromkeys(variant_ids or ())) or sorted(paths.installed_variant_ids(store.root))
    missing = [vid for vid in ids if not paths.snapshot_dir(vid, store.root).is_dir()]
    if missing:
        raise NotInStoreError(f"not in the store: {', '.join(missing)}; see `toolkit cache list`")
    out = []
    for vid in ids:
        r = verify_variant(store, vid)
        repaired = bool(not r.ok and repair and repair_variant(r, progress))
        out.append(Verified(vid, r.checked, r.ok, tuple(r.problems), repaired))
    return out


def remove(variant_ids: list[str]) -> tuple[dict[str, int], dict[str, ToolkitError]]:
    """Delete variants and the blobs no other variant uses: bytes freed by id, and the errors of those that
    could not go (not in the store, or a download is writing them); one failure does not stop the others."""
    from toolkit.store.cache import remove_variant  # store modules (filelock, hashlib): only store commands

    store = _store()
    freed: dict[str, int] = {}
    failed: dict[str, ToolkitError] = {}
    for vid in dict.fromkeys(variant_ids):
        try:
            freed[vid] = remove_variant(store, vid)
        except ToolkitError as e:
            failed[vid] = e
    return freed, failed


def prune(*, unused_days: float | None = None, dry_run: bool = False) -> Any:
    """Reclaim space: unreferenced blobs, stale partial downloads, unfinished snapshots, and with
    `unused_days` variants not used that long; what a running download holds is left alone."""
    from toolkit.store.cache import collect_garbage  # store modules (filelock, hashlib): only store commands

    return collect_garbage(_store(), unused_days=unused_days, dry_run=dry_run)


def mirror_server(host: str = "127.0.0.1", port: int = 8765) -> Any:
    """A bound mirror server over the store (call serve_forever, or start_background)."""
    from toolkit.mirror.server import serve  # the mirror imports httpx: only `mirror serve` needs it

    return serve(_store(), host, port)


def mirror_export(dest: str | Path, variant_ids: list[str] | None = None) -> Any:
    """Write the mirror layout as static files (hard links where possible) for any web server or CDN."""
    from toolkit.mirror.export import export  # the mirror imports httpx: only `mirror export` needs it

    return export(_store(), Path(dest), set(variant_ids) if variant_ids else None)

def url_problem(url: str) -> str | None:
    """Why `url` cannot be a mirror or endpoint URL (http or https with a host), or None."""
    from catalog.sources.http import url_problem as problem  # httpx: only when a URL is given

    return problem(url)


def build(checkpoint: str | Path, out: str | Path, options: Any) -> dict[str, Any]:
    """Build a runnable package from a Hugging Face checkpoint (`api.BuildOptions`); its toolkit_manifest.json."""
    from toolkit.builder import build_package  # numpy, onnx: only `build` needs them

    return build_package(Path(checkpoint), Path(out), options)


def evaluate(package: str | Path, text: str | Path, reference: str | Path | None = None,
             max_tokens: int | None = None) -> dict[str, Any]:
    """Perplexity of a package on a UTF-8 text (documents split on <|endoftext|>); with `reference` (an
    unquantized package) also the ratio to its perplexity and top-1 agreement with it."""
    from toolkit.builder import evaluate as run  # numpy, onnx: only `eval` needs them

    return run(package, text, reference, max_tokens)


_LAZY = {  # records front ends build, imported on first use (numpy and onnxruntime behind them)
    "GenerationConfig": "toolkit.runtime.generate",
    "SamplingParams": "toolkit.runtime.sampler",
    "RuntimeOptions": "toolkit.runtime.pipeline",
    "BenchConfig": "toolkit.runtime.bench",
    "LocalModel": "toolkit.runtime.model",
    "BuildOptions": "toolkit.builder",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
