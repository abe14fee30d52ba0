"""Output helpers shared by the command modules: JSON for scripts, rich for people."""

from __future__ import annotations

import errno
import json
import sys
from typing import Any

from toolkit.units import human_size

__all__ = ["console", "emit_json", "human_size"]


def emit_json(data: Any) -> None:
    """Write `data` as indented JSON on stdout (the one --json format of every command). No stdout at all
    (descriptor 1 closed) fails as a broken pipe does: the CLI ends quietly."""
    if sys.stdout is None:
        raise BrokenPipeError(errno.EPIPE, "standard output is closed")
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def console(stderr: bool = False):
    """A rich Console, imported only when a command renders for a person."""
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:  # rich would exit 1 itself: let the CLI end as for any broken pipe
            raise BrokenPipeError(errno.EPIPE, "the reader of the output left")

    stream = sys.stderr if stderr else sys.stdout
    # Piped output is read by people in files and logs too: do not cut tables at 80 columns.
    width = None if stream is not None and stream.isatty() else 200
    return _Console(stderr=stderr, highlight=False, width=width, soft_wrap=False)
