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


def _flush_c_stdio() -> None:
    """Flush C stdio buffers so text a library printed leaves while descriptor 1 still points at stderr."""
    try:
        libc = ctypes.CDLL(None) if os.name != "nt" else ctypes.cdll.msvcrt
        libc.fflush(None)
    except (OSError, AttributeError):  # no C runtime to reach: nothing buffered we could flush either
        pass


@contextmanager
def native_stdout_to_stderr() -> Iterator[None]:
    """Inside the block, anything written to descriptor 1 (by native code, or by Python) goes to stderr."""
    global _depth, _saved_fd
    with _lock:
        if _depth == 0:
            sys.stdout.flush()
            _saved_fd = os.dup(1)
            os.dup2(2, 1)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved_fd is not None:
                _flush_c_stdio()
                sys.stderr.flush()
                os.dup2(_saved_fd, 1)
                os.close(_saved_fd)
                _saved_fd = None
