"""What `toolkit build` can be told (`BuildOptions`), the context length it builds, and which options it refuses."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from catalog.errors import BuildError, MissingFileError
from toolkit.build_choices import MAX_CONTEXT, MAX_WINDOW, TARGETS, WEIGHT_METHODS
from toolkit.builder.checkpoint import Checkpoint

DEFAULT_CONTEXT = 4096  # static KV length when --context-length is not given, capped by max_position_embeddings


@dataclass
class BuildOptions:
    """Everything `toolkit build` can be told; defaults follow DESIGN.md."""

    target: str = "cpu-int4"
    context_length: int | None = None  # None: min(DEFAULT_CONTEXT, max_position_embeddings), a multiple of window
    window: int = 64
    rotate: bool = True  # npu-qdq: QuaRot
    weight_method: str = "gptq"  # rtn or gptq (gptq needs calibration_text; cpu-int4 uses it only when given)
    calibration_text: Path | None = None  # npu-qdq: text for activation ranges (and GPTQ)
    calibration_tokens: int = 512
    online_hadamard: bool = True  # npu-qdq: Hadamard before down_proj when a construction exists
    keep_float: tuple[str, ...] = ()  # npu-qdq: tensors left unquantized (substring match), e.g. "masked_scores"
    keep_8bit: tuple[str, ...] = ("k_proj", "v_proj")  # cpu-int4: small, sensitive linears at 8 bits
    seed: int = 0
    overwrite: bool = False
    extra: dict = field(default_factory=dict)


def resolve_context_length(ckpt: Checkpoint, opts: BuildOptions) -> tuple[int, list[str]]:
    """The static KV length to build, and one-line warnings about it.

    Not given: DEFAULT_CONTEXT capped by the checkpoint's max_position_embeddings (rounded down to a
    multiple of the window). Given above max_position_embeddings: built as asked, with a warning (the
    positions past it were never trained; RoPE beyond them is extrapolation).
    """
    limit = ckpt.config.max_position_embeddings
    window = max(opts.window, 1)
    if opts.context_length is None:
        ctx = max(window, min(DEFAULT_CONTEXT, limit) // window * window)
    else:
        ctx = opts.context_length
    warnings = []
    if ctx > limit:
        warnings.append(f"--context-length {ctx} exceeds max_position_embeddings {limit} of "
                        f"{ckpt.folder / 'config.json'}: positions past {limit} were never trained")
    return ctx, warnings


def check_options(ckpt: Checkpoint, opts: BuildOptions) -> None:
    """Raise a BuildError (MissingFileError for a calibration text that is not there) naming the first option
    that cannot be built; `opts.context_length` is the resolved one."""
    if opts.target not in TARGETS:
        raise BuildError(f"--target: {opts.target!r} is not one of {', '.join(TARGETS)}")
    if opts.window < 1 or opts.context_length < opts.window:
        raise BuildError(f"--window {opts.window} / --context-length {opts.context_length}: need 1 <= window <= context")
    if opts.window > MAX_WINDOW or opts.context_length > MAX_CONTEXT:
        raise BuildError(f"--window {opts.window} / --context-length {opts.context_length}: the most is "
                         f"{MAX_WINDOW} / {MAX_CONTEXT}")
    if opts.context_length % opts.window:
        raise BuildError(f"--context-length {opts.context_length} must be a multiple of --window {opts.window}")
    if opts.weight_method not in WEIGHT_METHODS:
        raise BuildError(f"--weights: {opts.weight_method!r} is not {' or '.join(WEIGHT_METHODS)}")
    if opts.target == "npu-qdq" and opts.calibration_text is None:
        raise BuildError("--target npu-qdq needs --calibration-text FILE (activation ranges come from real text)")
    if opts.calibration_text is not None and not Path(opts.calibration_text).is_file():
        raise MissingFileError(f"{opts.calibration_text}: calibration text file does not exist")
    if ckpt.config.num_heads % ckpt.config.num_kv_heads:
        raise BuildError(f"{ckpt.folder / 'config.json'}: num_attention_heads is not a multiple of num_key_value_heads")
