"""The npu-qdq target: QuaRot, int4 per-channel weights (RTN or GPTQ), uint16 activations calibrated on text.

Flow: fold norms and rotate (rotation.py) -> write a float graph with the same structure and run it on
calibration text, recording every activation's range and each linear's input Gram matrix X^T X ->
write the static context (S = window) and iterator (S = 1) graphs with QuantizeLinear/DequantizeLinear
pairs around every activation and DequantizeLinear(int4, explicit zero point) weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnx import numpy_helper

from catalog.errors import BuildError
from toolkit.builder.calibrate import calibrate, calibration_ids, initializer_map
from toolkit.builder.checkpoint import Checkpoint
from toolkit.builder.graph import Graph
from toolkit.builder.linear import QDQLinear
from toolkit.builder.options import BuildOptions
from toolkit.builder.package import CONTEXT, EMBEDDINGS, ITERATOR, LM_HEAD
from toolkit.builder.quantize import ChannelQuantized, quantize_gptq, quantize_rtn
from toolkit.builder.rotation import fold_and_rotate, online_factors, random_hadamard
from toolkit.builder.stages import build_embeddings, build_lm_head
from toolkit.builder.transformer import GraphSpec, LayerWeights, build_transformer
from toolkit.builder.weights import checkpoint_layer

U16_MAX = 65535
MASK_VALUE = -100.0  # exp(-100) is 0 in fp32, and a uint16 grid over [-130, 30] keeps 0.0025 steps


# Ops whose output holds values of their input (a view, or rows of a table): the output keeps the input's
# quantization. QNN's HTP cannot finalize a Gather that requantizes (output scale or offset different from its
# table's): it fails with QNN_COMMON_ERROR_MEM_ALLOC whatever the size. Split and Slice are left out on purpose:
# each output is a part of the input, its own calibrated range is tighter, and HTP requantizes them fine.
DATA_MOVEMENT = {"Gather", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Tile"}


def _producer(g: Graph, x: str):
    """The node that writes x (searched from the end: it is usually one of the last few)."""
    return next((n for n in reversed(g.nodes) if x in n.output), None)


class QDQ:
    """Activation hook of the deployed graphs: uint16 QuantizeLinear -> DequantizeLinear from recorded ranges.

    The output of a data-movement op (DATA_MOVEMENT) reuses the scale and zero point of the DequantizeLinear
    it reads from, as onnxruntime's QDQ quantizer does, instead of its own calibrated range.
    """

    def __init__(self, ranges: dict[str, tuple[float, float]], keep_float: tuple[str, ...]) -> None:
        self.ranges = ranges
        self.keep_float = keep_float
        self.kept: set[str] = set()
        self._done: dict[tuple[int, str], str] = {}
        self._params: dict[tuple[int, str], tuple[str, str]] = {}  # dq output -> (scale, zero point)

    def _inherited(self, g: Graph, x: str) -> tuple[str, str] | None:
        """(scale, zero point) of the DequantizeLinear that x is a data-movement view of, if any."""
        node = _producer(g, x)
        while node is not None and node.op_type in DATA_MOVEMENT:
            src = node.input[0]
            if (id(g), src) in self._params:
                return self._params[(id(g), src)]
            node = _producer(g, src)
        return None

    def __call__(self, g: Graph, x: str, out: str | None = None) -> str:
        if out is None and (id(g), x) in self._done:  # shared constants are quantized once per graph
            return self._done[(id(g), x)]
        if any(k in x for k in self.keep_float):
            self.kept.add(x)
            return g.op("Identity", [x], name=out + "/id", outputs=[out]) if out else x
        inherited = self._inherited(g, x)
        if inherited is not None:
            s, z = inherited
        else:
            s, z = self._new_params(g, x)
        q = g.op("QuantizeLinear", [x, s, z], name=x + "_q")
        dq = g.op("DequantizeLinear", [q, s, z], name=out or x + "_dq", outputs=[out] if out else None)
        self._done[(id(g), x)] = dq
        self._params[(id(g), dq)] = (s, z)
        return dq

    def _new_params(self, g: Graph, x: str) -> tuple[str, str]:
        """Scale and zero point initializers from x's range (an initializer's values, else the calibrated range)."""
        inits = initializer_map(g)
        if x in inits:
            a = numpy_helper.to_array(inits[x])
            lo, hi = float(a.min()), float(a.max())
        elif x in self.ranges:
            lo, hi = self.ranges[x]
        else:
            raise BuildError(f"internal: no calibrated range for tensor {x}")
        lo, hi = min(lo, 0.0), max(hi, 0.0)
        scale = (hi - lo) / U16_MAX if hi > lo else 1.0
        zp = int(np.clip(round(-lo / scale), 0, U16_MAX))
        return (g.init(x + "_scale", np.asarray(scale, np.float32)),
                g.init(x + "_zero_point", np.asarray(zp, np.uint16)))


def _rotate_rows(w: np.ndarray, q: np.ndarray, chunk: int = 16384) -> np.ndarray:
    """w @ q in place, row chunk by row chunk in float64 (vocab x hidden tables are large)."""
    for r0 in range(0, w.shape[0], chunk):
        w[r0:r0 + chunk] = w[r0:r0 + chunk].astype(np.float64) @ q
    return w


def rotated_model(ckpt: Checkpoint, rotate: bool, online: bool, seed: int):
    """(layer provider, embedding table, lm_head weight, rotation info) after norm folding and QuaRot."""
    cfg = ckpt.config
    rng = np.random.default_rng(seed)
    q = random_hadamard(cfg.hidden_size, rng) if rotate else None
    if rotate and q is None:
        raise BuildError(f"QuaRot: no Hadamard construction for hidden_size {cfg.hidden_size}; use --no-rotate")
    down = online_factors(cfg.intermediate_size) if (rotate and online) else None

    def layer(i: int) -> LayerWeights:
        return fold_and_rotate(checkpoint_layer(ckpt, i), q, down)

    embed = ckpt.tensor("model.embed_tokens.weight")
    head = ckpt.lm_head() * ckpt.tensor("model.norm.weight")[None, :]
    if q is not None:
        embed, head = _rotate_rows(embed, q), _rotate_rows(head, q)
    info = {"rotation": f"QuaRot randomized Hadamard (Kronecker), seed {seed}" if rotate else "none",
            "online_down_hadamard": down is not None}
    return layer, embed, head, info


def write_npu_stages(ckpt: Checkpoint, opts: BuildOptions, out: Path) -> tuple[str, str, dict]:
    """Write embeddings, context, iterator and lm_head of an npu-qdq package into `out`; returns the context and
    iterator file names and the manifest's quantization record."""
    cfg = ckpt.config
    if opts.weight_method not in ("rtn", "gptq"):
        raise BuildError(f"--weights: {opts.weight_method!r} is not rtn or gptq")
    layer, embed, head, info = rotated_model(ckpt, opts.rotate, opts.online_hadamard, opts.seed)
    build_embeddings(embed, quantized=True).save(out / EMBEDDINGS)
    build_lm_head(head, quantized=True).save(out / LM_HEAD)
    spec = GraphSpec(attention="explicit", context_length=opts.context_length, seq_len=opts.window,
                     fused_norm=False, mask_value=MASK_VALUE)
    docs = calibration_ids(ckpt, opts.calibration_text, opts.calibration_tokens)
    ranges, grams = calibrate(ckpt, layer, embed, spec, docs, opts.weight_method == "gptq")
    cache: dict[str, ChannelQuantized] = {}

    def quantizer(name: str, w_in_out: np.ndarray) -> ChannelQuantized:
        if name not in cache:
            if opts.weight_method == "gptq":
                cache[name] = quantize_gptq(w_in_out, grams[name])
            else:
                cache[name] = quantize_rtn(w_in_out)
        return cache[name]

    layers = [layer(i) for i in range(cfg.num_layers)] if cfg.num_layers * cfg.hidden_size < 200_000 else None

    def provider(i: int) -> LayerWeights:
        return layers[i] if layers is not None else layer(i)

    hook = QDQ(ranges, tuple(opts.keep_float))
    for fname, seq in ((CONTEXT, opts.window), (ITERATOR, 1)):
        s = GraphSpec(attention="explicit", context_length=opts.context_length, seq_len=seq, fused_norm=False,
                      mask_value=MASK_VALUE)
        g = build_transformer(cfg, provider, None, QDQLinear(quantizer, hook), s, act=hook,
                              name=fname.removesuffix(".onnx"))
        g.save(out / fname)
    info.update({"weights": f"int4 per-channel symmetric ({opts.weight_method}), DequantizeLinear opset 21",
                 "activations": "uint16 asymmetric QuantizeLinear/DequantizeLinear",
                 "kept_float": sorted(hook.kept), "calibration_tokens": sum(len(d) for d in docs),
                 "embeddings": "int4 block 32 (GatherBlockQuantized)", "lm_head": "int4 block 32 (MatMulNBits)"})
    return CONTEXT, ITERATOR, info
