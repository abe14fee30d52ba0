"""toolkit.api, the library surface every front end uses: select, ensure, resolve, load, generate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from catalog.errors import DeviceError, DownloadDeclined, MissingFileError, NoVariantError, UnknownModelError
from tests.helpers.fixtures import tiny_qwen2_checkpoint, tiny_qwen2_npu_qdq_package  # noqa: F401
from tests.helpers_net.hub_server import HubServer, random_bytes
from tests.helpers_net.variants import hf_variant_json, write_manifest
from toolkit import api, errors

DATA = random_bytes(200_000, seed=21)


def test_select_picks_the_build_for_this_machine_and_says_why() -> None:
    choice = api.select("deepseek-r1:7b")  # another name of deepseek_r1_7b
    assert choice.manifest.alias == "deepseek_r1_7b" and choice.variant is not None
    assert choice.line.startswith("deepseek_r1_7b -> ") and choice.reason
    assert {v["id"] for v in choice.variants()} == {v.id for v in choice.manifest.variants}
    assert sum(v["chosen"] for v in choice.variants()) == 1


def test_toolkit_device_is_honoured_by_the_library_not_only_the_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLKIT_DEVICE", "cpu")
    assert api.select("deepseek_r1_1_5").variant.device == "cpu"
    monkeypatch.setenv("TOOLKIT_DEVICE", "npu")  # this machine has no NPU: nothing fits, and the reason says so
    choice = api.choose(api.catalog().get("deepseek_r1_1_5"))
    assert choice.variant is None and "no usable variant" in choice.reason and "npu" in choice.reason
    with pytest.raises(NoVariantError):
        api.select("deepseek_r1_1_5")
    assert api.select("deepseek_r1_1_5", device="cpu").variant.device == "cpu"  # the argument wins
    monkeypatch.setenv("TOOLKIT_DEVICE", "tpu")
    with pytest.raises(DeviceError):
        api.select("deepseek_r1_1_5")


def test_unknown_names_and_variants_are_errors_of_the_one_tree() -> None:
    with pytest.raises(UnknownModelError):
        api.select("no-such-model")
    with pytest.raises(UnknownModelError):
        api.select("deepseek_r1_1_5", variant="nope:1")
    assert errors.UnknownModelError is UnknownModelError and issubclass(errors.DownloadDeclined, errors.ToolkitError)


def test_select_all_has_a_choice_for_every_model_and_serializes() -> None:
    choices = api.select_all()
    assert {c.manifest.alias for c in choices} >= {"deepseek_r1_1_5", "deepseek_r1_7b", "deepseek_r1_14b"}
    rows = json.loads(json.dumps([c.to_dict() for c in choices]))
    assert all(row["best_variant"] for row in rows)


def test_ensure_downloads_once_and_resolve_finds_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest, _ = write_manifest(tmp_path / "manifests", "tiny", [hf_variant_json("org/tiny")])
    monkeypatch.setenv("TOOLKIT_MANIFESTS", str(manifest))
    with HubServer() as hub:
        hub.add("org/tiny", "model.onnx", DATA)
        hub.add("org/tiny", "genai_config.json", b'{"model": {}}', lfs=False)
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        choice = api.select("tiny")
        assert not choice.downloaded
        with pytest.raises(DownloadDeclined, match="toolkit download tiny"):
            api.resolve("tiny")  # no confirm: a script without --yes
        first = api.ensure(choice)
        assert first.report is not None and first.report.fetched_files == 2
        assert json.loads(json.dumps(first.to_dict()))["digests"]["origin"] == 2
        again = api.ensure(api.select("tiny"))
        assert again.report is None and again.path == first.path
    target = api.resolve("tiny")
    assert target.folder == first.path and target.variant_id == "tiny-cpu:1"


def test_resolve_of_a_missing_folder_names_it(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match="nothing-here"):
        api.resolve(str(tmp_path / "nothing-here"))


def test_load_and_generate_a_package_by_path(stories_package: Path) -> None:
    model = api.load(str(stories_package))
    result = api.generate(model, [1], _config(8))
    assert result.stats.generated_tokens == 8 and result.text.startswith("Once upon a time")
    events = list(api.stream(model, [1], _config(4)))
    assert events[-1].kind == "done"


def _config(n: int):
    from toolkit.runtime.generate import GenerationConfig

    return GenerationConfig(max_new_tokens=n, ignore_eos=True)


def test_the_execution_provider_chosen_at_selection_reaches_the_runtime(tiny_qwen2_npu_qdq_package) -> None:  # noqa: F811
    pytest.importorskip("onnxruntime_qnn")
    added = api.add_package(tiny_qwen2_npu_qdq_package, "tiny-qwen-npu:1")
    choice = api.select(added.alias, variant="tiny-qwen-npu:1")  # no Qualcomm NPU here: chosen by hand
    assert choice.variant.execution_provider == "QNNExecutionProvider"
    model = api.load(choice)
    assert model.pipeline.options.preferred_provider == "QNNExecutionProvider"
    stages = {s["id"]: s["provider"] for s in model.pipeline.report.stages}
    assert stages["context"] == stages["iterator"] == "QNNExecutionProvider"
