"""Keep what native libraries print off our standard output.

Execution-provider backends write to file descriptor 1 directly (QNN's HTP backend prints a
`LIBNATIVE: No alternate configuration present...` line when a session loads), which would break
`--json` output and anything piped. While sessions are created, descriptor 1 points at descriptor 2.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.RLock()
_depth = 0
_saved_fd: int | None = None


def _c_runtimes() -> list:
    """The C runtimes whose stdio buffers native libraries may use: libc; on Windows the UCRT (Python and
    onnxruntime) and the old msvcrt.dll."""
    if os.name != "nt":
        return [lambda: ctypes.CDLL(None)]
    return [lambda: ctypes.CDLL("ucrtbase"), lambda: ctypes.cdll.msvcrt]


def _flush_c_stdio() -> None:
    """Flush C stdio buffers so text a library printed leaves while descriptor 1 still points at stderr."""
    for load in _c_runtimes():  # best effort, each on its own
        try:
            load().fflush(None)
        except (OSError, AttributeError):  # no such C runtime: nothing buffered in it either
            pass


@contextmanager
def native_stdout_to_stderr() -> Iterator[None]:
    """Inside the block, anything written to descriptor 1 (by native code, or by Python) goes to stderr.
    Nothing is redirected when descriptor 1 or 2 is closed (there is no stdout to protect, or nowhere to send it)."""
    global _depth, _saved_fd
    with _lock:
        if _depth == 0:
            if sys.stdout is not None:
                sys.stdout.flush()
            try:
                _saved_fd = os.dup(1)
            except OSError:  # EBADF: descriptor 1 is closed
                _saved_fd = None
            else:
                try:
                    os.dup2(2, 1)
                except OSError:  # EBADF: descriptor 2 is closed; leave descriptor 1 as it was
                    os.close(_saved_fd)
                    _saved_fd = None
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved_fd is not None:
                _flush_c_stdio()
                if sys.stderr is not None:
                    sys.stderr.flush()
                os.dup2(_saved_fd, 1)
                os.close(_saved_fd)
                _saved_fd = None
