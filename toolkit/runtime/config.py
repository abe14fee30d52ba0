"""genai_config.json: the ONNX Runtime GenAI package format, read generically.

Both `decoder` (one model) and `decoder-pipeline` (stages such as embeddings, context,
iterator, lm_head) packages are understood, with the key names onnxruntime-genai uses, so
packages published for Foundry Local / AI Toolkit load here. Unknown top-level sections are
ignored (as newer runtimes add them); wrong types and missing files raise `PackageError`
naming the file and the field.

A package is data: every file it names must lie inside its folder (no absolute paths, '..' or links
leading out), and no session option or provider option may name a file, folder or library for
onnxruntime to load or write (QNN's backend is chosen by name, never by path). `custom_ops_library`
is read (inside the folder) but loading it is the runtime's decision (`RuntimeOptions.allow_custom_ops`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catalog import jsonio
from catalog.errors import MissingFileError, PackageError, StoreError
from toolkit.store.safety import safe_join

CONFIG_NAME = "genai_config.json"
SUPPORTED_TYPES_PIPELINE = ("decoder-pipeline",)
ALIGNMENTS = ("left", "right")
QNN_BACKENDS = {"htp": "QnnHtp", "cpu": "QnnCpu", "gpu": "QnnGpu"}  # backend_type -> library name
# Words that mark a session config entry or provider option as naming a file, folder or library: QNN's
# backend_path, qnn_saver_path, qnn_ir_backend_path, op_packages, profiling_file_path, json_qnn_graph_dir;
# ORT's ep.context_file_path, session.node_partition_config_file, *_external_initializers_file_name;
# OpenVINO's cache_dir; VitisAI's config_file, cacheDir, xclbin; TensorRT's trt_*_cache_path, *_lib_paths ...
_FILE_WORDS = {"path", "paths", "file", "files", "filename", "filepath", "dir", "dirs", "directory", "folder",
               "library", "libraries", "lib", "libs", "packages", "xclbin"}
# ... and options that do the same without saying so, or hand onnxruntime a native address.
_UNSAFE_KEYS = {"load_config", "dump_qnn_ir_dlc", "dump_json_qnn_graph", "context", "user_compute_stream",
                "gpu_external_alloc", "gpu_external_free", "gpu_external_empty_cache"}


@dataclass(frozen=True)
class ProviderOptions:
    """One execution provider entry of `session_options.provider_options`."""

    name: str
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SessionConfig:
    """The `session_options` object: threads, optimisation level, providers, extra config entries."""

    intra_op_num_threads: int | None = None
    inter_op_num_threads: int | None = None
    graph_optimization_level: str | None = None
    enable_cpu_mem_arena: bool | None = None
    enable_mem_pattern: bool | None = None
    log_severity_level: int | None = None
    custom_ops_library: str | None = None  # an absolute path inside the package folder
    providers: tuple[ProviderOptions, ...] = ()
    config_entries: dict[str, str] = field(default_factory=dict)
    where: str = field(default="", repr=False, compare=False)  # its place in genai_config.json, for messages


@dataclass(frozen=True)
class Stage:
    """One model of a pipeline (a single `decoder` is read as a pipeline of one stage)."""

    id: str
    filename: str
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    session: SessionConfig | None = None
    run_on_prompt: bool = True
    run_on_token_gen: bool = True
    is_lm_head: bool = False
    output_names_forwarder: dict[str, str] = field(default_factory=dict)
    run_options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SlidingWindow:
    """How a prompt is cut into fixed windows for static-shape prompt models."""

    window_size: int
    pad_value: int = 0
    alignment: str = "left"
    slide_key_value_cache: bool = False


@dataclass(frozen=True)
class IONames:
    """Names of the inputs and outputs the runtime manages (the rest flow between stages)."""

    input_ids: str = "input_ids"
    inputs_embeds: str = "inputs_embeds"
    position_ids: str = "position_ids"
    attention_mask: str = "attention_mask"
    past_key_names: str = "past_key_values.%d.key"
    past_value_names: str = "past_key_values.%d.value"
    past_sequence_length: str = "past_sequence_length"
    total_sequence_length: str = "total_sequence_length"
    logits: str = "logits"
    present_key_names: str = "present.%d.key"
    present_value_names: str = "present.%d.value"


@dataclass(frozen=True)
class SearchDefaults:
    """The `search` section: the package's default generation settings."""

    max_length: int | None = None
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    past_present_share_buffer: bool = False


