"""ONNX Runtime sessions for one pipeline stage: threads, execution providers, EPContext caching.

Providers come from the stage's `session_options.provider_options` (or the decoder's). QNN is
loaded from the onnxruntime-qnn plugin package (`register_execution_provider_library`) with its
backend library resolved to the wheel's HTP library; other providers are used when onnxruntime
lists them; a provider that is not available falls back to the CPU, and the reason is recorded.
Compiled QNN graphs are saved as EPContext models in the store so the next load skips compilation.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catalog.errors import ModelLoadError
from catalog.schema import PROVIDER_NAMES
from toolkit.device.eps import register_plugins
from toolkit.runtime.config import QNN_BACKENDS, SessionConfig
from toolkit.runtime.native_output import native_stdout_to_stderr

EP_NAMES = PROVIDER_NAMES  # "qnn" -> "QNNExecutionProvider" (catalog.schema holds the one table)
PLUGIN_EPS = {"QNNExecutionProvider"}
# Thread-pool spinning, unless the package sets it. Each session has its own intra-op pool; spinning between
# kernels inside one run is what keeps a decode step fast (~400 kernels a token), but a pool that goes on
# spinning after its run returns steals the cores of the next stage (embeddings, transformer and lm_head run in
# turn). So in a pipeline of several sessions the pools spin while they run and stop when the run ends
# (`session.force_spinning_stop`). Measured on the 1.5B cpu-int4 package, 2 cores, interleaved A/B: spin +
# stop 15.7 tok/s, no spinning 13.0, plain spinning 8.3-8.9.
SPIN_THEN_STOP = {"session.intra_op.allow_spinning": "1", "session.force_spinning_stop": "1"}


def physical_cores() -> int:
    """Physical cores this process may use (hyper-threads share a core's vector units; llama.cpp counts the same)."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except AttributeError:
        allowed = list(range(os.cpu_count() or 1))
    cores = set()
    for cpu in allowed:
        base = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add((base / "physical_package_id").read_text().strip() + ":" + (base / "core_id").read_text().strip())
        except OSError:
            cores.add(str(cpu))
    return max(1, len(cores))


@dataclass
class StageSession:
    """A created session and how it came to be."""

    session: Any
    provider: str
    load_seconds: float
    from_cache: bool = False
    notes: list[str] = field(default_factory=list)


def _session_options(cfg: SessionConfig, threads: int | None, keep_spinning: bool = True, cpu_only: bool = False):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads or cfg.intra_op_num_threads or physical_cores()
    so.inter_op_num_threads = cfg.inter_op_num_threads or 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    level = cfg.graph_optimization_level or "ORT_ENABLE_ALL"
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    if cfg.enable_cpu_mem_arena is not None:
        so.enable_cpu_mem_arena = cfg.enable_cpu_mem_arena
    if cfg.enable_mem_pattern is not None:
        so.enable_mem_pattern = cfg.enable_mem_pattern
    so.log_severity_level = cfg.log_severity_level if cfg.log_severity_level is not None else 3
    if cfg.custom_ops_library:
        so.register_custom_ops_library(cfg.custom_ops_library)
    entries = {} if keep_spinning else dict(SPIN_THEN_STOP)
    entries.update(cfg.config_entries)
    if cpu_only:  # the CPU is the fallback here; onnxruntime refuses the CPU EP with this set
        entries.pop("session.disable_cpu_ep_fallback", None)
    for key, value in entries.items():
        so.add_session_config_entry(key, value)
    return so


def _qnn_library_dir() -> Path | None:
    try:
        import onnxruntime_qnn
    except ImportError:
        return None
    return Path(onnxruntime_qnn.get_library_path()).parent


def resolve_qnn_options(options: dict[str, str]) -> dict[str, str]:
    """QNN options with `backend_path` set to the plugin wheel's library for `backend_type` (htp by default).

    Only these libraries are loaded: a path in the options is never used (a package is data; see config.py)."""
    out = dict(options)
    out.pop("backend_path", None)
    base = QNN_BACKENDS.get((out.pop("backend_type", None) or "htp").lower(), "QnnHtp")
    lib_dir = _qnn_library_dir()
    if lib_dir is not None:
        out["backend_path"] = str(lib_dir / (f"{base}.dll" if os.name == "nt" else f"lib{base}.so"))
    return out


def _plugin_devices(ort, ep_name: str) -> list:
    register_plugins(ort)
    return [d for d in ort.get_ep_devices() if d.ep_name == ep_name]


def _is_ep_context_model(path: Path) -> bool:
    """Whether the model already holds compiled EPContext nodes (published NPU packages often do)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return any(node.op_type == "EPContext" for node in model.graph.node)


def _cache_key(path: Path, ep: str, options: dict[str, str]) -> str:
    import onnxruntime as ort

    st = path.stat()
    text = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{ep}|{sorted(options.items())}|{ort.__version__}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def ep_name(name: str) -> str:
    """onnxruntime's name for a provider written as in genai_config.json (`qnn`, `QNN`, `QNNExecutionProvider`)."""
    return EP_NAMES.get(name.lower(), name)


def wanted_providers(cfg: SessionConfig, provider_override: str | None = None,
                     preferred: str | None = None) -> list[tuple[str, dict[str, str]]]:
    """The providers to try in order, with their options: the override alone; else the config's list with
    `preferred` moved first when the list has it (a list without it keeps its own order)."""
    if provider_override is not None:
        return [(provider_override, {})]
    wanted = [(ep_name(p.name), dict(p.options)) for p in cfg.providers]
    if preferred is not None:
        first = ep_name(preferred)
        wanted.sort(key=lambda entry: entry[0] != first)  # stable: the rest keep their order
    return wanted


def _choose(cfg: SessionConfig, provider_override: str | None, notes: list[str],
            preferred: str | None = None) -> tuple[str, dict[str, str]]:
    """The first provider of `wanted_providers` that this onnxruntime can use; the CPU when none is."""
    import onnxruntime as ort

    for name, options in wanted_providers(cfg, provider_override, preferred):
        ep = ep_name(name)
        if ep == "CPUExecutionProvider":
            break
        if ep in PLUGIN_EPS:
            if _plugin_devices(ort, ep):
                return ep, resolve_qnn_options(options) if ep == "QNNExecutionProvider" else options
            notes.append(f"{ep} is not installed (pip install onnxruntime-qnn); using the CPU")
        elif ep in ort.get_available_providers():
            return ep, options
        else:
            notes.append(f"{ep} is not available in this onnxruntime; using the CPU")
    return "CPUExecutionProvider", {}


def _plugin_session(model_path: Path, make_options, ep: str, options: dict[str, str], cache_dir: Path | None):
    """A plugin-EP session; compiled graphs are saved as EPContext models under `cache_dir` and reused."""
    import onnxruntime as ort

    devices = _plugin_devices(ort, ep)
    so = make_options()
    if cache_dir is None or _is_ep_context_model(model_path):
        so.add_provider_for_devices(devices, options)
        return ort.InferenceSession(str(model_path), sess_options=so), False
    final = cache_dir / _cache_key(model_path, ep, options)
    ctx_name = f"{model_path.stem}_ctx.onnx"
    if (final / ctx_name).is_file():
        try:
            so.add_provider_for_devices(devices, options)
            return ort.InferenceSession(str(final / ctx_name), sess_options=so), True
        except Exception:  # a damaged cache entry: compile again below
            shutil.rmtree(final, ignore_errors=True)
            so = make_options()
    tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    so.add_session_config_entry("ep.context_enable", "1")
    so.add_session_config_entry("ep.context_file_path", str(tmp / ctx_name))
    so.add_session_config_entry("ep.context_embed_mode", "0")
    so.add_provider_for_devices(devices, options)
    try:
        session = ort.InferenceSession(str(model_path), sess_options=so)
        if (tmp / ctx_name).is_file() and not final.exists():
            os.replace(tmp, final)  # the cache entry appears whole or not at all
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return session, False


def create_session(
    model_path: Path,
    cfg: SessionConfig,
    threads: int | None = None,
    provider_override: str | None = None,
    cache_dir: Path | None = None,
    keep_spinning: bool = True,
    preferred_provider: str | None = None,
) -> StageSession:
    """A session for one stage on the first usable provider of its config (`preferred_provider` first when the
    config lists it); the CPU when none is, or when the provider fails on this graph (unless it was forced with
    `provider_override`). What the provider's native code prints meanwhile goes to stderr, never into our
    stdout (`--json`, pipes)."""
    with native_stdout_to_stderr():
        return _create_session(model_path, cfg, threads, provider_override, cache_dir, keep_spinning,
                               preferred_provider)


def _create_session(model_path: Path, cfg: SessionConfig, threads: int | None, provider_override: str | None,
                    cache_dir: Path | None, keep_spinning: bool, preferred_provider: str | None) -> StageSession:
    import onnxruntime as ort

    notes: list[str] = []
    ep, options = _choose(cfg, provider_override, notes, preferred_provider)
    start = time.perf_counter()
    if ep != "CPUExecutionProvider":
        try:
            if ep in PLUGIN_EPS:
                session, cached = _plugin_session(model_path, lambda: _session_options(cfg, threads, keep_spinning), ep,
                                                  options, cache_dir)
            else:
                session, cached = ort.InferenceSession(str(model_path), sess_options=_session_options(cfg, threads, keep_spinning),
                                                       providers=[(ep, options), "CPUExecutionProvider"]), False
            return StageSession(session, ep, time.perf_counter() - start, cached, notes)
        except Exception as e:  # onnxruntime raises several unrelated exception types
            if provider_override is not None:
                raise ModelLoadError(f"{model_path}: cannot create an onnxruntime session on {ep}: {e}") from e
            notes.append(f"{ep} failed on {model_path.name} ({str(e).splitlines()[0][:160]}); using the CPU")
            start = time.perf_counter()
    try:
        session = ort.InferenceSession(str(model_path), sess_options=_session_options(cfg, threads, keep_spinning, True),
                                       providers=["CPUExecutionProvider"])
    except Exception as e:
        raise ModelLoadError(f"{model_path}: cannot create an onnxruntime session: {e}") from e
    return StageSession(session, "CPUExecutionProvider", time.perf_counter() - start, False, notes)
