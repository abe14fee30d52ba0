"""npu-qdq packages: static QDQ graphs that QNN's HTP backend (simulator) runs whole, matching the CPU EP."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto

from tests.helpers.checkpoints import QWEN2_TINY, write_checkpoint
from tests.helpers.fixtures import TEXT, qnn_session_options
from tests.helpers.package_runner import PackageRunner
from toolkit.builder.graph import Graph
from toolkit.builder.npu import DATA_MOVEMENT
from toolkit.builder.quantize import quantize_rtn
from toolkit.builder.text import split_documents


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


@pytest.fixture(scope="module")
def default_context_package(tmp_path_factory):
    """The tiny qwen2 with DeepSeek-like max_position_embeddings, built with no --context-length (so 4096)."""
    ckpt = write_checkpoint(tmp_path_factory.mktemp("ckpt") / "qwen2-32k",
                            {**QWEN2_TINY, "max_position_embeddings": 32768}, seed=1, dtype="bfloat16", shards=2)
    from toolkit.builder import BuildOptions, build_package

    out = tmp_path_factory.mktemp("packages") / "qwen2-npu-qdq-default"
    manifest = build_package(ckpt, out, BuildOptions(target="npu-qdq", calibration_text=TEXT))
    assert manifest["context_length"] == 4096 and "warnings" not in manifest
    return out


def _check_runs_whole_on_htp_and_matches_cpu(pkg):
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


def test_default_context_package_runs_whole_on_qnn_htp_and_matches_cpu(default_context_package):
    """Context 4096 used to fail graph finalization (QNN_COMMON_ERROR_MEM_ALLOC) and fall back to the CPU."""
    m = onnx.load(str(default_context_package / "context.onnx"), load_external_data=False)
    dims = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in m.graph.input}
    assert dims["past_keys_0"] == [1, 2, 4096, 16]
    _check_runs_whole_on_htp_and_matches_cpu(default_context_package)


def _producers(m):
    return {o: n for n in m.graph.node for o in n.output}


def test_data_movement_outputs_keep_the_quantization_they_read(default_context_package):
    """A Gather (RoPE rows) or Reshape/Transpose between a DequantizeLinear and a QuantizeLinear must not requantize:
    QNN's HTP cannot finalize a requantizing Gather. The calibration text does not reach position 4095, so the
    gathered rows' own calibrated range would differ from the table's."""
    m = onnx.load(str(default_context_package / "context.onnx"), load_external_data=False)
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}
    producers = _producers(m)
    checked = []
    for q in (n for n in m.graph.node if n.op_type == "QuantizeLinear"):
        node = producers.get(q.input[0])
        if node is None or node.op_type not in DATA_MOVEMENT:
            continue
        while node.op_type in DATA_MOVEMENT:
            node = producers[node.input[0]]
        assert node.op_type == "DequantizeLinear", f"{q.name}: {node.op_type} feeds a data-movement chain"
        for i in (1, 2):
            assert inits[q.input[i]] == inits[node.input[i]], f"{q.name} requantizes {node.output[0]}"
        checked.append(q.input[0])
    assert {"cos_s/gather", "sin_s/gather", "cos_s/shape", "sin_s/shape"} <= set(checked)


def _gather_graph(path, out_range: float):
    """A uint16 QDQ table [64, 8] in [-1, 1], Gather of one row, output quantized over [-out_range, out_range]."""
    g = Graph("gather")
    g.input("pos", TensorProto.INT32, [1])
    table = np.random.default_rng(0).uniform(-1, 1, (64, 8)).astype(np.float32)
    table[0, :2] = (-1, 1)

    def qdq(x, r):
        s, z = g.init(x + "_s", np.asarray(2 * r / 65535, np.float32)), g.init(x + "_z", np.asarray(32768, np.uint16))
        return g.op("DequantizeLinear", [g.op("QuantizeLinear", [x, s, z]), s, z])

    rows = g.op("Gather", [qdq(g.init("table", table), 1.0), "pos"], name="rows", axis=0)
    g.op("Identity", [qdq(rows, out_range)], outputs=["y"])
    g.output("y", TensorProto.FLOAT, [1, 8])
    g.save(path)
    return str(path)


def test_requantizing_gather_regression_on_qnn_htp(tmp_path):
    """What the builder avoids: HTP reports a Gather whose output scale differs from its table's as a memory error."""
    so = qnn_session_options()
    ort.InferenceSession(_gather_graph(tmp_path / "same.onnx", 1.0), so)  # shared quantization: loads
    try:
        ort.InferenceSession(_gather_graph(tmp_path / "requantized.onnx", 0.9), so)
    except Exception as e:  # onnxruntime raises its own exception types
        assert "QNN_COMMON_ERROR_MEM_ALLOC" in str(e)
    else:
        pytest.fail("QNN now finalizes a requantizing Gather: update docs/build.md (the shared quantization stays)")


def test_qnn_htp_runs_context_and_iterator_without_cpu_fallback_and_matches_cpu(tiny_qwen2_npu_qdq_package):
    _check_runs_whole_on_htp_and_matches_cpu(tiny_qwen2_npu_qdq_package)


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
    from toolkit.builder import BuildOptions, build_package

    with pytest.raises(BuildError, match="calibration-text"):
        build_package(tiny_qwen2_checkpoint, tmp_path / "o", BuildOptions(target="npu-qdq", context_length=256))


def test_keep_float_leaves_attention_scores_unquantized_and_htp_still_runs_it(tmp_path, tiny_qwen2_checkpoint):
    from toolkit.builder import BuildOptions, build_package

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
