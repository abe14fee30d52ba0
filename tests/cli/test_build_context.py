"""`toolkit build` says which context it built and warns, on stderr, past the checkpoint's trained positions."""

from __future__ import annotations

import json

from tests.helpers.cli import run_toolkit
from tests.helpers.fixtures import stories_checkpoint  # noqa: F401  (fixture)


def test_build_defaults_to_the_trained_context_and_warns_past_it(tmp_path, stories_checkpoint):  # noqa: F811
    default = run_toolkit("build", str(stories_checkpoint), "--target", "float", "--out", str(tmp_path / "a"))
    assert default.returncode == 0, default.stderr
    assert "context 512" in default.stdout and "warning" not in default.stderr
    longer = run_toolkit("build", str(stories_checkpoint), "--target", "float", "--out", str(tmp_path / "b"),
                         "--context-length", "1024", "--json")
    assert longer.returncode == 0, longer.stderr
    result = json.loads(longer.stdout)
    assert result["context_length"] == 1024 and len(result["warnings"]) == 1
    assert longer.stderr.startswith("warning: --context-length 1024 exceeds max_position_embeddings 512")
