"""`toolkit build` and `toolkit eval`: parse, call toolkit.api, render."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from toolkit import api
from toolkit.build_choices import MAX_CONTEXT, MAX_WINDOW, TARGETS, WEIGHT_METHODS
from toolkit.cli.options import MAX_SEED, add_json, whole_number
from toolkit.cli.output import console, emit_json, human_size
from toolkit.cli.parsing import Command, CommandParser, UsageError


def _build_arguments(parser: CommandParser) -> None:
    parser.add_argument("checkpoint", type=Path, metavar="CHECKPOINT",
                        help="Hugging Face checkpoint folder (config.json, safetensors).")
    parser.add_argument("--target", default="cpu-int4", choices=TARGETS, metavar="TARGET",
                        help=f"{', '.join(TARGETS[:-1])} or {TARGETS[-1]} (default: %(default)s).")
    parser.add_argument("--out", type=Path, default=Path("package"), metavar="DIR",
                        help="Output package folder (default: %(default)s).")
    parser.add_argument("--context-length", type=whole_number(1, MAX_CONTEXT), metavar="N",
                        help=f"Static KV length, at most {MAX_CONTEXT} (default: 4096, or the checkpoint's "
                             "max_position_embeddings if less).")
    parser.add_argument("--window", type=whole_number(1, MAX_WINDOW), default=64, metavar="N",
                        help=f"Prefill window, the context stage's length, at most {MAX_WINDOW} "
                             "(default: %(default)s).")
    parser.add_argument("--calibration-text", type=Path, metavar="FILE",
                        help="UTF-8 text for activation ranges (npu-qdq, required) and GPTQ (both int4 targets).")
    parser.add_argument("--weights", default="gptq", choices=WEIGHT_METHODS, metavar="METHOD",
                        help=f"Rounding when calibration text is given: {' or '.join(WEIGHT_METHODS)} "
                             "(default: %(default)s).")
    parser.add_argument("--no-rotate", action="store_true", help="npu-qdq: skip the QuaRot rotation.")
    parser.add_argument("--keep-float", action="append", metavar="NAME",
                        help="npu-qdq: tensor name parts kept unquantized (repeatable).")
    parser.add_argument("--seed", type=whole_number(0, MAX_SEED), default=0, metavar="N",
                        help="Seed of the random Hadamard rotation (default: %(default)s).")
    parser.add_argument("--overwrite", action="store_true", help="Replace a non-empty --out folder.")
    parser.add_argument("--eval", type=Path, dest="eval_text", metavar="FILE",
                        help="After building, evaluate on this UTF-8 text against a float build.")
    add_json(parser)


def build(args: argparse.Namespace) -> None:
    """Build the package, then evaluate it against a float build if --eval is given."""

    checkpoint, out, target = args.checkpoint, args.out, args.target
    if target == "npu-qdq" and args.calibration_text is None:
        raise UsageError("--target npu-qdq needs --calibration-text FILE (activation ranges come from real text)")
    opts = api.BuildOptions(target=target, context_length=args.context_length, window=args.window,
                        calibration_text=args.calibration_text, weight_method=args.weights, rotate=not args.no_rotate,
                        seed=args.seed, overwrite=args.overwrite)
    if args.keep_float is not None:
        opts.keep_float = tuple(args.keep_float)
    manifest = api.build(checkpoint, out, opts)
    result = {"package": str(out), **{k: manifest[k] for k in ("target", "size", "build_seconds", "context_length")},
              "files": manifest["files"], "warnings": manifest.get("warnings", [])}
    err = console(stderr=True)
    for warning in result["warnings"]:
        err.print(f"warning: {warning}", style="yellow", markup=False, soft_wrap=True)
    if args.eval_text is not None:
        result["eval"] = _eval_against_float(checkpoint, out, args.eval_text, manifest["context_length"], args.window)
    if args.json:
        emit_json(result)
        return
    c = console()
    c.print(f"built {target} package in {out} (context {manifest['context_length']}, {human_size(manifest['size'])}, "
            f"{manifest['build_seconds']} s)")
    if "eval" in result:
        _print_eval(result["eval"])


def _eval_arguments(parser: CommandParser) -> None:
    parser.add_argument("package", type=Path, metavar="PACKAGE", help="A package folder (genai_config.json).")
    parser.add_argument("--text", type=Path, required=True, metavar="FILE",
                        help="UTF-8 text file (other encodings are refused); documents split on <|endoftext|>.")
    parser.add_argument("--reference", type=Path, metavar="PACKAGE",
                        help="Unquantized package to compare with (top-1 agreement).")
    parser.add_argument("--max-tokens", type=whole_number(1), metavar="N", help="Cut each document.")
    add_json(parser, help="Write JSON (the default when stdout is not a terminal).")


def eval_(args: argparse.Namespace) -> None:
    """Evaluate a package; JSON unless a person is watching."""
    result = api.evaluate(args.package, args.text, args.reference, args.max_tokens)
    if args.json or not sys.stdout.isatty():
        emit_json(result)
    else:
        _print_eval(result)


def _eval_against_float(checkpoint: Path, package: Path, text: Path, context_length: int, window: int) -> dict:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="toolkit-eval-") as tmp:
        ref = Path(tmp) / "float"
        api.build(checkpoint, ref, api.BuildOptions(target="float", context_length=context_length, window=window))
        return api.evaluate(package, text, ref)


def _print_eval(result: dict) -> None:
    c = console()
    line = f"perplexity {result['perplexity']:.4f} over {result['tokens']} tokens"
    if "top1_agreement" in result:
        line += (f"; reference {result['reference_perplexity']:.4f} (x{result['perplexity_ratio']:.4f}),"
                 f" top-1 agreement {result['top1_agreement']:.2%}")
    c.print(line)


COMMANDS = (
    Command("build", "Build a runnable package (genai_config.json) from a Hugging Face checkpoint.",
            _build_arguments, build,
            "Targets: npu-qdq (static-shape QDQ graphs for NPUs; needs --calibration-text), cpu-int4 "
            "(int4 weights for the CPU) and float (the reference). No torch and no hub needed."),
    Command("eval", "Measure perplexity and top-1 agreement with the unquantized model, under teacher forcing.",
            _eval_arguments, eval_),
)
