"""Float and cpu-int4 packages: exact against the numpy reference, and runnable by onnxruntime-genai."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers.package_runner import PackageRunner
from tests.helpers.reference import ReferenceModel


@pytest.fixture(scope="module")
def stories_reference(stories_checkpoint):
    return ReferenceModel(stories_checkpoint)


@pytest.fixture(scope="module")
def greedy_200(stories_float_package):
    """The float package's greedy 200 tokens from BOS (checked against the reference below)."""
    return PackageRunner(stories_float_package).greedy([1], 200)


def _genai_greedy(package, prompt, n_new):
    og = pytest.importorskip("onnxruntime_genai")
    model = og.Model(str(package))
    params = og.GeneratorParams(model)
    params.set_search_options(do_sample=False)
    gen = og.Generator(model, params)
    gen.append_tokens(prompt)
    out = list(prompt)
    while len(out) < len(prompt) + n_new:
        gen.generate_next_token()
        out.append(int(gen.get_next_tokens()[0]))
    return out


def test_stories_float_logits_match_reference_within_1e4(stories_float_package, stories_reference, greedy_200):
    ids = greedy_200[:151]  # 151 tokens: three windows, the last one padded
    logits = PackageRunner(stories_float_package).sequence_logits(ids)
    assert np.abs(logits - stories_reference.logits(ids)).max() < 1e-4


def test_stories_float_greedy_200_from_bos_equals_reference(stories_reference, greedy_200):
    assert len(greedy_200) == 201
    assert stories_reference.is_greedy_continuation(greedy_200, 1)  # each token is the reference's argmax


def test_genai_runs_stories_float_package_to_the_reference_tokens(stories_float_package, stories_reference):
    tokens = _genai_greedy(stories_float_package, [1], 200)
    assert len(tokens) == 201 and stories_reference.is_greedy_continuation(tokens, 1)


def test_genai_handles_a_prompt_longer_than_one_window(stories_float_package, stories_reference):
    prompt = [1] + list(range(300, 399))  # 100 arbitrary tokens: windows of 64 + 36 (padded)
    assert stories_reference.is_greedy_continuation(_genai_greedy(stories_float_package, prompt, 30), 100)


def test_qwen2_with_biases_and_gqa_matches_reference(tiny_qwen2_float_package, tiny_qwen2_checkpoint):
    ref = ReferenceModel(tiny_qwen2_checkpoint)
    ids = _genai_greedy(tiny_qwen2_float_package, [1, 17, 33], 80)
    assert ref.is_greedy_continuation(ids, 3)
    runner = PackageRunner(tiny_qwen2_float_package)
    assert np.abs(runner.sequence_logits(ids) - ref.logits(ids)).max() < 1e-4


def test_tiny_llama_fp16_checkpoint_builds_and_matches(tmp_path, tiny_llama_checkpoint):
    from toolkit.builder import BuildOptions, build_package

    build_package(tiny_llama_checkpoint, tmp_path / "pkg", BuildOptions(target="float", context_length=128))
    ref = ReferenceModel(tiny_llama_checkpoint)
    ids = PackageRunner(tmp_path / "pkg").greedy([1, 2, 3], 40)
    assert ref.is_greedy_continuation(ids, 3)
    assert np.abs(PackageRunner(tmp_path / "pkg").sequence_logits(ids) - ref.logits(ids)).max() < 1e-4


def test_cpu_int4_package_uses_matmulnbits_and_gather_block_quantized(tiny_qwen2_cpu_int4_package):
    import onnx

    ops = {}
    for name in ("embeddings.onnx", "transformer.onnx", "lm_head.onnx"):
        m = onnx.load(str(tiny_qwen2_cpu_int4_package / name), load_external_data=False)
        ops[name] = {n.op_type for n in m.graph.node}
        for n in m.graph.node:
            if n.op_type == "MatMulNBits":
                attrs = {a.name: a.i for a in n.attribute}
                small = n.name.split("/")[0].endswith("k_proj_v_proj")  # k and v fused, kept at 8 bits
                assert attrs["bits"] == (8 if small else 4), n.name
                assert attrs["block_size"] == 32 and attrs["accuracy_level"] == 4
    graph = onnx.load(str(tiny_qwen2_cpu_int4_package / "transformer.onnx"), load_external_data=False).graph
    layers = sum(1 for i in graph.input if i.name.startswith("past_keys_"))
    kinds = [n.op_type for n in graph.node]
    # per layer: q, fused k/v, o, fused gate/up, down; residual adds inside the skip norms; biases folded
    assert kinds.count("MatMulNBits") == 5 * layers
    assert kinds.count("SkipSimplifiedLayerNormalization") == 2 * layers
    assert "Add" not in kinds
    assert "GatherBlockQuantized" in ops["embeddings.onnx"]
    assert "MatMulNBits" in ops["lm_head.onnx"]
    assert "GroupQueryAttention" in ops["transformer.onnx"]
    assert "MatMul" not in ops["transformer.onnx"]


def test_cpu_int4_qwen2_runs_in_genai_and_mostly_agrees(tiny_qwen2_cpu_int4_package, tiny_qwen2_checkpoint):
    ref = ReferenceModel(tiny_qwen2_checkpoint)
    ids = [1, 17, 33] + list(range(100, 160))
    logits = PackageRunner(tiny_qwen2_cpu_int4_package).sequence_logits(ids)
    expected = ref.logits(ids)
    rel_rms = np.sqrt(np.mean((logits - expected) ** 2) / np.mean(expected ** 2))
    assert rel_rms < 0.3  # int4 noise, not a wiring error (a wrong layout gives ~1.0 or more)
    assert np.mean(logits.argmax(-1) == expected.argmax(-1)) > 0.5
    assert len(_genai_greedy(tiny_qwen2_cpu_int4_package, [1, 17, 33], 20)) == 23


def test_genai_config_is_a_decoder_pipeline_with_static_kv(stories_float_package):
    cfg = json.loads((stories_float_package / "genai_config.json").read_text())
    dec = cfg["model"]["decoder"]
    assert cfg["model"]["type"] == "decoder-pipeline"
    assert [next(iter(s)) for s in dec["pipeline"]] == ["embeddings", "context", "iterator", "lm_head"]
    assert dec["sliding_window"] == {"window_size": 64, "pad_value": 0, "alignment": "left",
                                     "slide_key_value_cache": False}
    assert dec["inputs"]["past_sequence_length"] == "past_seq_len"
    assert cfg["search"]["max_length"] == cfg["model"]["context_length"] == 512
    stages = {k: v for s in dec["pipeline"] for k, v in s.items()}
    assert stages["context"]["run_on_token_gen"] is False and stages["iterator"]["run_on_prompt"] is False
    assert stages["lm_head"]["is_lm_head"] is True
