"""The npu-qdq target: QuaRot, int4 per-channel weights (RTN or GPTQ), uint16 activations calibrated on text.

Flow: fold norms and rotate (rotation.py) -> write a float graph with the same structure and run it on
calibration text, recording every activation's range and each linear's input Gram matrix X^T X ->
write the static context (S = window) and iterator (S = 1) graphs with QuantizeLinear/DequantizeLinear
pairs around every activation and DequantizeLinear(int4, explicit zero point) weights.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from catalog.errors import BuildError
from toolkit.build.checkpoint import Checkpoint
from toolkit.build.graph import Graph
from toolkit.build.linear import FloatLinear, QDQLinear
from toolkit.build.package import CONTEXT, EMBEDDINGS, ITERATOR, LM_HEAD
from toolkit.build.quantize import ChannelQuantized, quantize_gptq, quantize_rtn
from toolkit.build.rotation import fold_and_rotate, online_factors, random_hadamard
from toolkit.build.stages import build_embeddings, build_lm_head
from toolkit.build.transformer import GraphSpec, LayerWeights, build_transformer

U16_MAX = 65535
MASK_VALUE = -100.0  # exp(-100) is 0 in fp32, and a uint16 grid over [-130, 30] keeps 0.0025 steps


class RangeRecorder:
    """Activation hook of the calibration graph: remembers which tensors to observe."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def __call__(self, g: Graph, x: str, out: str | None = None) -> str:
        if x not in self.names and x not in _initializer_names(g):
            self.names.append(x)
        if out is not None:
            return g.op("Identity", [x], name=out + "/id", outputs=[out])
        return x


class QDQ:
    """Activation hook of the deployed graphs: uint16 QuantizeLinear -> DequantizeLinear from recorded ranges."""

    def __init__(self, ranges: dict[str, tuple[float, float]], keep_float: tuple[str, ...]) -> None:
        self.ranges = ranges
        self.keep_float = keep_float
        self.kept: set[str] = set()
        self._done: dict[tuple[int, str], str] = {}

    def __call__(self, g: Graph, x: str, out: str | None = None) -> str:
        if out is None and (id(g), x) in self._done:  # shared constants are quantized once per graph
            return self._done[(id(g), x)]
        if any(k in x for k in self.keep_float):
            self.kept.add(x)
            return g.op("Identity", [x], name=out + "/id", outputs=[out]) if out else x
        inits = _initializer_map(g)
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
        s = g.init(x + "_scale", np.asarray(scale, np.float32))
        z = g.init(x + "_zero_point", np.asarray(zp, np.uint16))
        q = g.op("QuantizeLinear", [x, s, z], name=x + "_q")
        dq = g.op("DequantizeLinear", [q, s, z], name=out or x + "_dq", outputs=[out] if out else None)
        self._done[(id(g), x)] = dq
        return dq


def _initializer_names(g: Graph) -> set[str]:
    return {t.name for t in g.initializers}


def _initializer_map(g: Graph) -> dict:
    return {t.name: t for t in g.initializers}


class RecordingLinear(FloatLinear):
    """FloatLinear that remembers which tensor feeds each linear (for GPTQ's X^T X)."""

    def __init__(self, act) -> None:
        super().__init__(act)
        self.inputs: dict[str, str] = {}

    def __call__(self, g: Graph, x: str, name: str, w: np.ndarray, bias: np.ndarray | None) -> str:
        self.inputs[name] = x
        return super().__call__(g, x, name, w, bias)


def rotated_model(ckpt: Checkpoint, rotate: bool, online: bool, seed: int):
    """(layer provider, embedding table, lm_head weight, rotation info) after norm folding and QuaRot."""
    cfg = ckpt.config
    rng = np.random.default_rng(seed)
    q = random_hadamard(cfg.hidden_size, rng) if rotate else None
    if rotate and q is None:
        raise BuildError(f"QuaRot: no Hadamard construction for hidden_size {cfg.hidden_size}; use --no-rotate")
    down = online_factors(cfg.intermediate_size) if (rotate and online) else None
    from toolkit.build.builder import checkpoint_layer

    def layer(i: int) -> LayerWeights:
        return fold_and_rotate(checkpoint_layer(ckpt, i), q, down)

    embed = ckpt.tensor("model.embed_tokens.weight")
    head = ckpt.lm_head() * ckpt.tensor("model.norm.weight")[None, :]
    if q is not None:
        embed = (embed.astype(np.float64) @ q).astype(np.float32)
        head = (head.astype(np.float64) @ q).astype(np.float32)
    info = {"rotation": f"QuaRot randomized Hadamard (Kronecker), seed {seed}" if rotate else "none",
            "online_down_hadamard": down is not None}
    return layer, embed, head, info


