"""`build_package`: checkpoint folder -> runnable decoder-pipeline package (float, cpu-int4, npu-qdq)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from catalog.errors import BuildError, MissingFileError
from toolkit.build_choices import MAX_CONTEXT, MAX_WINDOW, TARGETS, WEIGHT_METHODS
from toolkit.builder.checkpoint import Checkpoint
from toolkit.builder.linear import FloatLinear, NBitsLinear
from toolkit.builder.package import (
    EMBEDDINGS,
    LM_HEAD,
    TRANSFORMER,
    copy_tokenizer,
    genai_config,
    write_manifest,
)
from toolkit.builder.stages import build_embeddings, build_lm_head
from toolkit.builder.transformer import GraphSpec, LayerWeights, build_transformer

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


def checkpoint_layer(ckpt: Checkpoint, i: int) -> LayerWeights:
    """One layer's weights as stored (norm scales kept in the norms)."""
    cfg = ckpt.config
    p = f"model.layers.{i}."

    def bias(name: str):
        return ckpt.tensor(p + name) if cfg.attention_bias and ckpt.has(p + name) else None

    return LayerWeights(
        q=ckpt.tensor(p + "self_attn.q_proj.weight"), k=ckpt.tensor(p + "self_attn.k_proj.weight"),
        v=ckpt.tensor(p + "self_attn.v_proj.weight"), o=ckpt.tensor(p + "self_attn.o_proj.weight"),
        gate=ckpt.tensor(p + "mlp.gate_proj.weight"), up=ckpt.tensor(p + "mlp.up_proj.weight"),
        down=ckpt.tensor(p + "mlp.down_proj.weight"),
        q_bias=bias("self_attn.q_proj.bias"), k_bias=bias("self_attn.k_proj.bias"),
        v_bias=bias("self_attn.v_proj.bias"),
        input_norm=ckpt.tensor(p + "input_layernorm.weight"),
        post_norm=ckpt.tensor(p + "post_attention_layernorm.weight"),
    )


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


def _check_options(ckpt: Checkpoint, opts: BuildOptions) -> None:
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


_NORM_OF = {"attn.q_proj": "input_layernorm", "attn.k_proj": "input_layernorm", "attn.v_proj": "input_layernorm",
            "mlp.gate_proj": "post_attention_layernorm", "mlp.up_proj": "post_attention_layernorm"}


def norm_input_scale(ckpt: Checkpoint, linear: str) -> np.ndarray | None:
    """The RMSNorm scale that multiplies a linear's input (q/k/v, gate/up, lm_head); None for o/down.

    The normalized stream has roughly unit magnitude per channel, so gamma_j is the typical size of
    input j: the data-free weight for that column's quantization error.
    """
    if linear == "lm_head":
        return ckpt.tensor("model.norm.weight")
    layer, _, kind = linear.partition(".")[2].partition(".")
    norm = _NORM_OF.get(kind)
    return ckpt.tensor(f"model.layers.{layer}.{norm}.weight") if norm and layer.isdigit() else None


def _cpu_quantizer(ckpt: Checkpoint, opts: BuildOptions):
    """Block quantizer for cpu-int4: 8 bits for `keep_8bit`; GPTQ (act order) with calibration text, else RTN
    with a range search weighted by the norm scale feeding each linear (`norm_input_scale`)."""
    from toolkit.builder.quantize import gptq_blockwise, quantize_blockwise, quantize_blockwise8

    grams = None
    if opts.calibration_text is not None and opts.weight_method == "gptq":
        from toolkit.builder.calibrate import calibrate, calibration_ids

        spec = GraphSpec(attention="explicit", context_length=opts.context_length, seq_len=opts.window,
                         fused_norm=False)
        docs = calibration_ids(ckpt, opts.calibration_text, opts.calibration_tokens)
        _, grams = calibrate(ckpt, lambda i: checkpoint_layer(ckpt, i), ckpt.tensor("model.embed_tokens.weight"),
                             spec, docs, True, final_norm=ckpt.tensor("model.norm.weight"))

    def quantize(name: str, w: np.ndarray):
        if any(k in name for k in opts.keep_8bit):
            return quantize_blockwise8(w)
        if grams is not None:
            return gptq_blockwise(w, grams[name])
        return quantize_blockwise(w, input_scale=norm_input_scale(ckpt, name))

    quantize.method = "gptq" if grams is not None else "rtn"
    return quantize


