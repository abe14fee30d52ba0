"""Run `toolkit` the way a user does: the installed console script, as a process, from a folder outside the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.conftest import PROJECT_ROOT, USE_CHECKOUT

# A working directory with nothing importable in it: `python -c` puts its working directory first on sys.path.
NEUTRAL_CWD = Path(tempfile.mkdtemp(prefix="toolkit-tests-cwd-"))


def toolkit_command() -> list[str]:
    """The installed `toolkit` console script next to this interpreter (or `python -m toolkit` on the checkout)."""
    if USE_CHECKOUT:
        return [sys.executable, "-m", "toolkit"]
    script = Path(sys.executable).with_name("toolkit.exe" if os.name == "nt" else "toolkit")
    if not script.exists():
        raise RuntimeError(f"{script} not found: install the package (pip install '.[test]') before the tests")
    return [str(script)]


def process_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment plus `env`, with no PYTHONPATH that could make the checkout importable."""
    full = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if USE_CHECKOUT:
        full["PYTHONPATH"] = str(PROJECT_ROOT)
    full.update(env or {})
    return full


def toolkit_process(*args: str, env: dict[str, str] | None = None, **popen: object) -> subprocess.Popen:
    """`toolkit ARGS` started in the background (stdin closed unless given); Popen keywords pass through."""
    popen.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.Popen([*toolkit_command(), *args], cwd=NEUTRAL_CWD, env=process_env(env), **popen)


def run_toolkit(*args: str, env: dict[str, str] | None = None, timeout: float = 120,
                input: str | None = None) -> subprocess.CompletedProcess:
    """`toolkit ARGS` to completion, stdout and stderr captured; stdin is `input` or empty (not a terminal)."""
    stdin = None if input is not None else subprocess.DEVNULL
    return subprocess.run([*toolkit_command(), *args], cwd=NEUTRAL_CWD, env=process_env(env), input=input,
                          stdin=stdin, capture_output=True, text=True, timeout=timeout)


def run_python(code: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -c CODE` with the installed package, from a folder where the checkout is not importable."""
    return subprocess.run([sys.executable, "-c", code], cwd=NEUTRAL_CWD, env=process_env(env),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)


def one_error_line(out: subprocess.CompletedProcess, code: int, *words: str) -> str:
    """Assert what a user must see for bad input: exit `code`, one `error:` line holding `words`, no traceback."""
    assert out.returncode == code, (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, out.stderr
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]
