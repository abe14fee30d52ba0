"""The `toolkit` command line: parses, calls the library, renders. Nothing here that a script needs.

Each command group lives in its own module with a `register(app)` function; heavy libraries
(onnxruntime, rich, httpx) are imported inside the commands so `toolkit list` starts fast.
"""

from __future__ import annotations

import importlib
import sys

import typer

from catalog.errors import ToolkitError

COMMAND_MODULES = (
    "toolkit.cli.catalog_cmds",
    "toolkit.cli.download_cmds",
    "toolkit.cli.run_cmds",
    "toolkit.cli.build_cmds",
)

app = typer.Typer(
    name="toolkit",
    help="Find, download and run local LLMs on your NPU, GPU or CPU.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)



def _version(value: bool) -> None:
    if value:
        from toolkit import __version__

        print(f"toolkit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Find, download and run local LLMs on your NPU, GPU or CPU."""


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def main() -> None:
    """Console entry point: library errors become one clear line on stderr and their exit code."""
    try:
        # Without standalone mode click returns the exit code of typer.Exit(n) instead of exiting.
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except ToolkitError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as e:  # click's usage errors arrive here in standalone_mode=False
        import click

        if isinstance(e, click.exceptions.Exit):
            sys.exit(e.exit_code)
        if isinstance(e, click.ClickException):
            e.show()
            sys.exit(e.exit_code)
        if isinstance(e, click.exceptions.Abort):
            print("aborted", file=sys.stderr)
            sys.exit(130)
        raise