@dataclass(frozen=True)
class GenaiConfig:
    """A parsed genai_config.json and the folder it lives in."""

    path: Path
    model_type: str
    context_length: int
    vocab_size: int | None
    bos_token_id: int | None
    eos_token_ids: tuple[int, ...]
    pad_token_id: int | None
    num_hidden_layers: int
    num_key_value_heads: int | None
    head_size: int | None
    hidden_size: int | None
    session: SessionConfig
    names: IONames
    stages: tuple[Stage, ...]
    sliding_window: SlidingWindow | None
    search: SearchDefaults
    is_pipeline: bool

    @property
    def folder(self) -> Path:
        return self.path.parent

    def custom_ops_libraries(self) -> list[tuple[str, str]]:
        """(field, library) for each `custom_ops_library` the package names, at decoder and at stage level."""
        sessions = [self.session, *(s.session for s in self.stages if s.session is not None)]
        return [(f"{s.where}.custom_ops_library", s.custom_ops_library) for s in sessions if s.custom_ops_library]


class _Fields:
    """Reads typed values out of one JSON object, naming `file: path.to.field` when one is wrong."""

    def __init__(self, file: Path, data: Any, where: str) -> None:
        self.file, self.where = file, where
        if not isinstance(data, dict):
            self.fail("", f"expected an object, got {type(data).__name__}")
        self.data: dict[str, Any] = data

    def fail(self, key: str, reason: str) -> None:
        where = ".".join(p for p in (self.where, key) if p)
        raise PackageError(f"{self.file}: {where or 'top level'}: {reason}")

    def child(self, key: str, required: bool = False) -> _Fields | None:
        if key not in self.data:
            if required:
                self.fail(key, "is required")
            return None
        return _Fields(self.file, self.data[key], ".".join(p for p in (self.where, key) if p))

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None, required: bool = False) -> Any:
        if key not in self.data or self.data[key] is None:
            if required:
                self.fail(key, "is required")
            return default
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if (bool not in kinds and isinstance(value, bool)) or not isinstance(value, kinds):
            want = " or ".join(k.__name__ for k in kinds)
            self.fail(key, f"expected {want}, got {type(value).__name__} {value!r}")
        if int in kinds and isinstance(value, float):
            if not value.is_integer():
                self.fail(key, f"expected an integer, got {value!r}")
            value = int(value)
        return value

    def positive(self, key: str, default: Any = None, required: bool = False) -> Any:
        value = self.get(key, (int, float), default, required)
        if value is not None and int(value) <= 0:
            self.fail(key, f"must be positive, got {value!r}")
        return None if value is None else int(value)


def _file_in_package(f: _Fields, key: str, name: str, folder: Path) -> Path:
    """folder/name, which must be a file inside the folder: no absolute path, '..' or link leading out."""
    try:
        path = safe_join(folder, name)
    except StoreError as e:
        f.fail(key, f"{e}; a package may only name files inside its own folder")
    if not path.is_file():
        f.fail(key, f"file {name!r} not found in {folder}")
    return path


