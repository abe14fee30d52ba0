"""Output helpers shared by the command modules: JSON for scripts, rich for people."""

from __future__ import annotations

import json
import sys
from typing import Any

from toolkit.units import human_size

__all__ = ["console", "emit_json", "human_size"]


def emit_json(data: Any) -> None:
    """Write `data` as indented JSON on stdout (the one --json format of every command)."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def console(stderr: bool = False):
    """A rich Console, imported only when a command renders for a person."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # Piped output is read by people in files and logs too: do not cut tables at 80 columns.
    width = None if stream.isatty() else 200
    return Console(stderr=stderr, highlight=False, width=width, soft_wrap=False)