def calibration_ids(ckpt: Checkpoint, text_file: Path, max_tokens: int) -> list[list[int]]:
    """Token ids of the calibration text (documents split on <|endoftext|>, BOS-prefixed)."""
    from tokenizers import Tokenizer

    from toolkit.build.evaluate import split_documents

    tok_path = ckpt.folder / "tokenizer.json"
    if not tok_path.is_file():
        raise BuildError(f"{tok_path}: tokenizer.json is needed to tokenize the calibration text")
    tok = Tokenizer.from_file(str(tok_path))
    bos = ckpt.config.bos_token_id
    docs, total = [], 0
    for d in split_documents(Path(text_file).read_text(encoding="utf-8")):
        ids = ([bos] if bos is not None else []) + tok.encode(d, add_special_tokens=False).ids
        ids = ids[: max_tokens - total]
        if len(ids) > 1:
            docs.append(ids)
            total += len(ids)
        if total >= max_tokens:
            break
    if not docs:
        raise BuildError(f"{text_file}: no calibration tokens")
    return docs


def calibrate(ckpt: Checkpoint, layer: Callable[[int], LayerWeights], embed: np.ndarray, spec: GraphSpec,
              docs: list[list[int]], want_hessians: bool) -> tuple[dict, dict]:
    """Run the float graph on the calibration windows: activation ranges and per-linear X^T X."""
    import onnxruntime as ort

    cfg = ckpt.config
    rec = RangeRecorder()
    lin = RecordingLinear(rec)
    g = build_transformer(cfg, layer, None, lin, spec, act=rec, name="calibration")
    produced = {o for n in g.nodes for o in n.output}
    watch = [n for n in rec.names if n in produced]
    declared = {o.name for o in g.outputs}
    for n in watch:
        if n not in declared:
            g.outputs.append(helper.make_tensor_value_info(n, TensorProto.FLOAT, None))
    watch_inputs = [n for n in rec.names if n not in produced]  # graph inputs: input_hidden_states, past_*
    ranges: dict[str, list[float]] = {}
    grams: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory(prefix="toolkit-calib-") as tmp:
        path = Path(tmp) / "calibration.onnx"
        g.save(path)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        out_names = [o.name for o in sess.get_outputs()]
        kv_shape = (1, cfg.num_kv_heads, spec.context_length, cfg.head_dim)
        w = spec.seq_len
        for ids in docs:
            ids = ids[: spec.context_length]
            past = {f"past_{k}_{i}": np.zeros(kv_shape, np.float32)
                    for i in range(cfg.num_layers) for k in ("keys", "values")}
            for w0 in range(0, len(ids), w):
                chunk = ids[w0:w0 + w]
                n_real = len(chunk)
                chunk = chunk + [chunk[-1]] * (w - n_real)
                feeds = {"input_hidden_states": embed[np.asarray(chunk)][None], **past,
                         "past_seq_len": np.asarray([[w0 + w - 1]], np.int32),
                         "total_seq_len": np.asarray([spec.context_length], np.int32)}
                outs = dict(zip(out_names, sess.run(out_names, feeds), strict=True))
                values = {**{n: feeds[n] for n in watch_inputs}, **outs}
                for n in rec.names:
                    a = values[n]
                    if n == "input_hidden_states" or a.ndim == 3:
                        a = a[:, :n_real] if a.shape[1] == w else a
                    lo, hi = float(a.min()), float(a.max())
                    r = ranges.setdefault(n, [lo, hi])
                    r[0], r[1] = min(r[0], lo), max(r[1], hi)
                if want_hessians:
                    for lname, src in lin.inputs.items():
                        x = values[src].reshape(-1, values[src].shape[-1])[:n_real].astype(np.float64)
                        grams[lname] = grams.get(lname, 0) + x.T @ x
                past = {k: outs[k.replace("past_", "present_")] for k in past}
    return {k: (v[0], v[1]) for k, v in ranges.items()}, grams


def write_npu_stages(ckpt: Checkpoint, opts, out: Path) -> tuple[str, str, dict]:
    """Write embeddings, context, iterator and lm_head of an npu-qdq package into `out`."""
    cfg = ckpt.config
    layer, embed, head, info = rotated_model(ckpt, opts.rotate, opts.online_hadamard, opts.seed)
    build_embeddings(embed, quantized=True).save(out / EMBEDDINGS)
    build_lm_head(head, quantized=True).save(out / LM_HEAD)
    spec = GraphSpec(attention="explicit", context_length=opts.context_length, seq_len=opts.window,
                     fused_norm=False, mask_value=MASK_VALUE)
    docs = calibration_ids(ckpt, opts.calibration_text, opts.calibration_tokens)
    ranges, grams = calibrate(ckpt, layer, embed, spec, docs, opts.weight_method == "gptq")
    if opts.weight_method not in ("rtn", "gptq"):
        raise BuildError(f"--weights: {opts.weight_method!r} is not rtn or gptq")
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