def _names_a_file(key: str) -> bool:
    words = re.split(r"[._\-]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key).lower())
    return key.lower() in _UNSAFE_KEYS or any(w in _FILE_WORDS for w in words)


def _refuse_file_options(f: _Fields, where: str, options: dict[str, Any]) -> None:
    for key, value in options.items():
        if _names_a_file(key):
            f.fail(f"{where}{key}", f"names a file, folder or library for onnxruntime ({value!r}); a package may not "
                                    "set it (the toolkit chooses where its libraries and caches are)")


def _qnn_options(f: _Fields, where: str, options: dict[str, str]) -> dict[str, str]:
    """QNN options with the backend as `backend_type` (htp, cpu or gpu). A `backend_path` that is only a backend's
    library name (QnnHtp.dll, libQnnHtp.so, as published packages have) picks that backend; a path is refused."""
    out = dict(options)
    by_name = {lib.lower(): kind for kind, lib in QNN_BACKENDS.items()}
    path = out.pop("backend_path", None)
    if path is not None:
        kind = by_name.get(path.lower().removesuffix(".dll").removesuffix(".so").removeprefix("lib"))
        if kind is None or "/" in path or "\\" in path:
            f.fail(f"{where}backend_path", f"names a library to load ({path!r}); a package may only choose QNN's "
                                           f"backend (backend_type: {', '.join(QNN_BACKENDS)}), which the toolkit "
                                           "loads from the onnxruntime-qnn package")
        out.setdefault("backend_type", kind)
    kind = out.get("backend_type")
    if kind is not None and kind.lower() not in QNN_BACKENDS:
        f.fail(f"{where}backend_type", f"expected one of {', '.join(QNN_BACKENDS)}, got {kind!r}")
    return out


def _provider_name(name: str) -> str:
    return {"qnn": "QNN", "dml": "DML", "openvino": "OpenVINO", "vitisai": "VitisAI", "webgpu": "WebGPU"}.get(
        name.lower(), name
    )


def _session(f: _Fields | None, folder: Path) -> SessionConfig | None:
    if f is None:
        return None
    known = {
        "intra_op_num_threads", "inter_op_num_threads", "graph_optimization_level", "enable_cpu_mem_arena",
        "enable_mem_pattern", "log_severity_level", "log_verbosity_level", "custom_ops_library", "log_id",
        "enable_profiling", "provider_options", "runtime", "build_requires",
    }
    providers = []
    raw = f.get("provider_options", list, [])
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict) or len(entry) != 1:
            f.fail(f"provider_options[{i}]", "expected an object with one provider name, e.g. {\"qnn\": {...}}")
        (name, opts), = entry.items()
        if not isinstance(opts, dict):
            f.fail(f"provider_options[{i}].{name}", f"expected an object, got {type(opts).__name__}")
        options = {k: str(v) for k, v in opts.items() if not isinstance(v, dict)}
        if _provider_name(name) == "QNN":
            options = _qnn_options(f, f"provider_options[{i}].{name}.", options)
        _refuse_file_options(f, f"provider_options[{i}].{name}.", options)
        providers.append(ProviderOptions(_provider_name(name), options))
    level = f.get("graph_optimization_level", str)
    if level is not None and level not in ("ORT_DISABLE_ALL", "ORT_ENABLE_BASIC", "ORT_ENABLE_EXTENDED",
                                           "ORT_ENABLE_ALL"):
        f.fail("graph_optimization_level", f"unknown level {level!r}")
    entries = {k: str(v) for k, v in f.data.items() if k not in known and not isinstance(v, (dict, list))}
    _refuse_file_options(f, "", entries)
    library = f.get("custom_ops_library", str)
    if library is not None:
        library = str(_file_in_package(f, "custom_ops_library", library, folder).resolve())
    return SessionConfig(
        intra_op_num_threads=f.get("intra_op_num_threads", int),
        inter_op_num_threads=f.get("inter_op_num_threads", int),
        graph_optimization_level=level,
        enable_cpu_mem_arena=f.get("enable_cpu_mem_arena", bool),
        enable_mem_pattern=f.get("enable_mem_pattern", bool),
        log_severity_level=f.get("log_severity_level", int),
        custom_ops_library=library,
        providers=tuple(providers),
        config_entries=entries,
        where=f.where,
    )


def _strings(f: _Fields, key: str) -> tuple[str, ...]:
    values = f.get(key, list, [])
    for i, v in enumerate(values):
        if not isinstance(v, str):
            f.fail(f"{key}[{i}]", f"expected a string, got {type(v).__name__}")
    return tuple(values)


def _string_map(f: _Fields, key: str) -> dict[str, str]:
    values = f.get(key, dict, {})
    return {str(k): str(v) for k, v in values.items()}


def _stage(f: _Fields, stage_id: str, folder: Path) -> Stage:
    filename = f.get("filename", str, required=True)
    _file_in_package(f, "filename", filename, folder)
    return Stage(
        id=stage_id,
        filename=filename,
        inputs=_strings(f, "inputs"),
        outputs=_strings(f, "outputs"),
        session=_session(f.child("session_options"), folder),
        run_on_prompt=f.get("run_on_prompt", bool, True),
        run_on_token_gen=f.get("run_on_token_gen", bool, True),
        is_lm_head=f.get("is_lm_head", bool, False),
        output_names_forwarder=_string_map(f, "output_names_forwarder"),
        run_options=_string_map(f, "run_options"),
    )


def _pipeline(dec: _Fields, folder: Path) -> tuple[Stage, ...]:
    raw = dec.data.get("pipeline")
    stages: list[Stage] = []
    if isinstance(raw, list):
        for i, entry in enumerate(raw):
            item = _Fields(dec.file, entry, f"{dec.where}.pipeline[{i}]")
            for stage_id in entry:
                stages.append(_stage(item.child(stage_id), stage_id, folder))
    elif isinstance(raw, dict):
        pipe = dec.child("pipeline")
        for stage_id in raw:
            stages.append(_stage(pipe.child(stage_id), stage_id, folder))
    else:
        dec.fail("pipeline", "is required for a decoder-pipeline model (a list of stages)")
    if not stages:
        dec.fail("pipeline", "has no stages")
    if not any(s.run_on_prompt for s in stages) or not any(s.run_on_token_gen for s in stages):
        dec.fail("pipeline", "needs stages that run on the prompt and stages that run on generated tokens")
    return tuple(stages)


