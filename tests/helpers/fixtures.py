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
    from toolkit.build.builder import BuildOptions, build_package

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
