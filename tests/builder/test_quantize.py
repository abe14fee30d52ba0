"""Quantizers: packing that ONNX Runtime reads back exactly, and GPTQ beating round-to-nearest."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto

from toolkit.builder.graph import Graph
from toolkit.builder.linear import NBitsLinear
from toolkit.builder.quantize import (
    gptq_blockwise,
    quantize_blockwise,
    quantize_blockwise8,
    quantize_gptq,
    quantize_rtn,
)
from toolkit.builder.stages import build_embeddings


def _calibration(rng, n_in, n=400):
    x = rng.standard_normal((n, n_in))
    x[:, :5] *= 6  # a few outlier channels, as real activations have
    return x


@pytest.mark.parametrize("quantizer", [lambda w, h: quantize_blockwise(w), lambda w, h: gptq_blockwise(w, h),
                                       lambda w, h: quantize_blockwise8(w)])
def test_matmulnbits_computes_with_exactly_our_dequantized_weights(tmp_path, quantizer):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((48, 100)).astype(np.float32)  # K = 100: the last block of 32 is padded
    x = _calibration(rng, 100)
    bq = quantizer(w, x.T @ x)
    g = Graph("t")
    g.input("x", TensorProto.FLOAT, [1, 3, 100])
    y = NBitsLinear(accuracy_level=0, quantizer=lambda name, w: bq)(g, "x", "lin", w, None)
    g.op("Identity", [y], outputs=["y"])
    g.output("y", TensorProto.FLOAT, [1, 3, 48])
    g.save(tmp_path / "m.onnx")
    xin = rng.standard_normal((1, 3, 100)).astype(np.float32)
    out = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"]).run(None, {"x": xin})[0]
    assert np.abs(out - xin @ bq.dequantize().T).max() < 1e-4


def test_gather_block_quantized_returns_our_dequantized_rows(tmp_path):
    table = np.random.default_rng(1).standard_normal((50, 96)).astype(np.float32)
    build_embeddings(table, quantized=True).save(tmp_path / "e.onnx")
    ids = np.array([[0, 7, 49, 7]], np.int64)
    out = ort.InferenceSession(str(tmp_path / "e.onnx"), providers=["CPUExecutionProvider"]).run(None, {"input_ids": ids})[0]
    assert np.abs(out[0] - quantize_blockwise(table, shrink=(1.0,)).dequantize()[ids[0]]).max() < 1e-5


def test_gptq_blockwise_has_lower_output_error_than_rtn():
    rng = np.random.default_rng(2)
    w = rng.standard_normal((64, 128)).astype(np.float32)
    x = _calibration(rng, 128)
    rtn = np.square(x @ (quantize_blockwise(w).dequantize() - w).T).mean()
    gptq = np.square(x @ (gptq_blockwise(w, x.T @ x).dequantize() - w).T).mean()
    assert gptq < 0.8 * rtn


def test_input_scale_weighting_lowers_the_output_error_of_rtn():
    """Weighting the range search by each input's magnitude (the norm scale) helps when the magnitudes differ."""
    rng = np.random.default_rng(4)
    w = rng.standard_normal((256, 96)).astype(np.float32)
    gamma = rng.uniform(0.2, 3.0, 96).astype(np.float32)
    x = rng.standard_normal((2000, 96)) * gamma  # inputs whose size per channel follows gamma
    err = lambda bq: np.square(x @ (bq.dequantize() - w).T).mean()  # noqa: E731
    assert err(quantize_blockwise(w, input_scale=gamma)) < 0.95 * err(quantize_blockwise(w))
    with pytest.raises(ValueError, match="95 values for a weight with 96 columns"):
        quantize_blockwise(w, input_scale=gamma[:95])


def test_per_channel_gptq_beats_rtn_and_stays_in_int4_range():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((128, 64)).astype(np.float32)  # [in, out]
    x = _calibration(rng, 128)
    g = quantize_gptq(w, x.T @ x)
    assert g.q.min() >= -8 and g.q.max() <= 7 and g.scales.shape == (64,)
    err = lambda cq: np.square(x @ (cq.dequantize() - w)).mean()  # noqa: E731
    assert err(g) < 0.8 * err(quantize_rtn(w))
