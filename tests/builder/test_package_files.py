"""The package on disk: manifest fragment, tokenizer files, safe output handling, clear errors."""

from __future__ import annotations

import hashlib
import json

import pytest

from catalog.errors import BuildError
from toolkit.builder import BuildOptions, build_package


def test_manifest_lists_every_file_with_size_and_sha256(stories_float_package):
    manifest = json.loads((stories_float_package / "toolkit_manifest.json").read_text())
    listed = {f["path"]: f for f in manifest["files"]}
    on_disk = {p.name for p in stories_float_package.iterdir() if p.name != "toolkit_manifest.json"}
    assert set(listed) == on_disk
    for name, entry in listed.items():
        data = (stories_float_package / name).read_bytes()
        assert entry["size"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert {"tokenizer.json", "tokenizer_config.json", "genai_config.json"} <= on_disk
    assert manifest["target"] == "float"


def test_existing_output_is_not_overwritten_without_asking(tmp_path, tiny_llama_checkpoint):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(BuildError, match="not empty"):
        build_package(tiny_llama_checkpoint, out, BuildOptions(target="float", context_length=128))
    assert (out / "keep.txt").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no partial folder left behind


def test_unsupported_architecture_names_the_field(tmp_path, tiny_llama_checkpoint):
    import shutil

    ck = tmp_path / "ck"
    shutil.copytree(tiny_llama_checkpoint, ck)
    cfg = json.loads((ck / "config.json").read_text())
    cfg["model_type"] = "gpt2"
    (ck / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(BuildError, match=r"config.json: model_type: 'gpt2'"):
        build_package(ck, tmp_path / "out", BuildOptions(target="float"))


def test_truncated_safetensors_names_the_file(tmp_path, tiny_llama_checkpoint):
    import shutil

    ck = tmp_path / "ck"
    shutil.copytree(tiny_llama_checkpoint, ck)
    (ck / "model.safetensors").write_bytes(b"\x05")
    with pytest.raises(BuildError, match="model.safetensors"):
        build_package(ck, tmp_path / "out", BuildOptions(target="float"))


def test_bad_target_and_window_are_rejected(tmp_path, tiny_llama_checkpoint):
    with pytest.raises(BuildError, match="--target"):
        build_package(tiny_llama_checkpoint, tmp_path / "a", BuildOptions(target="gpu"))
    with pytest.raises(BuildError, match="multiple of --window"):
        build_package(tiny_llama_checkpoint, tmp_path / "b", BuildOptions(target="float", context_length=100))
