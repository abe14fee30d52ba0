"""The context length a build uses: min(4096, max_position_embeddings) by default, a warning above it."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from toolkit.builder import BuildOptions, build_package
from toolkit.builder.options import DEFAULT_CONTEXT, resolve_context_length


def _ckpt(max_positions: int):
    return SimpleNamespace(config=SimpleNamespace(max_position_embeddings=max_positions), folder=Path("ckpt"))


@pytest.mark.parametrize(("max_positions", "window", "expected"), [
    (131072, 64, 4096),  # DeepSeek-R1-Distill-Qwen-1.5B: the default, not the checkpoint's 128k
    (512, 64, 512),  # stories260K
    (1000, 64, 960),  # capped, then down to a multiple of the window
    (32, 64, 64),  # never below one window
])
def test_default_context_is_capped_by_max_position_embeddings(max_positions, window, expected):
    ctx, _ = resolve_context_length(_ckpt(max_positions), BuildOptions(window=window))
    assert ctx == expected
    assert DEFAULT_CONTEXT == 4096


def test_an_explicit_context_is_kept_and_one_above_max_position_embeddings_warns():
    assert resolve_context_length(_ckpt(512), BuildOptions(context_length=256)) == (256, [])
    ctx, warnings = resolve_context_length(_ckpt(512), BuildOptions(context_length=4096))
    assert ctx == 4096 and len(warnings) == 1
    assert "4096" in warnings[0] and "max_position_embeddings 512" in warnings[0] and "\n" not in warnings[0]


def test_stories260k_builds_at_its_512_positions_by_default(tmp_path, stories_checkpoint):
    manifest = build_package(stories_checkpoint, tmp_path / "p", BuildOptions(target="float"))
    assert manifest["context_length"] == 512 and "warnings" not in manifest
    config = json.loads((tmp_path / "p" / "genai_config.json").read_text())
    assert config["model"]["context_length"] == config["search"]["max_length"] == 512


def test_building_past_max_position_embeddings_warns_in_the_manifest(tmp_path, stories_checkpoint):
    manifest = build_package(stories_checkpoint, tmp_path / "p", BuildOptions(target="float", context_length=1024))
    assert manifest["context_length"] == 1024
    assert manifest["warnings"] == [
        f"--context-length 1024 exceeds max_position_embeddings 512 of {stories_checkpoint / 'config.json'}: "
        "positions past 512 were never trained"]
    on_disk = json.loads((tmp_path / "p" / "toolkit_manifest.json").read_text())
    assert on_disk["warnings"] == manifest["warnings"]
