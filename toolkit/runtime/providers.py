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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catalog.errors import ModelLoadError
from toolkit.runtime.config import SessionConfig

EP_NAMES = {
    "cpu": "CPUExecutionProvider",
    "qnn": "QNNExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "dml": "DmlExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "vitisai": "VitisAIExecutionProvider",
    "webgpu": "WebGpuExecutionProvider",
}
PLUGIN_EPS = {"QNNExecutionProvider"}
QNN_BACKENDS = {"htp": "QnnHtp", "cpu": "QnnCpu", "gpu": "QnnGpu"}
# Session config entries applied unless the package sets them. onnxruntime's default thread-pool spinning
# is kept: on a quiet 2-core machine it decodes ~12% faster than blocking (measured on the 1.5B package);
# under heavy contention from other processes blocking wins, which a package (or the user) can ask for with
# "session.intra_op.allow_spinning": "0" in its session_options.
SESSION_DEFAULTS: dict[str, str] = {}


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


def _session_options(cfg: SessionConfig, threads: int | None):
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
    entries = dict(SESSION_DEFAULTS)
    entries.update(cfg.config_entries)
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
    """QNN options with `backend_path` (or `backend_type`) pointing at the plugin wheel's backend library."""
    out = dict(options)
    lib_dir = _qnn_library_dir()
    backend_type = out.pop("backend_type", None)
    path = out.get("backend_path")
    if path is None:
        base = QNN_BACKENDS.get((backend_type or "htp").lower(), "QnnHtp")
    else:
        base = Path(path).stem.removeprefix("lib")
    if lib_dir is not None and (path is None or not Path(path).is_absolute() or not Path(path).exists()):
        name = f"{base}.dll" if os.name == "nt" else f"lib{base}.so"
        out["backend_path"] = str(lib_dir / name)
    return out


def _plugin_devices(ort, ep_name: str) -> list:
    from toolkit.device.eps import register_plugins

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


def create_session(
    model_path: Path,
    cfg: SessionConfig,
    threads: int | None = None,
    provider_override: str | None = None,
    cache_dir: Path | None = None,
) -> StageSession:
    """A session for one stage on the first usable provider of its config (CPU otherwise)."""
    import onnxruntime as ort

    so = _session_options(cfg, threads)
    notes: list[str] = []
    wanted = [(p.name, dict(p.options)) for p in cfg.providers]
    if provider_override is not None:
        wanted = [(provider_override, {})] if provider_override.lower() != "cpu" else []
    chosen, providers, load_path, from_cache = "CPUExecutionProvider", None, model_path, False
    for name, options in wanted:
        ep = EP_NAMES.get(name.lower(), name)
        if ep == "CPUExecutionProvider":
            break
        if ep in PLUGIN_EPS:
            devices = _plugin_devices(ort, ep)
            if not devices:
                notes.append(f"{ep} is not installed (pip install onnxruntime-qnn); using the CPU")
                continue
            options = resolve_qnn_options(options) if ep == "QNNExecutionProvider" else options
            if cache_dir is not None and not _is_ep_context_model(model_path):
                ctx = cache_dir / _cache_key(model_path, ep, options) / f"{model_path.stem}_ctx.onnx"
                if ctx.is_file():
                    load_path, from_cache = ctx, True
                else:
                    ctx.parent.mkdir(parents=True, exist_ok=True)
                    so.add_session_config_entry("ep.context_enable", "1")
                    so.add_session_config_entry("ep.context_file_path", str(ctx))
                    so.add_session_config_entry("ep.context_embed_mode", "0")
            so.add_provider_for_devices(devices, options)
            chosen = ep
            break
        if ep in ort.get_available_providers():
            chosen, providers = ep, [(ep, options), "CPUExecutionProvider"]
            break
        notes.append(f"{ep} is not available in this onnxruntime; using the CPU")
    start = time.perf_counter()
    try:
        if providers is None:
            session = ort.InferenceSession(str(load_path), sess_options=so,
                                           providers=None if chosen in PLUGIN_EPS else ["CPUExecutionProvider"])
        else:
            session = ort.InferenceSession(str(load_path), sess_options=so, providers=providers)
    except Exception as e:  # onnxruntime raises several unrelated exception types
        raise ModelLoadError(f"{model_path}: cannot create an onnxruntime session on {chosen}: {e}") from e
    return StageSession(session, chosen, time.perf_counter() - start, from_cache, notes)
