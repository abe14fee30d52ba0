"""npu-qdq packages: static QDQ graphs that QNN's HTP backend (simulator) runs whole, matching the CPU EP."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto

from tests.helpers.fixtures import TEXT, qnn_session_options
from toolkit.build.evaluate import PackageRunner, split_documents
from toolkit.build.graph import Graph
from toolkit.build.quantize import quantize_rtn


def _text_ids(package, n):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(package / "tokenizer.json"))
    return [1] + tok.encode(split_documents(TEXT.read_text())[0]).ids[: n - 1]


def test_context_and_iterator_have_static_shapes(tiny_qwen2_npu_qdq_package):
    for name, seq in (("context.onnx", 64), ("iterator.onnx", 1)):
        m = onnx.load(str(tiny_qwen2_npu_qdq_package / name), load_external_data=False)
        dims = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in m.graph.input}
        assert dims["input_hidden_states"] == [1, seq, 96]
        assert dims["past_keys_0"] == [1, 2, 256, 16]
        assert dims["past_seq_len"] == [1, 1] and dims["total_seq_len"] == [1]
        assert all(d > 0 for shape in dims.values() for d in shape)


def test_weights_are_int4_per_channel_with_explicit_zero_points(tiny_qwen2_npu_qdq_package):
    m = onnx.load(str(tiny_qwen2_npu_qdq_package / "context.onnx"), load_external_data=False)
    inits = {t.name: t for t in m.graph.initializer}
    weight_dq = [n for n in m.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
                 and inits[n.input[0]].data_type == TensorProto.INT4]
    assert len(weight_dq) == 2 * 7  # q k v o gate up down, two layers
    for n in weight_dq:
        assert len(n.input) == 3, f"{n.name}: implicit zero point (QNN HTP misreads it)"
        zp = inits[n.input[2]]
        assert zp.data_type == TensorProto.INT4 and not any(onnx.numpy_helper.to_array(zp))
    act_q = [n for n in m.graph.node if n.op_type == "QuantizeLinear"]
    assert act_q and all(inits[n.input[2]].data_type == TensorProto.UINT16 for n in act_q)
    assert not any(n.op_type in ("MatMulNBits", "GroupQueryAttention") for n in m.graph.node)
    quant = json.loads((tiny_qwen2_npu_qdq_package / "toolkit_manifest.json").read_text())["quantization"]
    assert quant["online_down_hadamard"] and "gptq" in quant["weights"] and quant["rotation"].startswith("QuaRot")
    assert any(n.name.endswith("/had/mm_a") for n in m.graph.node)  # 160 = 20 x 8: Kronecker online Hadamard


def test_qnn_htp_runs_context_and_iterator_without_cpu_fallback_and_matches_cpu(tiny_qwen2_npu_qdq_package):
    pkg = tiny_qwen2_npu_qdq_package
    so = qnn_session_options(disable_cpu_fallback=True)
    qnn = PackageRunner(pkg)
    qnn.context = ort.InferenceSession(str(pkg / "context.onnx"), so)  # raises if any node needs the CPU
    qnn.iterator = ort.InferenceSession(str(pkg / "iterator.onnx"), so)
    assert qnn.context.get_providers()[0] == "QNNExecutionProvider"
    cpu = PackageRunner(pkg)
    ids = _text_ids(pkg, 100)  # two windows, the second padded
    lc, lq = cpu.sequence_logits(ids), qnn.sequence_logits(ids)
    assert np.abs(lc - lq).max() < 0.05 * np.abs(lc).max()
    assert np.mean(lc.argmax(-1) == lq.argmax(-1)) > 0.9
    assert cpu.greedy(ids[:70], 12) == qnn.greedy(ids[:70], 12)  # context then iterator steps


def _int4_matmul_graph(path, explicit_zero_point: bool):
    w = np.random.default_rng(0).standard_normal((64, 32)).astype(np.float32)
    wq, ws, wz = quantize_rtn(w).tensor_protos("w")
    g = Graph("zp")
    g.input("x", TensorProto.FLOAT, [1, 8, 64])
    s, z = g.init("xs", np.asarray(8 / 65535, np.float32)), g.init("xz", np.asarray(32768, np.uint16))
    xd = g.op("DequantizeLinear", [g.op("QuantizeLinear", ["x", s, z]), s, z])
    for t in (wq, ws) + ((wz,) if explicit_zero_point else ()):
        g.init_proto(t)
    wd = g.op("DequantizeLinear", [wq.name, ws.name] + ([wz.name] if explicit_zero_point else []), axis=1)
    ys = g.init("ys", np.asarray(200 / 65535, np.float32))
    y = g.op("QuantizeLinear", [g.op("MatMul", [xd, wd]), ys, z])
    g.op("DequantizeLinear", [y, ys, z], outputs=["y"])
    g.output("y", TensorProto.FLOAT, [1, 8, 32])
    g.save(path)
    return str(path)


def test_int4_zero_point_regression_on_qnn_htp(tmp_path):
    """An explicit int4 zero point of zeros gives the CPU result on HTP (QNN misreads an implicit one)."""
    so = qnn_session_options()
    x = np.random.default_rng(1).standard_normal((1, 8, 64)).astype(np.float32)
    diffs = {}
    for explicit in (True, False):
        path = _int4_matmul_graph(tmp_path / f"zp_{explicit}.onnx", explicit)
        on_htp = ort.InferenceSession(path, so).run(None, {"x": x})[0]
        on_cpu = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        diffs[explicit] = np.abs(on_htp - on_cpu).max() / np.abs(on_cpu).max()
    assert diffs[True] < 0.02
    if diffs[False] < 0.02:
        pytest.fail("QNN now reads implicit int4 zero points correctly: the explicit ones could be dropped")


def test_npu_qdq_needs_calibration_text(tmp_path, tiny_qwen2_checkpoint):
    from catalog.errors import BuildError
    from toolkit.build import BuildOptions, build_package

    with pytest.raises(BuildError, match="calibration-text"):
        build_package(tiny_qwen2_checkpoint, tmp_path / "o", BuildOptions(target="npu-qdq", context_length=256))


def test_keep_float_leaves_attention_scores_unquantized_and_htp_still_runs_it(tmp_path, tiny_qwen2_checkpoint):
    from toolkit.build import BuildOptions, build_package

    out = tmp_path / "kf"
    manifest = build_package(tiny_qwen2_checkpoint, out, BuildOptions(
        target="npu-qdq", context_length=256, calibration_text=TEXT, weight_method="rtn",
        keep_float=("masked_scores",)))
    assert manifest["quantization"]["kept_float"] == ["layers.0.attn/masked_scores", "layers.1.attn/masked_scores"]
    m = onnx.load(str(out / "iterator.onnx"), load_external_data=False)
    quantized = {n.input[0] for n in m.graph.node if n.op_type == "QuantizeLinear"}
    assert "layers.0.attn/masked_scores" not in quantized and "layers.0.attn/scores" in quantized
    session = ort.InferenceSession(str(out / "iterator.onnx"), qnn_session_options(disable_cpu_fallback=True))
    assert session.get_providers()[0] == "QNNExecutionProvider"