def _write_cpu_stages(ckpt: Checkpoint, opts: BuildOptions, out: Path) -> tuple[str, str, str]:
    quantized = opts.target == "cpu-int4"
    quantizer = _cpu_quantizer(ckpt, opts) if quantized else None
    linear = NBitsLinear(quantizer=quantizer) if quantized else FloatLinear()
    # ORT's GroupQueryAttention needs head_size % 16 == 0; smaller heads (stories260K: 8) use plain ops.
    attention = "gqa" if ckpt.config.head_dim % 16 == 0 else "explicit"
    spec = GraphSpec(attention=attention, context_length=opts.context_length, seq_len=None)
    build_embeddings(ckpt.tensor("model.embed_tokens.weight"), quantized).save(out / EMBEDDINGS)
    head = ckpt.lm_head()
    build_lm_head(head, quantized, quantizer("lm_head", head) if quantizer else None).save(out / LM_HEAD)
    g = build_transformer(ckpt.config, lambda i: checkpoint_layer(ckpt, i), ckpt.tensor("model.norm.weight"),
                          linear, spec)
    g.save(out / TRANSFORMER)
    return TRANSFORMER, TRANSFORMER, quantizer.method if quantizer else "none"


def build_package(checkpoint: str | Path, out: str | Path, opts: BuildOptions | None = None) -> dict:
    """Build a package into `out` (written to a temporary folder first, then moved); returns the manifest.

    The manifest's `context_length` is the one built (see `resolve_context_length`); its `warnings` (absent
    when none) are one-line messages for the user.
    """
    opts = opts or BuildOptions()
    ckpt = Checkpoint(checkpoint)
    context_length, warnings = resolve_context_length(ckpt, opts)
    opts = dataclasses.replace(opts, context_length=context_length)
    _check_options(ckpt, opts)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not opts.overwrite:
        raise BuildError(f"{out}: output folder exists and is not empty (pass --overwrite to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    tmp.chmod(0o755)
    try:
        if opts.target == "npu-qdq":
            from toolkit.builder.npu import write_npu_stages

            context_file, iterator_file, quant_info = write_npu_stages(ckpt, opts, tmp)
        else:
            context_file, iterator_file, method = _write_cpu_stages(ckpt, opts, tmp)
            quant_info = ({"weights": f"int4 block 32 asymmetric, {method} (MatMulNBits, accuracy_level 4)",
                           "8bit": list(opts.keep_8bit),
                           "embeddings": "int4 block 32 (GatherBlockQuantized)", "lm_head": f"int4 block 32, {method}"}
                          if opts.target == "cpu-int4" else {"weights": "fp32"})
        config = genai_config(ckpt, context_file, iterator_file, opts.context_length, opts.window,
                              npu=opts.target == "npu-qdq")
        (tmp / "genai_config.json").write_text(json.dumps(config, indent=4) + "\n")
        copy_tokenizer(ckpt, tmp)
        for f in tmp.iterdir():  # onnx writes external data files 0600; packages are shared read-only
            f.chmod(0o644)
        manifest = write_manifest(tmp, {
            "format": "toolkit-package/1", "target": opts.target, "architecture": ckpt.config.model_type,
            "context_length": opts.context_length, "window": opts.window, "quantization": quant_info,
            "source": str(ckpt.folder), "build_seconds": round(time.perf_counter() - t0, 2),
            **({"warnings": warnings} if warnings else {}),
        })
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest
