"""What native libraries print while sessions load stays off stdout, so `--json` output is JSON."""

from __future__ import annotations

import json

import pytest

from tests.helpers.cli import run_python, run_toolkit
from tests.helpers.fixtures import tiny_qwen2_checkpoint, tiny_qwen2_npu_qdq_package  # noqa: F401


def test_c_stdio_and_descriptor_writes_inside_the_block_go_to_stderr() -> None:
    code = (
        "import ctypes, os, sys\n"
        "from toolkit.runtime.native_output import native_stdout_to_stderr\n"
        "libc = ctypes.CDLL(None)\n"
        "print('before', flush=True)\n"
        "with native_stdout_to_stderr():\n"
        "    libc.printf(b'buffered by C stdio\\n')\n"  # stdout is a pipe: fully buffered until flushed
        "    os.write(1, b'raw descriptor\\n')\n"
        "    print('python inside')\n"
        "print('after')\n"
    )
    out = run_python(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["before", "after"]
    for text in ("buffered by C stdio", "raw descriptor", "python inside"):
        assert text in out.stderr


def test_run_json_on_the_qnn_htp_backend_writes_only_json(tiny_qwen2_npu_qdq_package, tmp_path) -> None:  # noqa: F811
    pytest.importorskip("onnxruntime_qnn")
    out = run_toolkit("run", str(tiny_qwen2_npu_qdq_package), "--prompt", "Once upon a time", "-n", "4", "-t", "0",
                      "--json", env={"TOOLKIT_HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)  # fails if the backend's LIBNATIVE line (or anything else) reached stdout
    assert data["stats"]["generated_tokens"] == 4
    assert "QNNExecutionProvider" in data["model"]["providers"]
