"""Text from users and packages that once ended in tracebacks: bytes that are not UTF-8, a template that renders
nothing, and the messages of run and bench about what fits the context."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers.cli import NEUTRAL_CWD, one_error_line, process_env, run_toolkit, toolkit_command

LATIN1 = "Once upon a time, a café opened.".encode("latin-1")


def run_bytes(*args: str | bytes, stdin: bytes = b"") -> subprocess.CompletedProcess:
    """`toolkit ARGS` with raw bytes in its arguments and on stdin, as a shell can give them."""
    return subprocess.run([*toolkit_command(), *args], cwd=NEUTRAL_CWD, env=process_env(), input=stdin,
                          capture_output=True, timeout=300)


def test_a_prompt_argument_that_is_not_utf8_is_read_with_replacement_characters(stories_float_package):
    out = run_bytes("run", str(stories_float_package), "-p", b"Once upon \xff a time", "-n", "4", "-t", "0",
                    "--json")
    assert out.returncode == 0, out.stderr.decode()
    assert json.loads(out.stdout)["stats"]["generated_tokens"] == 4


def test_piped_input_that_is_not_utf8_is_read_with_replacement_characters(stories_float_package):
    out = run_bytes("run", str(stories_float_package), "-n", "4", "-t", "0", "--json",
                    stdin=b"\xef\xbb\xbfOnce upon \xff\xfe a time")
    assert out.returncode == 0, out.stderr.decode()
    data = json.loads(out.stdout)
    assert data["stats"]["generated_tokens"] == 4


def test_the_tokenizer_takes_lone_surrogates_from_a_library_caller_as_replacement_characters(
        stories_float_package):
    from toolkit.runtime.tokenizer import PackageTokenizer

    tok = PackageTokenizer(stories_float_package)
    assert tok.encode("a\udcffb") == tok.encode("a\ufffdb")
    assert tok.token_to_id("\udcff") is None


def test_eval_text_that_is_not_utf8_names_the_file(tmp_path, stories_float_package):
    text = tmp_path / "latin1.txt"
    text.write_bytes(LATIN1)
    out = run_toolkit("eval", str(stories_float_package), "--text", str(text))
    one_error_line(out, 10, str(text), "not UTF-8")


def test_calibration_text_that_is_not_utf8_names_the_file(tmp_path, stories_checkpoint):
    text = tmp_path / "latin1.txt"
    text.write_bytes(LATIN1)
    out = run_toolkit("build", str(stories_checkpoint), "--target", "cpu-int4", "--calibration-text", str(text),
                      "--out", str(tmp_path / "pkg"))
    one_error_line(out, 10, str(text), "not UTF-8")
    assert not (tmp_path / "pkg").exists()


def _copy(package: Path, to: Path) -> Path:
    return Path(shutil.copytree(package, to))


def test_a_chat_template_that_renders_nothing_is_a_package_error(tmp_path, stories_float_package):
    package = _copy(stories_float_package, tmp_path / "pkg")
    config = json.loads((package / "tokenizer_config.json").read_text())
    config["chat_template"] = "{% for message in messages %}{% endfor %}"
    (package / "tokenizer_config.json").write_text(json.dumps(config))
    out = run_toolkit("run", str(package), "-p", "hi", "-n", "2")
    one_error_line(out, 9, str(package), "chat template", "tokenizer_config.json")


def test_show_special_tokens_prints_the_tokens_that_are_hidden_by_default(tmp_path,
                                                                          stories_float_package):
    """The package marks `▁was` special: a control token, hidden from the text unless asked for."""
    package = _copy(stories_float_package, tmp_path / "pkg")
    tokenizer = json.loads((package / "tokenizer.json").read_text())
    was = tokenizer["model"]["vocab"]["▁was"]
    tokenizer["added_tokens"].append({"id": was, "content": "▁was", "single_word": False, "lstrip": False,
                                      "rstrip": False, "normalized": False, "special": True})
    (package / "tokenizer.json").write_text(json.dumps(tokenizer))
    args = ("run", str(package), "-p", "Once upon a time", "-n", "12", "-t", "0", "--json")
    hidden, shown = run_toolkit(*args), run_toolkit(*args, "--show-special-tokens")
    assert hidden.returncode == 0 and shown.returncode == 0, hidden.stderr + shown.stderr
    hidden_text, shown_text = json.loads(hidden.stdout)["text"], json.loads(shown.stdout)["text"]
    assert " was" in shown_text and " was" not in hidden_text, (hidden_text, shown_text)


def test_bench_says_its_own_options_when_the_prompt_does_not_fit(stories_float_package):
    out = run_toolkit("bench", str(stories_float_package), "--prompt-tokens", "500", "--new-tokens", "64",
                      "--repeat", "1")
    line = one_error_line(out, 9, "--prompt-tokens 500", "--new-tokens 64", "512")
    assert "--max-tokens" not in line and "--truncate" not in line


def test_run_still_says_max_tokens_and_truncate_when_the_prompt_does_not_fit(stories_float_package):
    out = run_toolkit("run", str(stories_float_package), "-p", "Once upon a time", "-n", "600")
    one_error_line(out, 9, "--max-tokens", "--truncate")


@pytest.mark.parametrize("stdin", [b"", b" \n"])
def test_empty_piped_input_is_still_no_prompt(stories_float_package, stdin):
    out = run_bytes("run", str(stories_float_package), stdin=stdin)
    assert out.returncode == 2 and b"no prompt" in out.stderr, out.stderr
