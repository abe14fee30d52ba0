"""Standard streams as scripts leave them: a pipe whose reader left, a closed stdout or stderr, and the one
line an OSError becomes; and `mirror serve` on an address it cannot listen on."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tests.helpers.cli import NEUTRAL_CWD, process_env, run_toolkit, toolkit_command

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="closing descriptors and SIGPIPE are POSIX")
SIGPIPE_EXIT = 141  # 128 + SIGPIPE, what a shell reports for a process ended by a broken pipe


def run_with_closed(fd: int, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`toolkit ARGS` started with descriptor `fd` (1 or 2) closed, as `>&-` or `2>&-` leave it."""
    keep = {1: subprocess.DEVNULL, 2: subprocess.PIPE}
    if fd == 2:
        keep = {1: subprocess.PIPE, 2: subprocess.DEVNULL}
    return subprocess.run([*toolkit_command(), *args], cwd=NEUTRAL_CWD, env=process_env(), stdin=subprocess.DEVNULL,
                          stdout=keep[1], stderr=keep[2], preexec_fn=lambda: os.close(fd), timeout=timeout,
                          text=True)


@posix_only
@pytest.mark.parametrize("args", [("device", "--json"), ("list",), ("--help",)], ids=" ".join)
def test_a_reader_that_leaves_ends_the_command_quietly(args):
    proc = subprocess.Popen([*toolkit_command(), *args], cwd=NEUTRAL_CWD, env=process_env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # `| true`: nobody reads what the command writes
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == SIGPIPE_EXIT, err.decode()
    assert err == b""


@posix_only
@pytest.mark.parametrize("args", [("list", "--json"), ("list",), ("device", "--json")], ids=" ".join)
def test_a_closed_stdout_ends_the_command_quietly(args):
    out = run_with_closed(1, *args)
    assert out.returncode == SIGPIPE_EXIT, out.stderr
    assert out.stderr == ""


@posix_only
def test_run_with_a_closed_stdout_ends_quietly(stories_float_package):
    out = run_with_closed(1, "run", str(stories_float_package), "-p", "Once upon a time", "-n", "4", "--json")
    assert out.returncode == SIGPIPE_EXIT, out.stderr
    assert "Traceback" not in out.stderr and "error" not in out.stderr


@posix_only
def test_run_with_a_closed_stderr_still_answers(stories_float_package):
    out = run_with_closed(2, "run", str(stories_float_package), "-p", "Once upon a time", "-n", "4", "-t", "0")
    assert out.returncode == 0
    assert out.stdout.strip()


@posix_only
def test_native_output_is_left_alone_when_descriptor_1_is_closed():
    """A library caller whose descriptor 1 is closed: nothing to protect, so nothing is redirected."""
    code = ("import os, sys\n"
            "os.close(1)\n"
            "from toolkit.runtime.native_output import native_stdout_to_stderr\n"
            "sys.stdout = None\n"
            "with native_stdout_to_stderr():\n"
            "    pass\n"
            "sys.stderr.write('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=NEUTRAL_CWD, env=process_env(), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and out.stderr == "ok", out.stderr


def test_mirror_serve_on_a_port_in_use_names_the_port():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = run_toolkit("mirror", "serve", "--host", "127.0.0.1", "--port", str(port), timeout=60)
    assert out.returncode == 2, out.stderr
    assert out.stderr.splitlines() == [out.stderr.strip()] and out.stderr.startswith("error: --port ")
    assert "already in use" in out.stderr and "a file" not in out.stderr


@pytest.mark.parametrize("host", ["no-such-host.invalid", "192.0.2.1"])
def test_mirror_serve_on_an_address_that_is_not_ours_names_the_host(host):
    out = run_toolkit("mirror", "serve", "--host", host, "--port", "0", timeout=60)
    assert out.returncode == 2, out.stderr
    assert out.stderr.splitlines() == [out.stderr.strip()] and out.stderr.startswith(f"error: --host {host} ")
