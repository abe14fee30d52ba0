"""`toolkit download` as a user runs it: dry run, JSON, plain progress lines, exit codes; local folders."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers.cli import run_toolkit
from tests.helpers_net.hub_server import Faults, HubServer, random_bytes
from tests.helpers_net.variants import hf_variant_json, write_manifest

DATA = random_bytes(1_500_000, seed=31)


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return run_toolkit(*args, env={"TOOLKIT_DL_BACKOFF_BASE": "0.01", "TOOLKIT_DL_RETRIES": "2", **(env or {})},
                       timeout=60)


@pytest.fixture()
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with HubServer() as s:
        s.add("org/tiny", "model.onnx", DATA)
        s.add("org/bad", "model.onnx", DATA, faults=Faults(corrupt_at=5, corrupt_times=100))
        manifest, _ = write_manifest(
            tmp_path / "m", "tiny", [hf_variant_json("org/tiny"), hf_variant_json("org/bad", "tiny-bad:1")]
        )
        monkeypatch.setenv("TOOLKIT_MANIFESTS", str(manifest))
        monkeypatch.setenv("HF_ENDPOINT", s.url)
        yield s


def test_dry_run_explains_the_choice_and_fetches_nothing(hub: HubServer) -> None:
    out = cli("download", "tiny", "--dry-run", "--json")
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert plan["variant"] == "tiny-cpu:1" and plan["reason"]
    assert plan["bytes_to_fetch"] == len(DATA) and plan["files"][0]["in_store"] is False
    assert hub.sent("model.onnx") == 0
    text = cli("download", "tiny", "--dry-run")
    assert "tiny -> tiny-cpu:1" in text.stdout and "would fetch" in text.stdout


def test_download_prints_plain_progress_when_not_a_terminal_and_json_result(hub: HubServer) -> None:
    out = cli("download", "tiny")
    assert out.returncode == 0, out.stderr
    assert "downloading tiny-cpu:1" in out.stderr and "model.onnx: verified" in out.stderr
    again = cli("download", "tiny", "--json")
    result = json.loads(again.stdout)
    assert result["already_complete"] is True
    assert (Path(result["path"]) / "model.onnx").read_bytes() == DATA


def test_exit_codes_tell_unknown_model_from_integrity_failure(hub: HubServer) -> None:
    unknown = cli("download", "no-such-model")
    assert unknown.returncode == 4 and "no-such-model" in unknown.stderr
    bad = cli("download", "tiny", "--variant", "tiny-bad:1")
    assert bad.returncode == 6 and "sha256" in bad.stderr and "/org/bad/resolve/" in bad.stderr
    down = cli("download", "tiny", env={"HF_ENDPOINT": "http://127.0.0.1:9"})
    assert down.returncode == 5 and "127.0.0.1:9" in down.stderr


def test_local_folder_source_is_copied_and_verified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "pkg"
    (folder / "sub").mkdir(parents=True)
    (folder / "model.onnx").write_bytes(DATA)
    (folder / "sub" / "genai_config.json").write_text("{}")
    variant = {
        "id": "local-cpu:1",
        "device": "cpu",
        "vendor": "any",
        "execution_provider": "CPUExecutionProvider",
        "format": "onnx-genai",
        "quantization": "int4",
        "source": {"type": "local", "path": str(folder)},
    }
    manifest, _ = write_manifest(tmp_path / "m", "localmodel", [variant])
    out = cli("download", "localmodel", "--json", env={"TOOLKIT_MANIFESTS": str(manifest)})
    assert out.returncode == 0, out.stderr
    snap = Path(json.loads(out.stdout)["path"])
    assert (snap / "model.onnx").read_bytes() == DATA and (
        snap / "sub" / "genai_config.json"
    ).read_text() == "{}"
    os.symlink("/etc/hostname", folder / "leak.txt")
    refused = cli("download", "localmodel", "--force", env={"TOOLKIT_MANIFESTS": str(manifest)})
    assert refused.returncode == 5 and "leaves" in refused.stderr
