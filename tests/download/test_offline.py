"""A machine that cannot reach the source: one line that names the URL and says how to use a mirror, exit 5."""

from __future__ import annotations

import json
import socket

import pytest

from tests.helpers.cli import run_toolkit


@pytest.fixture()
def unreachable_hub() -> str:
    """An endpoint on 127.0.0.1 where nothing listens (connection refused, as an offline proxy-less host gets)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("command", [("download", "deepseek_r1_1_5"),
                                     ("run", "deepseek_r1_1_5", "--yes", "--prompt", "hi")])
def test_unreachable_source_is_a_network_error_with_the_mirror_hint(unreachable_hub: str, command) -> None:
    out = run_toolkit(*command, "--device", "cpu",
                      env={"HF_ENDPOINT": unreachable_hub, "TOOLKIT_DL_RETRIES": "1", "TOOLKIT_DL_BACKOFF_BASE": "0.01"})
    assert out.returncode == 5, out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in out.stderr
    assert unreachable_hub in errors[0] and "looks offline" in errors[0] and "TOOLKIT_MIRROR" in errors[0]


def test_dry_run_offline_explains_the_choice_from_the_manifest_alone(unreachable_hub: str) -> None:
    env = {"HF_ENDPOINT": unreachable_hub}
    out = run_toolkit("download", "deepseek_r1_7b", "--device", "cpu", "--dry-run", "--json", env=env, timeout=30)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["variant"] == "deepseek-r1-distill-qwen-7b-generic-cpu:1" and "CPU" in data["reason"]
    assert data["source"]["type"] == "huggingface" and data["size_bytes"] > 0
    assert "looks offline" in data["source_error"]
    human = run_toolkit("download", "deepseek_r1_7b", "--device", "cpu", "--dry-run", env=env, timeout=30)
    assert human.returncode == 0 and "deepseek-r1-distill-qwen-7b-generic-cpu:1" in human.stdout
    assert "note: the file list could not be fetched" in human.stderr and "looks offline" in human.stderr
