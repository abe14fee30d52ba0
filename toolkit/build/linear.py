"""How one linear layer becomes ONNX: float MatMul, int4 MatMulNBits, or int4 DequantizeLinear -> MatMul."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from toolkit.build.graph import MS_DOMAIN, Graph
from toolkit.build.quantize import BLOCK, BlockQuantized, ChannelQuantized, quantize_blockwise

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
        n, k = w.shape
        bq = self.quantizer(name, w)
        b = g.init(name + ".qweight", bq.packed)
        s = g.init(name + ".scales", bq.scales.reshape(-1))
        z = g.init(name + ".qzeros", bq.zero_points.reshape(-1))
        y = g.op("MatMulNBits", [x, b, s, z], name=name + "/MatMulNBits", domain=MS_DOMAIN,
                 K=k, N=n, bits=bq.bits, block_size=BLOCK, accuracy_level=self.accuracy_level)
        return _bias(g, y, name, bias)


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
