"""What `toolkit` imports to start: none of the heavy libraries on the help and catalog paths."""

from __future__ import annotations

import json

import pytest

from tests.helpers.cli import run_python

HEAVY = ("rich", "httpx", "onnxruntime", "numpy", "onnx", "tokenizers", "jinja2", "typer", "click", "pydantic")

CODE = """
import contextlib, io, json, sys
from toolkit.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main({args!r})
    except SystemExit as e:
        assert not e.code, e.code
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {heavy!r})))
"""


@pytest.mark.parametrize("args", [["--help"], ["list", "--json"], ["info", "deepseek_r1_7b", "--json"],
                                  ["run", "--help"], ["cache", "list", "--json"]], ids=" ".join)
def test_starting_imports_no_heavy_library(args):
    out = run_python(CODE.format(args=args, heavy=set(HEAVY)))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1]) == []
