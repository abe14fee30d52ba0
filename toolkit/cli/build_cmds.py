"""`toolkit build` and `toolkit eval`: parse, call toolkit.build, render."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from toolkit.cli.output import console, emit_json, human_size


def register(app: typer.Typer) -> None:
    """Add the build and eval commands."""

    @app.command("build")
    def build(
        checkpoint: Annotated[Path, typer.Argument(help="Hugging Face checkpoint folder (config.json, safetensors).")],
        target: Annotated[str, typer.Option("--target", help="npu-qdq, cpu-int4 or float.")] = "cpu-int4",
        out: Annotated[Path, typer.Option("--out", help="Output package folder.")] = Path("package"),
        context_length: Annotated[int, typer.Option("--context-length", help="Static KV length.")] = 4096,
        window: Annotated[int, typer.Option("--window", help="Prefill window (context stage length).")] = 64,
        calibration_text: Annotated[Path | None, typer.Option(
            "--calibration-text", help="Text for activation ranges (npu-qdq, required) and GPTQ (both int4 targets).")] = None,
        weights: Annotated[str, typer.Option(
            "--weights", help="Rounding when calibration text is given: gptq or rtn.")] = "gptq",
        no_rotate: Annotated[bool, typer.Option("--no-rotate", help="npu-qdq: skip the QuaRot rotation.")] = False,
        keep_float: Annotated[list[str] | None, typer.Option(
            "--keep-float", help="npu-qdq: tensor name parts kept unquantized (repeatable).")] = None,
        seed: Annotated[int, typer.Option("--seed", help="Seed of the random Hadamard rotation.")] = 0,
        overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a non-empty --out folder.")] = False,
        eval_text: Annotated[Path | None, typer.Option(
            "--eval", help="After building, evaluate on this text against a float build.")] = None,
        json_out: Annotated[bool, typer.Option("--json", help="Write JSON for scripts.")] = False,
    ) -> None:
        """Build a decoder-pipeline package (genai_config.json) from a checkpoint."""
        from toolkit.build import BuildOptions, build_package

        opts = BuildOptions(target=target, context_length=context_length, window=window,
                            calibration_text=calibration_text, weight_method=weights, rotate=not no_rotate,
                            seed=seed, overwrite=overwrite)
        if keep_float is not None:
            opts.keep_float = tuple(keep_float)
        manifest = build_package(checkpoint, out, opts)
        result = {"package": str(out), **{k: manifest[k] for k in ("target", "size", "build_seconds")},
                  "files": manifest["files"]}
        if eval_text is not None:
            result["eval"] = _eval_against_float(checkpoint, out, eval_text, context_length, window)
        if json_out:
            emit_json(result)
            return
        c = console()
        c.print(f"built {target} package in {out} ({human_size(manifest['size'])}, {manifest['build_seconds']} s)")
        if "eval" in result:
            _print_eval(result["eval"])

    @app.command("eval")
    def eval_(
        package: Annotated[Path, typer.Argument(help="A package folder (genai_config.json).")],
        text: Annotated[Path, typer.Option("--text", help="Text file; documents split on <|endoftext|>.")],
        reference: Annotated[Path | None, typer.Option(
            "--reference", help="Unquantized package to compare with (top-1 agreement).")] = None,
        max_tokens: Annotated[int | None, typer.Option("--max-tokens", help="Cut each document.")] = None,
        json_out: Annotated[bool, typer.Option("--json", help="Write JSON (the default when not a TTY).")] = False,
    ) -> None:
        """Perplexity and top-1 agreement with the unquantized model, under teacher forcing."""
        from toolkit.build import evaluate

        result = evaluate(package, text, reference, max_tokens)
        if json_out or not _stdout_is_tty():
            emit_json(result)
        else:
            _print_eval(result)


def _eval_against_float(checkpoint: Path, package: Path, text: Path, context_length: int, window: int) -> dict:
    import tempfile

    from toolkit.build import BuildOptions, build_package, evaluate

    with tempfile.TemporaryDirectory(prefix="toolkit-eval-") as tmp:
        ref = Path(tmp) / "float"
        build_package(checkpoint, ref, BuildOptions(target="float", context_length=context_length, window=window))
        return evaluate(package, text, ref)


def _stdout_is_tty() -> bool:
    import sys

    return sys.stdout.isatty()


def _print_eval(result: dict) -> None:
    c = console()
    line = f"perplexity {result['perplexity']:.4f} over {result['tokens']} tokens"
    if "top1_agreement" in result:
        line += (f"; reference {result['reference_perplexity']:.4f} (x{result['perplexity_ratio']:.4f}),"
                 f" top-1 agreement {result['top1_agreement']:.2%}")
    c.print(line)
