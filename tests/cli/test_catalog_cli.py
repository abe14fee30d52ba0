"""`toolkit list`, `info` and `device` as a user runs them: a real process, its output and exit code."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import MACHINES
from tests.helpers.cli import run_toolkit


def toolkit(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return run_toolkit(*args, env=env)


def test_list_json_shows_three_models_each_with_every_npu_vendor_and_cpu_chosen_here():
    out = toolkit("list", "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [r["alias"] for r in rows] == ["deepseek_r1_1_5", "deepseek_r1_7b", "deepseek_r1_14b"]
    for r in rows:
        vendors = {(v["device"], v["vendor"]) for v in r["variants"]}
        assert {("npu", "qualcomm"), ("npu", "intel"), ("npu", "amd"), ("cpu", "any")} <= vendors
        chosen = [v for v in r["variants"] if v["chosen"]]
        assert len(chosen) == 1 and chosen[0]["id"] == r["best_variant"]
        if sys.platform == "linux":
            assert chosen[0]["device"] == "cpu"
        assert r["reason"].startswith(f"{r['alias']} -> {r['best_variant']}")


def test_list_table_for_people_names_every_model_and_the_flag_all_shows_every_variant():
    out = toolkit("list")
    assert out.returncode == 0, out.stderr
    for alias in ("deepseek_r1_1_5", "deepseek_r1_7b", "deepseek_r1_14b"):
        assert alias in out.stdout
    every = toolkit("list", "--all")
    assert "deepseek-r1-distill-qwen-14b-qnn-npu:1" in every.stdout
    assert "deepseek-r1-distill-qwen-7b-vitisai-npu:1" in every.stdout


def test_toolkit_device_env_and_flag_override_the_choice():
    rows = json.loads(toolkit("list", "--json", env={"TOOLKIT_DEVICE": "gpu"}).stdout)
    assert all(r["best_variant"].endswith("-cuda-gpu:1") for r in rows)
    rows = json.loads(toolkit("list", "--json", "--device", "cpu", env={"TOOLKIT_DEVICE": "gpu"}).stdout)
    assert all(r["best_variant"].endswith("-generic-cpu:1") for r in rows)


def test_info_unknown_alias_is_a_clear_error_with_close_names():
    out = toolkit("info", "deepseek-r1-15b")
    assert out.returncode == 4
    assert "unknown model 'deepseek-r1-15b'" in out.stderr
    assert "deepseek_r1_1_5" in out.stderr or "deepseek_r1_14b" in out.stderr
    assert "Traceback" not in out.stderr


def test_info_json_lists_sources_and_unconfirmed_fields():
    data = json.loads(toolkit("info", "deepseek-r1-7b", "--json").stdout)
    assert data["alias"] == "deepseek_r1_7b" and data["license"] == "MIT"
    qnn = next(v for v in data["variants"] if v["vendor"] == "qualcomm")
    assert qnn["source"] == {"type": "azureml", "registry": "azureml", "name": "deepseek-r1-distill-qwen-7b-qnn-npu", "version": "1"}
    assert "source.version" in qnn["unconfirmed"]


def test_device_replayed_on_a_recorded_snapdragon_explains_the_npu_choice():
    out = toolkit("device", "--json", "--replay", str(MACHINES / "snapdragon-x-elite-windows"))
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["npus"][0]["vendor"] == "qualcomm"
    assert [c["variant"] for c in data["selection"]] == [
        "deepseek-r1-distill-qwen-1.5b-qnn-npu:1",
        "deepseek-r1-distill-qwen-7b-qnn-npu:1",
        "deepseek-r1-distill-qwen-14b-qnn-npu:1",
    ]
    text = toolkit("device", "--replay", str(MACHINES / "snapdragon-x-elite-windows")).stdout
    assert "Hexagon" in text and "deepseek_r1_7b -> deepseek-r1-distill-qwen-7b-qnn-npu:1 (npu)" in text


def test_device_json_on_this_machine_is_cached_for_the_next_start(isolated_home):
    first = toolkit("device", "--json")
    assert first.returncode == 0, first.stderr
    assert (isolated_home / "device.json").is_file()
    assert json.loads(first.stdout)["selection"]


def test_an_invalid_user_manifest_stops_list_with_the_file_and_field(tmp_path):
    bad = tmp_path / "mine.json"
    bad.write_text(json.dumps({"schema_version": 1, "alias": "mine"}), encoding="utf-8")
    out = toolkit("list", "--json", env={"TOOLKIT_MANIFESTS": str(bad)})
    assert out.returncode == 3
    assert f"{bad}: display_name: is required" in out.stderr


def test_list_explains_dimmed_variants_only_where_dim_can_be_seen():
    piped = toolkit("list", "--all")
    assert piped.returncode == 0, piped.stderr
    assert "* chosen for this machine" in piped.stdout and "dim:" not in piped.stdout
    terminal = toolkit("list", "--all", env={"FORCE_COLOR": "1"})  # rich renders as for a terminal
    assert "dim: not usable here" in terminal.stdout  # the NPU variants of the built-in catalog are not usable here


def test_list_gives_variants_ranked_and_info_in_the_manifests_order(tmp_path) -> None:
    from catalog import Catalog
    from catalog.selection import select_variant
    from tests.helpers_net.variants import hf_variant_json, write_manifest
    from toolkit.device import current_profile

    gpu = {**hf_variant_json("org/a", "a-gpu:1"), "device": "gpu", "execution_provider": "CUDAExecutionProvider"}
    path, manifest = write_manifest(tmp_path / "m", "ranked", [hf_variant_json("org/a", "a-cpu:1"), gpu])
    env = {"TOOLKIT_MANIFESTS": str(path)}
    listed = json.loads(toolkit("list", "--json", env=env).stdout)
    row = next(r for r in listed if r["alias"] == "ranked")
    ranked = [c.variant.id for c in select_variant(Catalog([manifest]).get("ranked"), current_profile()).candidates]
    assert [v["id"] for v in row["variants"]] == ranked
    info = json.loads(toolkit("info", "ranked", "--json", env=env).stdout)
    assert [v["id"] for v in info["variants"]] == ["a-cpu:1", "a-gpu:1"]
