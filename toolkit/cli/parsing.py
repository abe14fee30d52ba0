"""The command-line layer under `toolkit`, on argparse: commands in groups, usage errors, git-like help.

A `Command` adds its arguments to a parser and runs with what was parsed; a `Group` (`toolkit`,
`toolkit cache`, `toolkit mirror`) dispatches on the first word. Only the parser of the command that
runs is built. Every usage error exits 2 with the usage line and one `PROG: error: ...` line on
stderr; argparse writes it for bad options and values, `UsageError` lets a command do the same.
"""

from __future__ import annotations

import argparse
import difflib
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn

USAGE_WIDTH = 100  # a usage line longer than this reads `PROG [options] ARGS`; the options follow in --help
HELP_WIDTH = 80


class UsageError(Exception):
    """A command line that parses but cannot be run as given; it exits 2 like argparse's own errors."""


class CommandParser(argparse.ArgumentParser):
    """argparse as every toolkit command uses it: exact long options, `--help` not repeated in the usage."""

    def __init__(self, prog: str, paragraphs: Sequence[str]) -> None:
        description = "\n\n".join(textwrap.fill(p, HELP_WIDTH) for p in paragraphs if p)
        super().__init__(prog=prog, description=description, add_help=False, allow_abbrev=False,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
        self.add_argument("-h", "--help", action="help", help=argparse.SUPPRESS)

    def finish(self) -> CommandParser:
        """Fix the usage line once every argument is known: all of it on one line, or `[options]`."""
        line = _one_line(self.prog, self._actions)
        if len("usage: ") + len(line) > USAGE_WIDTH:
            positionals = _one_line(self.prog, [a for a in self._actions if not a.option_strings])
            line = positionals.replace(self.prog, f"{self.prog} [options]", 1)
        self.usage = line.replace("%", "%%")  # argparse %-formats the usage
        return self


def _one_line(prog: str, actions: list[argparse.Action]) -> str:
    formatter = argparse.HelpFormatter(prog, width=100_000)
    formatter.add_usage(None, actions, [], prefix="")
    return formatter.format_help().strip()


@dataclass(frozen=True)
class Command:
    """One command: its name, the line `toolkit --help` shows, its arguments and what it does."""

    name: str
    summary: str
    arguments: Callable[[CommandParser], None]
    run: Callable[[argparse.Namespace], None]
    description: str = ""  # said after the summary in `toolkit NAME --help`

    def parser(self, prog: str) -> CommandParser:
        parser = CommandParser(prog, (self.summary, self.description))
        self.arguments(parser)
        return parser.finish()

    def main(self, prog: str, argv: Sequence[str]) -> None:
        parser = self.parser(prog)
        args = parser.parse_args(argv)
        try:
            self.run(args)
        except UsageError as e:
            parser.error(str(e))


@dataclass(frozen=True)
class Group:
    """Commands under one word (`toolkit cache list`); the root group is `toolkit` itself."""

    name: str
    summary: str
    commands: tuple[Command | Group, ...]
    epilog: str = ""

    def usage(self, prog: str) -> str:
        return f"usage: {prog} [--help] COMMAND [ARGS]\n"

    def help(self, prog: str) -> str:
        width = max(len(c.name) for c in self.commands) + 2
        lines = [self.usage(prog), self.summary, "", "commands:"]
        lines += [f"  {c.name:<{width}}{c.summary}" for c in self.commands]
        lines += ["", f"Run `{prog} COMMAND --help` for the options of a command.", *self._epilog_lines()]
        return "\n".join(lines) + "\n"

    def _epilog_lines(self) -> list[str]:
        return ["", textwrap.fill(self.epilog, HELP_WIDTH)] if self.epilog else []

    def main(self, prog: str, argv: Sequence[str]) -> None:
        if not argv:
            self.fail(prog, f"missing command: {', '.join(c.name for c in self.commands)}")
        word, rest = argv[0], argv[1:]
        if word in ("-h", "--help"):
            sys.stdout.write(self.help(prog))
            return
        if word.startswith("-"):
            self.fail(prog, f"unrecognized arguments: {word}")
        names = [c.name for c in self.commands]
        if word not in names:
            near = difflib.get_close_matches(word, names, n=1)
            hint = f"did you mean {near[0]!r}?" if near else f"see `{prog} --help`"
            self.fail(prog, f"no command {word!r} ({hint})")
        self.commands[names.index(word)].main(f"{prog} {word}", rest)

    def fail(self, prog: str, message: str) -> NoReturn:
        sys.stderr.write(f"{self.usage(prog)}{prog}: error: {message}\n")
        sys.exit(2)


@dataclass(frozen=True)
class Root(Group):
    """`toolkit` itself: `--version`, and bare `toolkit` prints the help (to stderr, exit 2) as git does."""

    version: str = ""

    def usage(self, prog: str) -> str:
        return f"usage: {prog} [--version] [--help] COMMAND [ARGS]\n"

    def main(self, prog: str, argv: Sequence[str]) -> None:
        if not argv:
            sys.stderr.write(self.help(prog))
            sys.exit(2)
        if argv[0] == "--version":
            print(f"{prog} {self.version}")
            return
        super().main(prog, argv)
