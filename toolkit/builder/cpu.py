"""The float and cpu-int4 targets: one transformer graph of dynamic length, run by the CPU."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from toolkit.builder.calibrate import calibrate, calibration_ids
from toolkit.builder.checkpoint import Checkpoint
from toolkit.builder.linear import FloatLinear, NBitsLinear
from toolkit.builder.options import BuildOptions
from toolkit.builder.package import EMBEDDINGS, LM_HEAD, TRANSFORMER
from toolkit.builder.quantize import gptq_blockwise, quantize_blockwise, quantize_blockwise8
from toolkit.builder.stages import build_embeddings, build_lm_head
from toolkit.builder.transformer import GraphSpec, build_transformer
from toolkit.builder.weights import checkpoint_layer, norm_input_scale


def cpu_quantizer(ckpt: Checkpoint, opts: BuildOptions) -> Callable:
    """Block quantizer for cpu-int4: 8 bits for `keep_8bit`; GPTQ (act order) with calibration text, else RTN
    with a range search weighted by the norm scale feeding each linear (`norm_input_scale`).

    Its `method` attribute ("gptq" or "rtn") is the rounding it applies to the 4-bit linears."""
    grams = None
    if opts.calibration_text is not None and opts.weight_method == "gptq":
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


def write_cpu_stages(ckpt: Checkpoint, opts: BuildOptions, out: Path) -> tuple[str, str, dict]:
    """Write embeddings, transformer (context and iterator alike) and lm_head of a float or cpu-int4 package
    into `out`; returns the context and iterator file names and the manifest's quantization record."""
    quantized = opts.target == "cpu-int4"
    quantizer = cpu_quantizer(ckpt, opts) if quantized else None
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
    if not quantized:
        return TRANSFORMER, TRANSFORMER, {"weights": "fp32"}
    method = quantizer.method
    return TRANSFORMER, TRANSFORMER, {
        "weights": f"int4 block 32 asymmetric, {method} (MatMulNBits, accuracy_level 4)",
        "8bit": list(opts.keep_8bit),
        "embeddings": "int4 block 32 (GatherBlockQuantized)", "lm_head": f"int4 block 32, {method}"}
