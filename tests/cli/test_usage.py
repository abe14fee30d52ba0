"""Usage errors and `--help` as a user sees them: exit 2, the usage line and one error line, plain help text."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import MACHINES
from tests.helpers.cli import run_toolkit

USAGE_ERRORS = [
    (["lst"], "usage: toolkit [", "toolkit: error: no command 'lst' (did you mean 'list'?)"),
    (["--bogus"], "usage: toolkit [", "toolkit: error: unrecognized arguments: --bogus"),
    (["list", "--bogus"], "usage: toolkit list [--all] [--device {npu,gpu,cpu}] [--json]",
     "toolkit list: error: unrecognized arguments: --bogus"),
    (["list", "--dev", "cpu"], "usage: toolkit list ", "toolkit list: error: unrecognized arguments: --dev cpu"),
    (["list", "--device", "tpu"], "usage: toolkit list ", "toolkit list: error: argument --device: invalid choice"),
    (["info"], "usage: toolkit info ", "toolkit info: error: the following arguments are required: ALIAS"),
    (["download", "x", "--yes"], "usage: toolkit download ", "toolkit download: error: unrecognized arguments: --yes"),
    (["run", "x", "--max-tokens", "0"], "usage: toolkit run ", "argument -n/--max-tokens: must be at least 1"),
    (["run", "x", "-t", "-1"], "usage: toolkit run ", "argument -t/--temperature: must be at least 0"),
    (["run", "x", "--top-p", "2"], "usage: toolkit run ", "argument --top-p: top_p must be in (0, 1]"),
    (["run", "x", "--prompt", " "], "usage: toolkit run ", "argument -p/--prompt: the prompt is empty"),
    (["bench", "x", "--prompt-tokens", "32,x"], "usage: toolkit bench ", "argument --prompt-tokens: expected numbers"),
    (["bench", "x", "--new-tokens", "1"], "usage: toolkit bench ", "argument --new-tokens: must be from 2 to"),
    (["eval", "pkg"], "usage: toolkit eval ", "the following arguments are required: --text"),
    (["cache"], "usage: toolkit cache ", "toolkit cache: error: missing command: list, add, verify, remove, prune"),
    (["cache", "add", "pkg"], "usage: toolkit cache add ", "the following arguments are required: --id"),
    (["cache", "lst"], "usage: toolkit cache ", "toolkit cache: error: no command 'lst' (did you mean 'list'?)"),
    (["cache", "remove"], "usage: toolkit cache remove ", "the following arguments are required: VARIANT"),
    (["mirror"], "usage: toolkit mirror ", "toolkit mirror: error: missing command: serve, export"),
    (["mirror", "serve", "--port", "abc"], "usage: toolkit mirror serve [--host HOST] [--port PORT]",
     "toolkit mirror serve: error: argument --port: expected a whole number, got 'abc'"),
    (["mirror", "serve", "--port", "70000"], "usage: toolkit mirror serve ", "must be from 0 to 65535"),
    # values that once ended in tracebacks (or in work done for nothing): refused as they are parsed
    (["run", "x", "--seed", "-1"], "usage: toolkit run ", "argument --seed: must be from 0 to 4294967295, got -1"),
    (["run", "x", "--seed", str(2**32)], "usage: toolkit run ", "argument --seed: must be from 0 to 4294967295"),
    (["run", "x", "--repetition-penalty", "nan"], "usage: toolkit run ",
     "argument --repetition-penalty: expected a finite number, got 'nan'"),
    (["run", "x", "-t", "inf"], "usage: toolkit run ", "argument -t/--temperature: expected a finite number"),
    (["run", "x", "--top-p", "nan"], "usage: toolkit run ", "argument --top-p: expected a finite number"),
    (["run", "x", "--threads", "99999999999999999999"], "usage: toolkit run ", "argument --threads: must be from 1"),
    (["run", "x", "--allow-custom-ops", "-y", "-p", "hi"], "usage: toolkit run ",
     "--allow-custom-ops is for a package folder you give by path"),
    (["bench", "x", "--prompt-tokens", "99999999999999999999"], "usage: toolkit bench ",
     "argument --prompt-tokens: each must be at most 1048576"),
    (["bench", "x", "--new-tokens", "99999999999999999999"], "usage: toolkit bench ",
     "argument --new-tokens: must be from 2 to 1048576"),
    (["bench", "x", "--repeat", "99999999999999999999"], "usage: toolkit bench ", "argument --repeat: must be from 1"),
    (["build", "ckpt", "--window", "99999999999999999999"], "usage: toolkit build ",
     "argument --window: must be from 1 to 4096"),
    (["build", "ckpt", "--context-length", "3000000000"], "usage: toolkit build ",
     "argument --context-length: must be from 1 to 1048576"),
    (["build", "ckpt", "--target", "bogus"], "usage: toolkit build ",
     "argument --target: invalid choice: 'bogus' (choose from 'float', 'cpu-int4', 'npu-qdq')"),
    (["build", "ckpt", "--weights", "bogus"], "usage: toolkit build ",
     "argument --weights: invalid choice: 'bogus' (choose from 'gptq', 'rtn')"),
    (["build", "ckpt", "--target", "npu-qdq"], "usage: toolkit build ",
     "--target npu-qdq needs --calibration-text FILE"),
    (["build", "ckpt", "--seed", "-1"], "usage: toolkit build ", "argument --seed: must be from 0 to 4294967295"),
    (["download", "x", "--mirror", "::"], "usage: toolkit download ", "argument --mirror: '::': not a URL"),
    (["download", "x", "--mirror", "ftp://mirror.local"], "usage: toolkit download ",
     "argument --mirror: 'ftp://mirror.local': expected an http:// or https:// URL with a host"),
]


@pytest.mark.parametrize(("args", "usage", "error"), USAGE_ERRORS, ids=[" ".join(a) for a, _, _ in USAGE_ERRORS])
def test_a_usage_error_exits_2_with_the_usage_line_and_one_error_line(args, usage, error):
    out = run_toolkit(*args)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.splitlines()
    assert lines[0].startswith(usage), out.stderr
    assert len(lines) == 2 and lines[1].startswith("toolkit") and "error: " in lines[1], out.stderr
    assert error in lines[1], out.stderr
    assert out.stdout == ""


def test_bare_toolkit_prints_the_help_on_stderr_and_exits_2_as_git_does():
    out = run_toolkit()
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("usage: toolkit ") and "commands:" in out.stderr
    assert "Traceback" not in out.stderr


def test_top_level_help_lists_every_command_with_a_summary_in_order():
    out = run_toolkit("--help")
    assert out.returncode == 0 and out.stderr == ""
    lines = out.stdout.splitlines()
    start = lines.index("commands:") + 1
    rows = [line.split(maxsplit=1) for line in lines[start:start + 10]]
    assert [name for name, _ in rows] == ["list", "info", "device", "download", "run", "bench", "build", "eval",
                                          "cache", "mirror"]
    assert all(len(summary) > 20 for _, summary in rows)


def test_version_prints_name_and_version():
    out = run_toolkit("--version")
    assert out.returncode == 0 and out.stdout.startswith("toolkit ") and out.stdout.strip()[-1].isdigit()


HELP = [
    (["list"], ["--all", "--device {npu,gpu,cpu}", "--json"]),
    (["info"], ["ALIAS", "--device", "--json"]),
    (["device"], ["--json", "--device", "--refresh"]),
    (["download"], ["ALIAS", "--variant ID", "--device", "--dry-run", "--mirror URL", "--force", "--json",
                    "-q", "--quiet"]),
    (["run"], ["MODEL", "-p", "--prompt TEXT", "--system TEXT", "-n", "--max-tokens N", "-t", "--temperature T",
               "--top-k K", "--top-p P", "--min-p P", "--repetition-penalty X", "--seed N", "--stop TEXT",
               "--truncate", "--hide-reasoning", "--show-special-tokens", "--device", "--variant ID", "-y", "--yes", "--threads N", "--ep EP",
               "--mirror URL", "--json", "(default: 1024)"]),
    (["bench"], ["MODEL", "--prompt-tokens N,N", "--new-tokens N", "--repeat N", "--warmup N", "-y", "--yes",
                 "(default: 32,512)"]),
    (["build"], ["CHECKPOINT", "--target TARGET", "--out DIR", "--context-length N", "--window N",
                 "--calibration-text FILE", "--weights METHOD", "--no-rotate", "--keep-float NAME", "--seed N",
                 "--overwrite", "--eval FILE", "--json"]),
    (["eval"], ["PACKAGE", "--text FILE", "--reference PACKAGE", "--max-tokens N", "--json"]),
    (["cache"], ["list", "add", "verify", "remove", "prune"]),
    (["cache", "list"], ["--json"]),
    (["cache", "add"], ["PACKAGE", "--id NAME:VERSION", "--alias ALIAS", "--json"]),
    (["cache", "verify"], ["[VARIANT ...]", "--repair", "--json"]),
    (["cache", "remove"], ["VARIANT [VARIANT ...]", "--json"]),
    (["cache", "prune"], ["--unused-days DAYS", "--dry-run", "--json"]),
    (["mirror"], ["serve", "export"]),
    (["mirror", "serve"], ["--host HOST", "--port PORT", "(default: 8765)"]),
    (["mirror", "export"], ["DIR", "--variant ID", "--json"]),
]


@pytest.mark.parametrize(("command", "options"), HELP, ids=[" ".join(c) for c, _ in HELP])
def test_help_is_plain_text_with_every_option(command, options):
    out = run_toolkit(*command, "--help")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"usage: toolkit {' '.join(command)}")
    for option in options:  # whole words: "-p" is not found inside "--prompt"
        assert re.search(r"(?<![\w-])" + re.escape(option), out.stdout), option
    for noise in ("<bool>", "{alias}", "╭", "│", "─", "Traceback"):
        assert noise not in out.stdout
    assert all(len(line) <= 100 for line in out.stdout.splitlines())


def test_hidden_device_options_work_but_are_not_in_the_help():
    assert "--replay" not in run_toolkit("device", "--help").stdout
    out = run_toolkit("device", "--replay", str(MACHINES / "snapdragon-x-elite-windows"), "--eps-file", "eps.json",
                      "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["npus"][0]["vendor"] == "qualcomm"


@pytest.mark.parametrize("stdin", [None, ""], ids=["with --prompt", "empty stdin"])
def test_run_of_a_missing_folder_is_not_found_before_any_prompt_is_asked_for(tmp_path, stdin):
    missing = tmp_path / "no-such-package"
    args = ["run", str(missing)] + (["--prompt", "hi"] if stdin is None else [])
    out = run_toolkit(*args, input=stdin)
    assert out.returncode == 4, out.stderr
    assert out.stderr.splitlines() == [out.stderr.strip()] and out.stderr.startswith("error: ")
    assert str(missing) in out.stderr and "prompt" not in out.stderr


def test_run_with_nothing_to_say_names_the_three_ways_to_give_a_prompt(tmp_path):
    (tmp_path / "genai_config.json").write_text("{}")  # resolves as a package; the prompt is refused before loading
    out = run_toolkit("run", str(tmp_path), input="")
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("usage: toolkit run ") and len(out.stderr.splitlines()) == 2
    assert "toolkit run: error: no prompt: give --prompt, pipe text on stdin" in out.stderr


def test_build_targets_and_weight_methods_have_one_definition():
    """The parser's choices are the builder's: toolkit.build_choices, which the CLI reads without numpy."""
    from toolkit import builder
    from toolkit.build_choices import TARGETS, WEIGHT_METHODS

    assert builder.TARGETS is TARGETS and set(WEIGHT_METHODS) == {"gptq", "rtn"}
    help_text = run_toolkit("build", "--help").stdout
    assert all(target in help_text for target in TARGETS)
