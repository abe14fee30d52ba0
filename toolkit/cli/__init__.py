"""The `toolkit` command line: parses, calls the library, renders. Nothing here that a script needs.

Each command module lists its `COMMANDS`; `parsing.py` turns them into argparse parsers, built only
for the command that runs. Heavy libraries (onnxruntime, numpy, rich, httpx) are imported inside
the commands, so `toolkit list --json` and `toolkit --help` start fast.
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Sequence

from catalog.errors import DiskFullError, StoreError, ToolkitError
from toolkit import __version__
from toolkit.cli import build_cmds, catalog_cmds, download_cmds, run_cmds, store_cmds
from toolkit.cli.parsing import Root

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
    """Console entry point: usage errors exit 2; library errors become one line on stderr and their exit code."""
    try:
        ROOT.main("toolkit", sys.argv[1:] if argv is None else argv)
    except ToolkitError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except OSError as e:  # a folder the command could not use: a read-only store or export folder, a full disk
        print(f"error: {e.filename or 'a file'}: {e.strerror or e}", file=sys.stderr)
        sys.exit(DiskFullError.exit_code if e.errno in (errno.ENOSPC, errno.EDQUOT) else StoreError.exit_code)
