"""How one linear layer becomes ONNX: float MatMul, int4 MatMulNBits, or int4 DequantizeLinear -> MatMul."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from toolkit.builder.graph import MS_DOMAIN, Graph
from toolkit.builder.quantize import BLOCK, BlockQuantized, ChannelQuantized, quantize_blockwise

ActHook = Callable[..., str]


def no_qdq(g: Graph, x: str, out: str | None = None) -> str:
    """The activation hook of float and CPU graphs: leave the tensor as it is (renamed to `out` if given)."""
    if out is not None:
        return g.op("Identity", [x], name=out + "/id", outputs=[out])
    return x


def _bias(g: Graph, y: str, name: str, bias: np.ndarray | None) -> str:
    if bias is None:
        return y
    return g.op("Add", [y, g.init(name + ".bias", bias.astype(np.float32))], name=name + "/bias_add")


class FloatLinear:
    """y = x W^T + b with fp32 weights (`act` sees the MatMul output before the bias, as in QDQLinear)."""

    def __init__(self, act: ActHook | None = None) -> None:
        self.act = act

    def __call__(self, g: Graph, x: str, name: str, w: np.ndarray, bias: np.ndarray | None) -> str:
        wt = g.init(name + ".weight_t", np.ascontiguousarray(w.T, dtype=np.float32))
        y = g.op("MatMul", [x, wt], name=name + "/MatMul")
        if bias is not None and self.act is not None:
            y = self.act(g, y)
        return _bias(g, y, name, bias)


class NBitsLinear:
    """y = x W^T + b with W as int4 blocks of 32 (MatMulNBits, accuracy_level 4).

    `quantizer(name, w)` picks the rounding (default: range-searched RTN; GPTQ when calibrated).
    """

    def __init__(self, accuracy_level: int = 4,
                 quantizer: Callable[[str, np.ndarray], BlockQuantized] | None = None) -> None:
        self.accuracy_level = accuracy_level
        self.quantizer = quantizer or (lambda name, w: quantize_blockwise(w))

    def __call__(self, g: Graph, x: str, name: str, w: np.ndarray, bias: np.ndarray | None) -> str:
        return self._emit(g, x, name, self.quantizer(name, w), bias)

    def _emit(self, g: Graph, x: str, name: str, bq: BlockQuantized, bias: np.ndarray | None) -> str:
        n, k = bq.packed.shape[0], bq.cols
        inputs = [x, g.init(name + ".qweight", bq.packed), g.init(name + ".scales", bq.scales.reshape(-1))]
        inputs.append(g.init(name + ".qzeros", bq.zero_points.reshape(-1)) if bq.zero_points is not None else "")
        if bias is not None:  # MatMulNBits' own bias input (index 5; 4 is g_idx): no separate Add kernel
            inputs += ["", g.init(name + ".bias", bias.astype(np.float32))]
        while inputs[-1] == "":
            inputs.pop()
        return g.op("MatMulNBits", inputs, name=name + "/MatMulNBits", domain=MS_DOMAIN,
                    K=k, N=n, bits=bq.bits, block_size=BLOCK, accuracy_level=self.accuracy_level)

    def fused(self, g: Graph, x: str, name: str, parts: list[tuple[str, np.ndarray, np.ndarray | None]]) -> str:
        """One output [.., sum N] for several linears sharing input x: each part is quantized under its own
        name, then parts with the same bit width are stacked along N into one MatMulNBits (a Concat joins
        the groups when widths differ)."""
        quantized = [(pname, self.quantizer(pname, w), w.shape[0], b) for pname, w, b in parts]
        groups: list[list] = []
        for item in quantized:
            if groups and groups[-1][-1][1].bits == item[1].bits:
                groups[-1].append(item)
            else:
                groups.append([item])
        outs = []
        for grp in groups:
            gname = name if len(groups) == 1 else grp[0][0] if len(grp) == 1 else \
                name + "." + "_".join(p[0].rsplit(".", 1)[-1] for p in grp)
            bq = grp[0][1] if len(grp) == 1 else _stack([p[1] for p in grp])
            biases = [p[3] if p[3] is not None else np.zeros(p[2], np.float32) for p in grp]
            bias = None if all(p[3] is None for p in grp) else np.concatenate(biases)
            outs.append(self._emit(g, x, gname, bq, bias))
        return outs[0] if len(outs) == 1 else g.op("Concat", outs, name=name + "/concat", axis=-1)


def _stack(parts: list[BlockQuantized]) -> BlockQuantized:
    """Block-quantized matrices with the same columns and bits, stacked along rows (output channels)."""
    zps = [p.zero_points for p in parts]
    return dataclasses.replace(parts[0], packed=np.concatenate([p.packed for p in parts]),
                               scales=np.concatenate([p.scales for p in parts]),
                               zero_points=None if any(z is None for z in zps) else np.concatenate(zps))


class QDQLinear:
    """y = x DQ(W_int4)^T + b: int4 per-channel symmetric weights with explicit zero points (opset 21)."""

    def __init__(self, quantizer: Callable[[str, np.ndarray], ChannelQuantized], act: ActHook) -> None:
        self.quantizer = quantizer
        self.act = act

    def __call__(self, g: Graph, x: str, name: str, w: np.ndarray, bias: np.ndarray | None) -> str:
        cq = self.quantizer(name, np.ascontiguousarray(w.T, dtype=np.float32))
        wq, s, z = cq.tensor_protos(name + ".qweight")
        for t in (wq, s, z):
            g.init_proto(t)
        wdq = g.op("DequantizeLinear", [wq.name, s.name, z.name], name=name + "/weight_dq", axis=1)
        y = g.op("MatMul", [x, wdq], name=name + "/MatMul")
        if bias is not None:
            y = self.act(g, y)
        return _bias(g, y, name, bias)
