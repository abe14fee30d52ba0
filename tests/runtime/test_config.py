"""genai_config.json parsing: both package types, onnxruntime-genai's spellings, errors naming file and field."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from catalog.errors import MissingFileError, PackageError
from toolkit.runtime.config import load_genai_config, parse_genai_config


def _write(folder: Path, data: dict) -> Path:
    (folder / "genai_config.json").write_text(json.dumps(data))
    return folder


def _base(float_package: Path) -> dict:
    return json.loads((float_package / "genai_config.json").read_text())


def test_builder_package_reads_as_four_stage_pipeline(float_package):
    cfg = load_genai_config(float_package)
    assert cfg.is_pipeline and [s.id for s in cfg.stages] == ["embeddings", "context", "iterator", "lm_head"]
    context, iterator, lm_head = cfg.stages[1], cfg.stages[2], cfg.stages[3]
    assert not context.run_on_token_gen and not iterator.run_on_prompt and lm_head.is_lm_head
    assert cfg.sliding_window.window_size == 64 and cfg.sliding_window.alignment == "left"
    assert cfg.names.past_key_names == "past_keys_%d" and cfg.names.past_sequence_length == "past_seq_len"


def test_object_style_pipeline_and_provider_spellings(float_package, tmp_path):
    data = _base(float_package)
    stages = data["model"]["decoder"]["pipeline"]
    data["model"]["decoder"]["pipeline"] = {k: v for entry in stages for k, v in entry.items()}
    data["model"]["decoder"]["session_options"]["provider_options"] = [{"qnn": {"backend_path": "QnnHtp.dll"}}]
    data["model"]["eos_token_id"] = [2, 7]
    for name in ("embeddings.onnx", "transformer.onnx", "lm_head.onnx"):
        (tmp_path / name).write_bytes((float_package / name).read_bytes())
    cfg = load_genai_config(_write(tmp_path, data))
    assert [s.id for s in cfg.stages] == ["embeddings", "context", "iterator", "lm_head"]
    assert cfg.session.providers[0].name == "QNN"
    assert cfg.eos_token_ids == (2, 7)


def test_single_decoder_package_is_one_stage(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"")
    data = {"model": {"type": "qwen2", "context_length": 128, "eos_token_id": 5,
                      "decoder": {"filename": "model.onnx", "num_hidden_layers": 2,
                                  "session_options": {"intra_op_num_threads": 2, "provider_options": []}}},
            "search": {"past_present_share_buffer": True}}
    cfg = load_genai_config(_write(tmp_path, data))
    assert not cfg.is_pipeline and cfg.stages[0].filename == "model.onnx" and cfg.stages[0].is_lm_head
    assert cfg.session.intra_op_num_threads == 2 and cfg.search.past_present_share_buffer


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d.pop("model"), r"model: is required"),
    (lambda d: d["model"].pop("context_length"), r"model\.context_length: is required"),
    (lambda d: d["model"].__setitem__("context_length", "big"), r"model\.context_length: expected int or float"),
    (lambda d: d["model"]["decoder"]["sliding_window"].__setitem__("window_size", 0),
     r"model\.decoder\.sliding_window\.window_size: must be positive"),
    (lambda d: d["model"]["decoder"]["sliding_window"].__setitem__("alignment", "middle"),
     r"model\.decoder\.sliding_window\.alignment: expected one of left, right"),
    (lambda d: d["model"]["decoder"]["pipeline"][1]["context"].__setitem__("filename", "missing.onnx"),
     r"model\.decoder\.pipeline\[1\]\.context\.filename: file 'missing.onnx' not found"),
    (lambda d: d["model"]["decoder"]["pipeline"][3]["lm_head"].__setitem__("is_lm_head", "yes"),
     r"pipeline\[3\]\.lm_head\.is_lm_head: expected bool"),
    (lambda d: d["model"]["decoder"].__setitem__("pipeline", []), r"model\.decoder\.pipeline"),
    (lambda d: d["model"]["decoder"]["session_options"].__setitem__("provider_options", ["qnn"]),
     r"provider_options\[0\]: expected an object"),
    (lambda d: d["model"].__setitem__("eos_token_id", [1, "x"]), r"model\.eos_token_id\[1\]"),
])
def test_broken_configs_name_the_file_and_field(float_package, edit, message):
    data = copy.deepcopy(_base(float_package))
    edit(data)
    path = float_package / "genai_config.json"
    with pytest.raises(PackageError, match=message) as info:
        parse_genai_config(data, path)
    assert str(path) in str(info.value)


def test_missing_and_invalid_json_files(tmp_path):
    with pytest.raises(MissingFileError, match="genai_config.json: not found"):
        load_genai_config(tmp_path)
    (tmp_path / "genai_config.json").write_text("{ not json")
    with pytest.raises(PackageError, match="not valid JSON"):
        load_genai_config(tmp_path)


def test_stage_input_nobody_produces_fails_at_load(float_package, tmp_path):
    from toolkit.runtime.pipeline import DecoderPipeline

    data = _base(float_package)
    del data["model"]["decoder"]["pipeline"][0]  # no embeddings stage: nothing makes input_hidden_states
    for name in ("transformer.onnx", "lm_head.onnx"):
        (tmp_path / name).write_bytes((float_package / name).read_bytes())
    cfg = load_genai_config(_write(tmp_path, data))
    with pytest.raises(PackageError, match=r"stage 'context' \(transformer.onnx\) needs input 'input_hidden_states'"):
        DecoderPipeline(cfg)
