"""Whole `toolkit download` processes: killed with SIGKILL at ~50 % and restarted, and two at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers.cli import run_python, toolkit_process
from tests.helpers_net.hub_server import HubServer, random_bytes
from tests.helpers_net.variants import hf_variant_json, write_manifest
from toolkit.download.state import load_state

SIZE = 8 * 1000 * 1000
DATA = random_bytes(SIZE, seed=7)
CONNECTIONS = 4
SEGMENT = 1024 * 1024


@pytest.fixture()
def env(tmp_path: Path, isolated_home: Path) -> dict[str, str]:
    manifest, _ = write_manifest(tmp_path / "manifests", "tiny", [hf_variant_json("org/tiny")])
    e = dict(os.environ)
    e.update(
        {
            "TOOLKIT_MANIFESTS": str(manifest),
            "TOOLKIT_DL_CONNECTIONS": str(CONNECTIONS),
            "TOOLKIT_DL_MIN_SEGMENT": str(SEGMENT),
            "TOOLKIT_DL_MAX_SEGMENT": str(SEGMENT),
            "TOOLKIT_DL_MIN_SPLIT": str(256 * 1024),
            "TOOLKIT_DL_SAVE_INTERVAL": "0.05",
            "TOOLKIT_DL_BACKOFF_BASE": "0.05",
        }
    )
    return e


def _sigint_default() -> None:
    # A test run started in the background of a non-interactive shell inherits SIGINT ignored, and Python then
    # leaves it ignored (as it should for a background job); the Ctrl-C test needs a process that hears it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def toolkit(env: dict[str, str], *args: str) -> subprocess.Popen:
    return toolkit_process(
        *args,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_sigint_default,
    )


def test_sigkill_at_half_then_restart_resumes(env: dict[str, str], isolated_home: Path) -> None:
    with HubServer(rate=1_500_000) as hub:
        hub.add("org/tiny", "model.onnx", DATA)
        env["HF_ENDPOINT"] = hub.url
        sha = hub.sha256("org/tiny", "model.onnx")
        part = isolated_home / "partial" / sha
        proc = toolkit(env, "download", "tiny", "--json")
        deadline = time.monotonic() + 30
        done = 0
        while time.monotonic() < deadline and proc.poll() is None:
            state = load_state(part / "state.json", part / "data", SIZE)
            done = state.done_bytes if state else 0
            if done >= SIZE // 2:
                break
            time.sleep(0.02)
        assert proc.poll() is None, proc.communicate()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        sent_before = hub.sent("model.onnx")
        saved = load_state(part / "state.json", part / "data", SIZE)
        assert saved is not None and saved.done_bytes >= SIZE // 2

        again = toolkit(env, "download", "tiny", "--json")
        out, err = again.communicate(timeout=60)
        assert again.returncode == 0, err
        result = json.loads(out)
        sent_total = hub.sent("model.onnx")
    snapshot = Path(result["path"])
    assert (snapshot / "model.onnx").read_bytes() == DATA
    assert result["resumed_bytes"] == saved.done_bytes
    assert result["fetched_bytes"] <= SIZE - saved.done_bytes + CONNECTIONS * SEGMENT
    refetched = sent_total - SIZE  # every byte the server sent twice, socket buffers included
    assert refetched <= CONNECTIONS * SEGMENT, (sent_before, sent_total)


def test_two_processes_on_one_variant_both_succeed_and_bytes_are_fetched_once(env: dict[str, str]) -> None:
    with HubServer(rate=4_000_000) as hub:
        hub.add("org/tiny", "model.onnx", DATA)
        hub.add("org/tiny", "tokenizer.json", DATA[:300_000])
        env["HF_ENDPOINT"] = hub.url
        procs = [toolkit(env, "download", "tiny", "--json") for _ in range(2)]
        results = [p.communicate(timeout=60) for p in procs]
        sent = hub.sent("model.onnx"), hub.sent("tokenizer.json")
    reports = []
    for p, (out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err
        reports.append(json.loads(out))
        assert (Path(reports[-1]["path"]) / "model.onnx").read_bytes() == DATA
    total = SIZE + 300_000
    fetched = sum(r.get("fetched_bytes", 0) for r in reports)  # each file is fetched by one of them only
    assert total <= fetched <= total + CONNECTIONS * 128 * 1024  # stolen parts may overshoot a little
    assert sum(r.get("fetched_files", 0) for r in reports) == 2
    assert SIZE <= sent[0] < SIZE + CONNECTIONS * 128 * 1024 and sent[1] == 300_000


def test_ctrl_c_stops_at_once_keeps_the_state_and_the_next_run_resumes(
    env: dict[str, str], isolated_home: Path
) -> None:
    with HubServer(rate=1_000_000) as hub:
        hub.add("org/tiny", "model.onnx", DATA)
        env["HF_ENDPOINT"] = hub.url
        part = isolated_home / "partial" / hub.sha256("org/tiny", "model.onnx")
        proc = toolkit(env, "download", "tiny", "--json")
        deadline = time.monotonic() + 30
        seen = None
        while time.monotonic() < deadline and proc.poll() is None:
            state = load_state(part / "state.json", part / "data", SIZE)
            seen = state.done_bytes if state else seen
            if state and state.done_bytes > SIZE // 5:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        _, err = proc.communicate(timeout=20)
        stopped_in = time.monotonic() - t0
        assert proc.returncode == 130 and "interrupted" in err, (proc.returncode, seen, err[-3000:])
        assert stopped_in < 3
        saved = load_state(part / "state.json", part / "data", SIZE)
        assert saved is not None and saved.done_bytes > SIZE // 5
        again = toolkit(env, "download", "tiny", "--json")
        out, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    result = json.loads(out)
    assert result["resumed_bytes"] == saved.done_bytes
    assert (Path(result["path"]) / "model.onnx").read_bytes() == DATA


def test_a_file_larger_than_the_filesystem_allows_is_a_disk_error_exit_7(env: dict[str, str]) -> None:
    # RLIMIT_FSIZE gives the same EFBIG a FAT32 disk gives for a file over 4 GB (Python ignores SIGXFSZ)
    with HubServer() as hub:
        hub.add("org/tiny", "model.onnx", DATA)
        env["HF_ENDPOINT"] = hub.url
        limit = "import resource, runpy, sys; resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20)); "
        code = (
            limit
            + "sys.argv = ['toolkit', 'download', 'tiny']; runpy.run_module('toolkit', run_name='__main__')"
        )
        out = run_python(code, env=env, timeout=60)
    assert out.returncode == 7, out.stderr
    assert "file too large" in out.stderr and "TOOLKIT_HOME" in out.stderr
