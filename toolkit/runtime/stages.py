"""A package's stages as onnxruntime sessions, and what their graphs say before anything runs.

`load_stages` opens one session per stage (stages naming the same file with the same session options
share one); `check_stage_inputs` refuses a pipeline with an input that nothing feeds, naming the stage;
`plan_prompt_window` reads the prompt graphs' lengths against `sliding_window`. The tensor metadata
helpers (`tensor_dtype`, `static_dim`) are shared by the pipeline, the KV layouts and the token plan.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from catalog.errors import PackageError
from toolkit.runtime.config import GenaiConfig, Stage
from toolkit.runtime.providers import create_session

ORT_TYPES: dict[str, Any] = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int16)": np.int16, "tensor(int8)": np.int8,
    "tensor(uint16)": np.uint16, "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_,
}


def tensor_dtype(type_str: str, where: str) -> Any:
    """The numpy dtype of an onnxruntime tensor type such as "tensor(float16)"."""
    if type_str == "tensor(bfloat16)":
        import ml_dtypes  # only bfloat16 graphs need it

        return ml_dtypes.bfloat16
    try:
        return ORT_TYPES[type_str]
    except KeyError:
        raise PackageError(f"{where}: unsupported tensor type {type_str}") from None


def static_dim(dim: Any) -> int | None:
    """A dimension's size when the graph fixes it, else None (symbolic or unknown)."""
    return dim if isinstance(dim, int) and dim > 0 else None


@dataclass
class StageRunner:
    """One stage with its session, the session's input and output metadata by name, and its run options."""

    stage: Stage
    session: Any
    provider: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    run_options: Any


@dataclass
class LoadReport:
    """What loading did: seconds per stage, providers, cache hits and fallbacks."""

    seconds: float = 0.0
    stages: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def load_stages(config: GenaiConfig, threads: int | None, provider: str | None, preferred_provider: str | None,
                ep_cache_dir: Path | None) -> tuple[list[StageRunner], LoadReport]:
    """A session for every stage, on the provider its config (or `provider`, forced) names."""
    import onnxruntime as ort

    report = LoadReport()
    runners: list[StageRunner] = []
    sessions: dict[tuple[str, str], Any] = {}
    keys = [(stage.filename, repr(stage.session or config.session)) for stage in config.stages]
    keep_spinning = len(set(keys)) == 1  # several sessions: see providers.SPIN_THEN_STOP
    for stage, key in zip(config.stages, keys, strict=True):
        created = sessions.get(key)
        if created is None:  # context and iterator often share one file: one session serves both
            created = sessions[key] = create_session(
                config.folder / stage.filename, stage.session or config.session, threads, provider, ep_cache_dir,
                keep_spinning, preferred_provider,
            )
        run_options = ort.RunOptions()
        for entry, value in stage.run_options.items():
            run_options.add_run_config_entry(entry, value)
        sess = created.session
        runners.append(StageRunner(
            stage, sess, created.provider,
            {i.name: i for i in sess.get_inputs()}, {o.name: o for o in sess.get_outputs()}, run_options,
        ))
        report.stages.append({"id": stage.id, "provider": created.provider,
                              "seconds": round(created.load_seconds, 3), "from_cache": created.from_cache})
        report.notes += [n for n in created.notes if n not in report.notes]
    return runners, report


def input_dtypes(runners: Sequence[StageRunner], names: Iterable[str]) -> dict[str, Any]:
    """The dtype of each named input that some stage takes (the first stage taking it decides)."""
    found: dict[str, Any] = {}
    for name in names:
        meta = next((r.inputs[name] for r in runners if name in r.inputs), None)
        if meta is not None:
            found[name] = tensor_dtype(meta.type, name)
    return found


def check_stage_inputs(config: GenaiConfig, runners: Sequence[StageRunner], managed: set[str]) -> None:
    """Every stage input must be managed or produced by an earlier stage that runs in the same phase."""
    file = config.path
    for phase in ("prompt", "token"):
        produced: set[str] = set()
        for r in runners:
            if not (r.stage.run_on_prompt if phase == "prompt" else r.stage.run_on_token_gen):
                continue
            for name in r.inputs:
                if name not in managed and name not in produced:
                    raise PackageError(
                        f"{file}: pipeline stage {r.stage.id!r} ({r.stage.filename}) needs input {name!r}, "
                        f"which no earlier stage produces and the runtime does not manage"
                    )
            for name in r.outputs:
                produced.add(r.stage.output_names_forwarder.get(name, name))
        if config.names.logits not in produced:
            raise PackageError(f"{file}: no stage outputs the logits {config.names.logits!r} ({phase} phase)")


@dataclass(frozen=True)
class PromptWindow:
    """How a prompt is cut: `size` tokens a run (None: no sliding_window), padded with `pad_value` when `fixed`
    (the prompt graphs have a static length)."""

    size: int | None = None
    fixed: bool = False
    pad_value: int = 0


def plan_prompt_window(config: GenaiConfig, runners: Sequence[StageRunner], kv_names: set[str]) -> PromptWindow:
    """The prompt window from sliding_window, checked against the static lengths of the prompt stages' inputs."""
    sw = config.sliding_window
    size = sw.window_size if sw else None
    fixed = False
    if sw is not None and sw.alignment != "left":
        raise PackageError(f"{config.path}: model.decoder.sliding_window.alignment: only \"left\" is "
                           f"supported, got {sw.alignment!r}")
    if sw is not None and sw.slide_key_value_cache:
        raise PackageError(f"{config.path}: model.decoder.sliding_window.slide_key_value_cache: true is "
                           f"not supported (static KV buffers are updated in place)")
    names = config.names
    lengths = {names.attention_mask, names.past_sequence_length, names.total_sequence_length}
    for r in runners:
        if not r.stage.run_on_prompt:
            continue
        for meta in r.inputs.values():
            if meta.name in kv_names or len(meta.shape) < 2 or meta.name in lengths:
                continue
            seq = static_dim(meta.shape[1])
            if seq is not None and seq > 1:
                fixed = True
            if seq is not None and seq > 1 and size is None:
                raise PackageError(f"{config.path}: stage {r.stage.id!r} input {meta.name!r} has a fixed "
                                   f"length {seq} but model.decoder.sliding_window is not set")
            if seq is not None and size is not None and seq not in (1, size):
                raise PackageError(f"{config.path}: model.decoder.sliding_window.window_size is "
                                   f"{size} but stage {r.stage.id!r} input {meta.name!r} has length {seq}")
    return PromptWindow(size, fixed, sw.pad_value if sw else 0)
