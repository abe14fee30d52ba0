"""The `toolkit` command line: parses, calls the library, renders. Nothing here that a script needs.

Each command module lists its `COMMANDS`; `parsing.py` turns them into argparse parsers, built only
for the command that runs. Heavy libraries (onnxruntime, numpy, rich, httpx) are imported inside
the commands, so `toolkit list --json` and `toolkit --help` start fast.
"""

from __future__ import annotations

import errno
import io
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from toolkit import __version__
from toolkit.cli import build_cmds, catalog_cmds, download_cmds, run_cmds, store_cmds
from toolkit.cli.parsing import Root
from toolkit.errors import DiskFullError, StoreError, ToolkitError

ROOT = Root(
    "toolkit",
    "Find, download and run local LLMs on your NPU, GPU or CPU.",
    (*catalog_cmds.COMMANDS, *download_cmds.COMMANDS, *run_cmds.COMMANDS, *build_cmds.COMMANDS,
     *store_cmds.COMMANDS),
    epilog="Environment: TOOLKIT_HOME (the store), TOOLKIT_DEVICE (npu, gpu or cpu), TOOLKIT_MIRROR, "
           "TOOLKIT_MANIFESTS, HF_ENDPOINT, HF_TOKEN.",
    version=__version__,
)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: usage errors exit 2; library errors become one line on stderr and their exit code.
    Output nobody reads any more (a closed pipe, a closed stdout) ends the command quietly, as other Unix tools
    do: no message, exit 141 (128 + SIGPIPE)."""
    _standard_streams()
    try:
        try:
            ROOT.main("toolkit", sys.argv[1:] if argv is None else argv)
        except SystemExit:  # --help and usage errors: what they printed may meet a closed pipe too
            sys.stdout.flush()
            raise
        sys.stdout.flush()  # here, not at exit, so that a broken pipe is caught below
    except BrokenPipeError:
        _output_gone()
    except ToolkitError as e:
        _fail(str(e), e.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", 130, prefix="")
    except OSError as e:  # a folder the command could not use: a read-only store or export folder, a full disk
        if e.errno == errno.EPIPE:
            _output_gone()
        full = e.errno in (errno.ENOSPC, errno.EDQUOT)
        if e.filename:
            _fail(f"{e.filename}: {e.strerror or e}", DiskFullError.exit_code if full else StoreError.exit_code)
        _fail(str(e.strerror or e), DiskFullError.exit_code if full else 1)


def _fail(message: str, code: int, prefix: str = "error: ") -> NoReturn:
    """One line on stderr, then exit with `code`; output still buffered for a reader that left is dropped."""
    _error(message, prefix)
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        _silence_stdout()
    sys.exit(code)


def _error(message: str, prefix: str = "error: ") -> None:
    """One line on stderr (nothing when stderr is gone too)."""
    try:
        sys.stderr.write(f"{prefix}{message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _standard_streams() -> None:
    """A closed descriptor 0, 1 or 2 is opened on the null device, so that no file the command opens later gets
    its number (native libraries write to descriptor 1 whatever it is). A closed stdout (None) writes raise
    BrokenPipeError, as a pipe nobody reads would; a closed stderr loses its messages."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDONLY if fd == 0 else os.O_WRONLY)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            os.set_inheritable(fd, True)
    if sys.stdout is None:
        sys.stdout = ClosedOutput()
    if sys.stderr is None:
        sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115


def _silence_stdout() -> None:
    """Point descriptor 1 at the null device, so that the flush at exit does not fail again."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError, AttributeError):  # ClosedOutput has no descriptor and nothing to flush
        pass


def _output_gone() -> NoReturn:
    """Standard output has no reader: stop quietly, as Python's recipe says ("Note on SIGPIPE" in the
    signal module's documentation)."""
    _silence_stdout()
    sys.exit(128 + 13)  # what a shell reports for a process that SIGPIPE ended


class ClosedOutput(io.TextIOBase):
    """sys.stdout when descriptor 1 was closed before the command started: writing fails as a broken pipe."""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        raise BrokenPipeError(errno.EPIPE, "standard output is closed")

    def isatty(self) -> bool:
        return False
