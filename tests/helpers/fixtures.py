"""Session-scoped pytest fixtures: tiny checkpoints and built packages, shared by build and runtime tests.

Use them from a test folder's conftest.py with `from tests.helpers.fixtures import *  # noqa: F401,F403`.
Every package fixture builds once per test session into a temporary folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.checkpoints import FIXTURES, LLAMA_TINY, QWEN2_TINY, STORIES, write_checkpoint

TEXT = FIXTURES / "text" / "tinystories_sample.txt"


def _build(tmp_path_factory, checkpoint: Path, name: str, **options) -> Path:
    from toolkit.builder import BuildOptions, build_package

    out = tmp_path_factory.mktemp("packages") / name
    build_package(checkpoint, out, BuildOptions(**options))
    return out


@pytest.fixture(scope="session")
def stories_checkpoint() -> Path:
    """The real trained stories260K in HF layout (../shared/fixtures/stories260k-hf)."""
    if not STORIES.is_dir():
        pytest.skip(f"{STORIES} not found")
    return STORIES


@pytest.fixture(scope="session")
def tinystories_text() -> Path:
    """Five TinyStories separated by <|endoftext|>."""
    return TEXT


@pytest.fixture(scope="session")
def tiny_qwen2_checkpoint(tmp_path_factory) -> Path:
    """Random qwen2 (q/k/v biases, 6 heads / 2 KV heads, head_dim 16), bf16, 2 shards, stories tokenizer."""
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "qwen2", QWEN2_TINY, seed=1, dtype="bfloat16",
                            shards=2)


@pytest.fixture(scope="session")
def tiny_llama_checkpoint(tmp_path_factory) -> Path:
    """Random llama (tied embeddings, 4 heads), fp16, one file, stories tokenizer."""
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "llama", LLAMA_TINY, seed=2, dtype="float16")


@pytest.fixture(scope="session")
def stories_float_package(tmp_path_factory, stories_checkpoint) -> Path:
    """stories260K as an fp32 decoder-pipeline package (context 512, window 64)."""
    return _build(tmp_path_factory, stories_checkpoint, "stories-float", target="float", context_length=512)


@pytest.fixture(scope="session")
def stories_cpu_int4_package(tmp_path_factory, stories_checkpoint) -> Path:
    """stories260K as a cpu-int4 package (context 512, window 64)."""
    return _build(tmp_path_factory, stories_checkpoint, "stories-cpu-int4", target="cpu-int4", context_length=512)


@pytest.fixture(scope="session")
def tiny_qwen2_float_package(tmp_path_factory, tiny_qwen2_checkpoint) -> Path:
    """The tiny qwen2 as an fp32 package (context 256)."""
    return _build(tmp_path_factory, tiny_qwen2_checkpoint, "qwen2-float", target="float", context_length=256)


@pytest.fixture(scope="session")
def tiny_qwen2_cpu_int4_package(tmp_path_factory, tiny_qwen2_checkpoint) -> Path:
    """The tiny qwen2 as a cpu-int4 package (context 256)."""
    return _build(tmp_path_factory, tiny_qwen2_checkpoint, "qwen2-cpu-int4", target="cpu-int4", context_length=256)


@pytest.fixture(scope="session")
def tiny_qwen2_npu_qdq_package(tmp_path_factory, tiny_qwen2_checkpoint) -> Path:
    """The tiny qwen2 as an npu-qdq package (QuaRot with the online down_proj Hadamard, GPTQ, context 256)."""
    return _build(tmp_path_factory, tiny_qwen2_checkpoint, "qwen2-npu-qdq", target="npu-qdq", context_length=256,
                  calibration_text=TEXT, weight_method="gptq")


@pytest.fixture(scope="session")
def stories_npu_qdq_package(tmp_path_factory, stories_checkpoint) -> Path:
    """stories260K as an npu-qdq package (QuaRot + GPTQ, context 512), calibrated on tinystories_sample.txt."""
    return _build(tmp_path_factory, stories_checkpoint, "stories-npu-qdq", target="npu-qdq", context_length=512,
                  calibration_text=TEXT, weight_method="gptq")


def qnn_session_options(disable_cpu_fallback: bool = True):
    """SessionOptions on QNN's HTP backend (the onnxruntime-qnn plugin; a simulator on Linux x86-64), or skip."""
    ort = pytest.importorskip("onnxruntime")
    qnn = pytest.importorskip("onnxruntime_qnn")
    try:
        ort.register_execution_provider_library("QNNExecutionProvider", qnn.get_library_path())
    except Exception as e:  # already registered in this process raises; anything else means no QNN
        if "already" not in str(e).lower():
            pytest.skip(f"QNN execution provider unavailable: {e}")
    devices = [d for d in ort.get_ep_devices() if d.ep_name == "QNNExecutionProvider"]
    if not devices:
        pytest.skip("QNN execution provider lists no device")
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if disable_cpu_fallback:
        so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    so.add_provider_for_devices(devices, {"backend_path": qnn.get_qnn_htp_path()})
    return so
