"""The NPU path for real: the npu-qdq package on QNN's HTP backend (simulator on Linux x86-64) against the CPU EP."""

from __future__ import annotations

import pytest

from tests.helpers.checkpoints import QWEN2_TINY, write_checkpoint
from tests.helpers.fixtures import TEXT, tiny_qwen2_checkpoint, tiny_qwen2_npu_qdq_package  # noqa: F401
from toolkit.runtime.generate import GenerationConfig, generate_step
from toolkit.runtime.model import LocalModel
from toolkit.runtime.pipeline import RuntimeOptions

pytest.importorskip("onnxruntime_qnn")


def _greedy(model: LocalModel, prompt: list[int], n: int) -> list[int]:
    return [step.token for step in generate_step(model, prompt, GenerationConfig(max_new_tokens=n, ignore_eos=True))]


@pytest.fixture(scope="module")
def qnn_model(tiny_qwen2_npu_qdq_package, tmp_path_factory):  # noqa: F811
    cache = tmp_path_factory.mktemp("ep-cache")
    return LocalModel(tiny_qwen2_npu_qdq_package, RuntimeOptions(ep_cache_dir=cache)), cache


def test_npu_package_runs_context_and_iterator_on_qnn(qnn_model):
    model, _ = qnn_model
    stages = {s["id"]: s["provider"] for s in model.pipeline.report.stages}
    assert stages == {"embeddings": "CPUExecutionProvider", "context": "QNNExecutionProvider",
                      "iterator": "QNNExecutionProvider", "lm_head": "CPUExecutionProvider"}
    assert model.pipeline.prompt_window.size == 64 and model.pipeline.kv.layout == "static"


def test_qnn_greedy_tokens_equal_cpu_ep(qnn_model, tiny_qwen2_npu_qdq_package):  # noqa: F811
    model, _ = qnn_model
    cpu = LocalModel(tiny_qwen2_npu_qdq_package, RuntimeOptions(provider="cpu"))
    prompt = [int(t) for t in range(3, 73)]  # 70 tokens: one full window and a padded one
    assert _greedy(model, prompt, 10) == _greedy(cpu, prompt, 10)


@pytest.fixture(scope="module")
def default_context_package(tmp_path_factory):
    """An npu-qdq package built without --context-length from a checkpoint with 32768 positions: context 4096."""
    from toolkit.builder import BuildOptions, build_package

    ckpt = write_checkpoint(tmp_path_factory.mktemp("ckpt") / "qwen2-32k",
                            {**QWEN2_TINY, "max_position_embeddings": 32768}, seed=1, dtype="bfloat16", shards=2)
    out = tmp_path_factory.mktemp("packages") / "qwen2-npu-qdq-default"
    assert build_package(ckpt, out, BuildOptions(target="npu-qdq", calibration_text=TEXT))["context_length"] == 4096
    return out


def test_default_context_npu_package_runs_on_qnn_without_fallback(default_context_package):
    """At 4096 the context and iterator graphs used to fail QNN finalization and run on the CPU with only a note."""
    model = LocalModel(default_context_package)
    stages = {s["id"]: s["provider"] for s in model.pipeline.report.stages}
    assert stages["context"] == stages["iterator"] == "QNNExecutionProvider"
    assert model.pipeline.report.notes == [] and model.context_length == 4096
    cpu = LocalModel(default_context_package, RuntimeOptions(provider="cpu"))
    prompt = [int(t) for t in range(3, 73)]
    assert _greedy(model, prompt, 10) == _greedy(cpu, prompt, 10)


def test_compiled_graphs_are_cached_and_reused(qnn_model, tiny_qwen2_npu_qdq_package):  # noqa: F811
    _, cache = qnn_model
    assert len(list(cache.glob("*/*_ctx.onnx"))) == 2
    again = LocalModel(tiny_qwen2_npu_qdq_package, RuntimeOptions(ep_cache_dir=cache))
    cached = {s["id"]: s["from_cache"] for s in again.pipeline.report.stages}
    assert cached["context"] and cached["iterator"]


def test_damaged_cache_entry_is_compiled_again(qnn_model, tiny_qwen2_npu_qdq_package):  # noqa: F811
    _, cache = qnn_model
    for ctx in cache.glob("*/*_ctx.onnx"):
        ctx.write_bytes(b"not an onnx model")
    again = LocalModel(tiny_qwen2_npu_qdq_package, RuntimeOptions(ep_cache_dir=cache))
    stages = {s["id"]: (s["provider"], s["from_cache"]) for s in again.pipeline.report.stages}
    assert stages["context"] == ("QNNExecutionProvider", False)
    assert all(ctx.stat().st_size > 100 for ctx in cache.glob("*/*_ctx.onnx"))
    assert not list(cache.glob("*.tmp-*"))


def test_provider_that_fails_on_a_graph_falls_back_to_cpu_with_a_note(float_package, tmp_path):
    import json
    import shutil

    copy = tmp_path / "pkg"
    shutil.copytree(float_package, copy)
    config = json.loads((copy / "genai_config.json").read_text())
    # QNN cannot run GroupQueryAttention and may not hand it to the CPU: creating the session fails
    config["model"]["decoder"]["session_options"].update(
        {"provider_options": [{"qnn": {}}], "session.disable_cpu_ep_fallback": "1"})
    (copy / "genai_config.json").write_text(json.dumps(config))
    model = LocalModel(copy)
    stages = {s["id"]: s["provider"] for s in model.pipeline.report.stages}
    assert stages["context"] == stages["iterator"] == "CPUExecutionProvider"
    assert any("QNNExecutionProvider failed on transformer.onnx" in note for note in model.pipeline.report.notes)
    prompt = [5, 6, 7, 8]
    assert _greedy(model, prompt, 4) == _greedy(LocalModel(float_package), prompt, 4)


def test_the_preferred_provider_runs_the_stages_that_list_it_and_leaves_the_others(
        tiny_qwen2_npu_qdq_package, tmp_path):  # noqa: F811
    import json
    import shutil

    copy = tmp_path / "pkg"
    shutil.copytree(tiny_qwen2_npu_qdq_package, copy)
    config = json.loads((copy / "genai_config.json").read_text())
    for entry in config["model"]["decoder"]["pipeline"]:  # context and iterator now list the CPU before QNN
        for stage in entry.values():
            if stage.get("session_options", {}).get("provider_options"):
                stage["session_options"]["provider_options"].insert(0, {"cpu": {}})
    (copy / "genai_config.json").write_text(json.dumps(config))
    in_order = LocalModel(copy, RuntimeOptions(huge_pages=False))
    assert set(in_order.pipeline.providers) == {"CPUExecutionProvider"}
    preferred = LocalModel(copy, RuntimeOptions(preferred_provider="QNNExecutionProvider", huge_pages=False))
    stages = {s["id"]: s["provider"] for s in preferred.pipeline.report.stages}
    assert stages == {"embeddings": "CPUExecutionProvider", "context": "QNNExecutionProvider",
                      "iterator": "QNNExecutionProvider", "lm_head": "CPUExecutionProvider"}
    assert preferred.pipeline.report.notes == []
