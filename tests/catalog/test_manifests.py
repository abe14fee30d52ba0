"""The manifest format: built-in manifests are valid; invalid ones are rejected naming file, field, reason."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from catalog import Catalog, ManifestError, UnknownModelError, load_manifest_file, parse_manifest
from catalog.loader import builtin_manifest_dir
from catalog.schema import manifest_json_schema

BUILTIN = sorted(builtin_manifest_dir().glob("*.json"))


def _valid() -> dict:
    return json.loads((builtin_manifest_dir() / "deepseek_r1_1_5.json").read_text(encoding="utf-8"))


def test_the_three_deepseek_models_ship_with_npu_variants_of_every_vendor_and_a_cpu_variant():
    catalog = Catalog.load()
    assert [m.alias for m in catalog] == ["deepseek_r1_1_5", "deepseek_r1_7b", "deepseek_r1_14b"]
    for m in catalog:
        assert m.license == "MIT"
        assert m.chat.reasoning_start == "<think>" and m.chat.reasoning_end == "</think>"
        kinds = {(v.device, v.vendor, v.execution_provider) for v in m.variants}
        assert ("npu", "qualcomm", "QNNExecutionProvider") in kinds
        assert ("npu", "intel", "OpenVINOExecutionProvider") in kinds
        assert ("npu", "amd", "VitisAIExecutionProvider") in kinds
        assert ("cpu", "any", "CPUExecutionProvider") in kinds
        qnn = next(v for v in m.variants if v.execution_provider == "QNNExecutionProvider")
        assert qnn.source.type == "azureml" and qnn.source.registry == "azureml"
        assert qnn.source.name.endswith("-qnn-npu")


@pytest.mark.parametrize("path", BUILTIN, ids=lambda p: p.name)
def test_builtin_manifest_is_valid_against_the_json_schema_too(path: Path):
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(json.loads(path.read_text(encoding="utf-8")), manifest_json_schema())


def test_users_reach_a_model_by_any_of_its_names():
    catalog = Catalog.load()
    for name in ("deepseek_r1_1_5", "deepseek-r1-1.5b", "DeepSeek-R1-Distill-Qwen-1.5B", "deepseek-r1-distill-qwen-1.5b"):
        assert catalog.get(name).alias == "deepseek_r1_1_5"
    assert catalog.get("deepseek-r1-distill-qwen-7b-qnn-npu:1").alias == "deepseek_r1_7b"


def test_unknown_alias_suggests_the_closest_names():
    with pytest.raises(UnknownModelError) as e:
        Catalog.load().get("deepsek-r1-7")
    assert "deepseek_r1_7b" in e.value.suggestions
    assert "deepsek-r1-7" in str(e.value)


BAD_CASES = [
    ("missing alias", lambda d: d.pop("alias"), "alias", "is required"),
    ("alias with capitals", lambda d: d.__setitem__("alias", "DeepSeek"), "alias", "does not match"),
    ("bad device", lambda d: d["variants"][1].__setitem__("device", "tpu"), "variants[1].device", "'tpu' is not one of"),
    ("bad provider", lambda d: d["variants"][0].__setitem__("execution_provider", "QNN"), "variants[0].execution_provider", "not one of"),
    ("hf repo without owner", lambda d: d["variants"][4]["source"].__setitem__("repo", "model"), "variants[4].source.repo", "owner/name"),
    ("subfolder escaping", lambda d: d["variants"][4]["source"].__setitem__("subfolder", "../x"), "variants[4].source.subfolder", "relative path"),
    ("azureml without version", lambda d: d["variants"][0]["source"].pop("version"), "variants[0].source.version", "is required"),
    ("negative size", lambda d: d["variants"][0].__setitem__("size_bytes", -1), "variants[0].size_bytes", "must be positive"),
    ("string context length", lambda d: d.__setitem__("context_length", "128k"), "context_length", "expected int"),
    ("bool parameters", lambda d: d.__setitem__("parameter_count", True), "parameter_count", "expected int"),
    ("typo in a field", lambda d: d["variants"][2].__setitem__("quantisation", "x"), "variants[2].quantisation", "unknown field"),
    ("duplicate variant", lambda d: d["variants"].append(copy.deepcopy(d["variants"][0])), "variants[5].id", "duplicate"),
    ("no variants", lambda d: d.__setitem__("variants", []), "variants", "at least one"),
    ("bad sha256", lambda d: d["variants"][4].__setitem__("files", [{"path": "a.onnx", "sha256": "XYZ"}]), "variants[4].files[0].sha256", "does not match"),
    ("absolute file path", lambda d: d["variants"][4].__setitem__("files", [{"path": "/etc/passwd"}]), "variants[4].files[0].path", "relative"),
    ("dot-dot file path", lambda d: d["variants"][4].__setitem__("files", [{"path": "a/../../b"}]), "variants[4].files[0].path", "relative"),
    ("drive letter", lambda d: d["variants"][4].__setitem__("files", [{"path": "C:x.onnx"}]), "variants[4].files[0].path", "relative"),
    ("future schema", lambda d: d.__setitem__("schema_version", 2), "schema_version", "unsupported version 2"),
]


@pytest.mark.parametrize(("case", "mutate", "field", "reason"), BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_invalid_manifest_is_rejected_with_file_field_and_reason(case, mutate, field, reason):
    data = _valid()
    mutate(data)
    with pytest.raises(ManifestError) as e:
        parse_manifest(data, "my.json")
    assert e.value.file == "my.json"
    assert e.value.field == field
    assert reason in e.value.reason
    assert str(e.value).startswith(f"my.json: {field}: ")


def test_a_file_that_is_not_json_names_the_file(tmp_path: Path):
    bad = tmp_path / "broken.json"
    bad.write_text("{ not json", encoding="utf-8")
    with pytest.raises(ManifestError, match="broken.json: not valid JSON"):
        load_manifest_file(bad)


def _user_manifest(alias: str = "tiny_llama") -> dict:
    d = _valid()
    d["alias"] = alias
    d["names"] = ["tiny-llama"]
    d["display_name"] = "Tiny Llama"
    d["variants"] = [d["variants"][4]]
    d["variants"][0]["id"] = "tiny-llama-cpu:3"
    return d


def test_user_manifests_from_the_config_folder_and_env_join_the_catalog(tmp_path: Path, monkeypatch, isolated_home):
    import os

    config = Path(os.environ["TOOLKIT_CONFIG_DIR"]) / "manifests"
    config.mkdir(parents=True)
    (config / "tiny.json").write_text(json.dumps(_user_manifest()), encoding="utf-8")
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "other.json").write_text(json.dumps(_user_manifest("other_model")), encoding="utf-8")
    monkeypatch.setenv("TOOLKIT_MANIFESTS", str(extra))
    catalog = Catalog.load()
    assert {"tiny_llama", "other_model", "deepseek_r1_1_5"} <= {m.alias for m in catalog}
    assert catalog.get("tiny-llama").variants[0].version == 3


def test_an_invalid_user_manifest_is_rejected_the_same_way(tmp_path: Path, monkeypatch):
    d = _user_manifest()
    d["variants"][0]["device"] = "fpga"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(d), encoding="utf-8")
    monkeypatch.setenv("TOOLKIT_MANIFESTS", str(bad))
    with pytest.raises(ManifestError) as e:
        Catalog.load()
    assert e.value.file == str(bad) and e.value.field == "variants[0].device"
