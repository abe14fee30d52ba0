"""`toolkit build` and `toolkit eval` as a user runs them: a real process, JSON on stdout, exit codes."""

from __future__ import annotations

import json
import subprocess

from tests.helpers.cli import run_toolkit


def toolkit(*args: str) -> subprocess.CompletedProcess:
    return run_toolkit(*args, timeout=300)


def test_build_then_eval_with_json(tmp_path, stories_checkpoint, stories_float_package, tinystories_text):
    out = tmp_path / "pkg"
    built = toolkit("build", str(stories_checkpoint), "--target", "cpu-int4", "--out", str(out),
                    "--context-length", "512", "--json")
    assert built.returncode == 0, built.stderr
    info = json.loads(built.stdout)
    assert info["target"] == "cpu-int4" and (out / "genai_config.json").is_file()
    assert {f["path"] for f in info["files"]} >= {"embeddings.onnx", "transformer.onnx", "lm_head.onnx"}
    ev = toolkit("eval", str(out), "--text", str(tinystories_text), "--reference", str(stories_float_package))
    assert ev.returncode == 0, ev.stderr
    result = json.loads(ev.stdout)  # JSON because stdout is not a TTY
    assert result["tokens"] == 1804
    assert 1.0 < result["perplexity_ratio"] < 1.15 and 0.8 < result["top1_agreement"] < 1.0
    assert abs(result["reference_perplexity"] - 3.548) < 0.002  # README of stories260k-hf: 3.548


def test_build_errors_name_the_problem_and_exit_with_build_error_code(tmp_path):
    missing = tmp_path / "nope"
    r = toolkit("build", str(missing), "--out", str(tmp_path / "o"))
    assert r.returncode == 4  # a path that is not there is "not found" in the README's table
    assert str(missing) in r.stderr and "does not exist" in r.stderr
    r = toolkit("eval", str(tmp_path), "--text", str(tmp_path / "none.txt"))
    assert r.returncode == 4 and "none.txt" in r.stderr
