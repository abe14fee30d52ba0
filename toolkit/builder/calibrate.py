"""Calibration: run a float graph on text, record activation ranges and each linear's input Gram matrix."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper
from tokenizers import Tokenizer

from catalog.errors import BuildError
from toolkit.builder.checkpoint import Checkpoint
from toolkit.builder.graph import Graph
from toolkit.builder.linear import FloatLinear
from toolkit.builder.text import read_text, split_documents
from toolkit.builder.transformer import GraphSpec, LayerWeights, build_transformer


class RangeRecorder:
    """Activation hook of the calibration graph: remembers which tensors to observe."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def __call__(self, g: Graph, x: str, out: str | None = None) -> str:
        if x not in self.names and x not in g.initializer_by_name:
            self.names.append(x)
        if out is not None:
            return g.op("Identity", [x], name=out + "/id", outputs=[out])
        return x


def initializer_map(g: Graph) -> dict:
    """Initializers of a graph by name."""
    return g.initializer_by_name


class RecordingLinear(FloatLinear):
    """FloatLinear that remembers which tensor feeds each linear (for GPTQ's X^T X)."""

    def __init__(self, act) -> None:
        super().__init__(act)
        self.inputs: dict[str, str] = {}

    def __call__(self, g: Graph, x: str, name: str, w: np.ndarray, bias: np.ndarray | None) -> str:
        self.inputs[name] = x
        return super().__call__(g, x, name, w, bias)


def calibration_ids(ckpt: Checkpoint, text_file: Path, max_tokens: int) -> list[list[int]]:
    """Token ids of the calibration text (documents split on <|endoftext|>, BOS-prefixed)."""
    tok_path = ckpt.folder / "tokenizer.json"
    if not tok_path.is_file():
        raise BuildError(f"{tok_path}: tokenizer.json is needed to tokenize the calibration text")
    tok = Tokenizer.from_file(str(tok_path))
    bos = ckpt.config.bos_token_id
    docs, total = [], 0
    for d in split_documents(read_text(Path(text_file), "calibration text")):
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
              docs: list[list[int]], want_hessians: bool,
              final_norm: np.ndarray | None = None) -> tuple[dict, GramStore]:
    """Run the float graph on the calibration windows: activation ranges and per-linear X^T X.

    The Gram matrix of the final hidden states is returned under "lm_head".
    """
    cfg = ckpt.config
    rec = RangeRecorder()
    lin = RecordingLinear(rec)
    g = build_transformer(cfg, layer, final_norm, lin, spec, act=rec, name="calibration")
    lin.inputs["lm_head"] = "output_hidden_states"
    produced = {o for n in g.nodes for o in n.output}
    watch = [n for n in rec.names if n in produced]
    declared = {o.name for o in g.outputs}
    for n in watch:
        if n not in declared:
            g.outputs.append(helper.make_tensor_value_info(n, TensorProto.FLOAT, None))
    watch_inputs = [n for n in rec.names if n not in produced]  # graph inputs: input_hidden_states, past_*
    ranges: dict[str, list[float]] = {}
    rows: dict[str, list[np.ndarray]] = {}
    with tempfile.TemporaryDirectory(prefix="toolkit-calib-") as tmp:
        path = Path(tmp) / "calibration.onnx"
        g.save(path)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        out_names = [o.name for o in sess.get_outputs()]
        kv_shape = (1, cfg.num_kv_heads, spec.context_length, cfg.head_dim)
        w = spec.seq_len
        pieces = [d[i:i + spec.context_length] for d in docs for i in range(0, len(d), spec.context_length)]
        for ids in pieces:
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
                    for src in set(lin.inputs.values()):
                        rows.setdefault(src, []).append(values[src].reshape(-1, values[src].shape[-1])[:n_real])
                past = {k: outs[k.replace("past_", "present_")] for k in past}
    grams = GramStore(lin.inputs, {k: np.concatenate(v) for k, v in rows.items()})
    return {k: (v[0], v[1]) for k, v in ranges.items()}, grams


class GramStore:
    """X^T X of each linear's input, computed on demand from the stored calibration rows.

    Rows (tokens x dim, float32) are far smaller than the Gram matrices for a few hundred tokens
    (8960^2 doubles per down_proj would be 640 MB a layer); the last matrix is kept, since q/k/v
    and gate/up read the same tensor.
    """

    def __init__(self, inputs: dict[str, str], rows: dict[str, np.ndarray]) -> None:
        self.inputs, self.rows = inputs, rows
        self._last: tuple[str, np.ndarray] | None = None

    def __getitem__(self, linear: str) -> np.ndarray:
        src = self.inputs[linear]
        if self._last is None or self._last[0] != src:
            x = self.rows[src].astype(np.float64)
            self._last = (src, x.T @ x)
        return self._last[1]