def _names(dec: _Fields) -> IONames:
    base = IONames()
    values = {}
    for section in ("inputs", "outputs"):
        sub = dec.child(section)
        if sub is None:
            continue
        for key in sub.data:
            if key in ("embeddings",):
                values["inputs_embeds"] = sub.get(key, str)
            elif hasattr(base, key):
                values[key] = sub.get(key, str)
    return IONames(**{**base.__dict__, **values})


def _eos(f: _Fields) -> tuple[int, ...]:
    value = f.get("eos_token_id", (int, list), None)
    if value is None:
        return ()
    if isinstance(value, int):
        return (value,)
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, int):
            f.fail(f"eos_token_id[{i}]", f"expected an integer, got {v!r}")
    return tuple(value)


def parse_genai_config(data: Any, path: Path) -> GenaiConfig:
    """Validate a genai_config.json object read from `path` (relative filenames resolve against its folder)."""
    top = _Fields(path, data, "")
    model = top.child("model", required=True)
    model_type = model.get("type", str, required=True)
    dec = model.child("decoder", required=True)
    is_pipeline = model_type in SUPPORTED_TYPES_PIPELINE or isinstance(dec.data.get("pipeline"), (list, dict))
    folder = path.parent
    if is_pipeline:
        stages = _pipeline(dec, folder)
    else:
        filename = dec.get("filename", str, required=True)
        _file_in_package(dec, "filename", filename, folder)
        stages = (Stage(id="decoder", filename=filename, is_lm_head=True),)
    window = None
    sw = dec.child("sliding_window")
    if sw is not None:
        alignment = sw.get("alignment", str, "left")
        if alignment not in ALIGNMENTS:
            sw.fail("alignment", f"expected one of {', '.join(ALIGNMENTS)}, got {alignment!r}")
        window = SlidingWindow(
            window_size=sw.positive("window_size", required=True),
            pad_value=sw.get("pad_value", int, 0),
            alignment=alignment,
            slide_key_value_cache=sw.get("slide_key_value_cache", bool, False),
        )
    search = top.child("search")
    defaults = SearchDefaults()
    if search is not None:
        defaults = SearchDefaults(
            max_length=search.positive("max_length"),
            do_sample=search.get("do_sample", bool, False),
            temperature=float(search.get("temperature", (int, float), 1.0)),
            top_k=int(search.get("top_k", (int, float), 0)),
            top_p=float(search.get("top_p", (int, float), 1.0)),
            repetition_penalty=float(search.get("repetition_penalty", (int, float), 1.0)),
            past_present_share_buffer=search.get("past_present_share_buffer", bool, False),
        )
    eos = _eos(model)
    if not eos:
        model.fail("eos_token_id", "is required")
    return GenaiConfig(
        path=path,
        model_type=model_type,
        context_length=model.positive("context_length", required=True),
        vocab_size=model.positive("vocab_size"),
        bos_token_id=model.get("bos_token_id", int),
        eos_token_ids=eos,
        pad_token_id=model.get("pad_token_id", int),
        num_hidden_layers=dec.positive("num_hidden_layers", required=True),
        num_key_value_heads=dec.positive("num_key_value_heads"),
        head_size=dec.positive("head_size"),
        hidden_size=dec.positive("hidden_size"),
        session=_session(dec.child("session_options"), folder) or SessionConfig(where="model.decoder.session_options"),
        names=_names(dec),
        stages=stages,
        sliding_window=window,
        search=defaults,
        is_pipeline=is_pipeline,
    )


def load_genai_config(package: Path) -> GenaiConfig:
    """Read `package/genai_config.json` (or the file itself), raising PackageError that names it."""
    path = package / CONFIG_NAME if package.is_dir() else package
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise MissingFileError(f"{path}: not found (a model package needs {CONFIG_NAME})") from e
    except OSError as e:
        raise PackageError(f"{path}: cannot read: {e.strerror or e}") from e
    try:
        data = jsonio.loads(text)
    except ValueError as e:  # malformed, or nested too deeply
        raise PackageError(f"{path}: not valid JSON: {e}") from e
    return parse_genai_config(data, path)
