"""`toolkit run` (chat, one-shot, piped) and `toolkit bench`: parse, call toolkit.api, render."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from toolkit import api
from toolkit.build_choices import MAX_CONTEXT
from toolkit.cli.options import (
    MAX_SEED,
    add_device,
    add_json,
    add_mirror,
    add_require_pinned,
    add_variant,
    argv_text,
    download_config,
    number,
    number_list,
    stdin_text,
    whole_number,
)
from toolkit.cli.output import console, emit_json, human_size
from toolkit.cli.parsing import Command, CommandParser, UsageError
from toolkit.cli.progress import for_terminal
from toolkit.errors import PackageError

NO_PROMPT = "no prompt: give --prompt, pipe text on stdin, or run in a terminal for a chat"
MAX_THREADS = 1024
MAX_RUNS = 10_000  # bench --repeat and --warmup
CUSTOM_OPS_BY_PATH = "--allow-custom-ops is for a package folder you give by path, not a catalog download"


def _model_arguments(parser: CommandParser) -> None:
    """MODEL and the options of finding and loading it, shared by run and bench."""
    parser.add_argument("model", metavar="MODEL", help="A catalog alias (e.g. deepseek_r1_1_5) or a package folder.")
    add_device(parser)
    add_variant(parser)
    parser.add_argument("-y", "--yes", action="store_true", help="Download without asking when the model is missing.")
    parser.add_argument("--threads", type=whole_number(1, MAX_THREADS), metavar="N",
                        help="CPU threads per stage (default: physical cores).")
    parser.add_argument("--ep", metavar="EP", help="Force an execution provider for every stage (cpu, qnn...).")
    add_mirror(parser)
    add_require_pinned(parser)
    parser.add_argument("--allow-custom-ops", action="store_true",
                        help="Load the package's custom_ops_library (native code, from inside the package folder); "
                             "only for a package folder you built or trust, never for a download.")
    add_json(parser)


def _interactive() -> bool:
    """Standard input is a terminal (not a pipe, a file, or closed)."""
    return sys.stdin is not None and sys.stdin.isatty()


def _confirm(question: str) -> bool:
    """Ask on stderr, only when a person can answer; Enter means yes."""
    if not _interactive():
        return False
    sys.stderr.write(f"{question} [Y/n] ")
    sys.stderr.flush()
    try:
        answer = input().strip().lower()
    except EOFError:
        return False
    return answer in ("", "y", "yes")


def _resolve(args: argparse.Namespace):
    """The package folder for MODEL (downloading it if --yes or the user agrees), or the error saying why not."""
    if args.allow_custom_ops and not api.looks_like_path(args.model):  # before anything is downloaded
        raise UsageError(CUSTOM_OPS_BY_PATH)
    progress = None if args.json else for_terminal()
    confirm = (lambda question: True) if args.yes else _confirm
    return api.resolve(args.model, device=args.device, variant=args.variant, confirm=confirm, progress=progress,
                       mirror=args.mirror, config=download_config(args))


def _open(resolved, args: argparse.Namespace, huge_pages: bool = True):
    """Load a resolved package with the runtime options given on the command line."""
    if args.allow_custom_ops and resolved.variant_id is not None:
        raise UsageError(CUSTOM_OPS_BY_PATH)
    options = api.runtime_options(threads=args.threads, provider=args.ep, huge_pages=huge_pages,
                                  allow_custom_ops=args.allow_custom_ops)
    return api.load(resolved, options)


def _generation_config(args: argparse.Namespace):
    try:
        sampling = api.SamplingParams(args.temperature, args.top_k, args.top_p, args.min_p, args.repetition_penalty,
                                  args.seed)
    except ValueError as e:  # the message starts with the field: "top_p must be in (0, 1], got 2.0"
        option = "--" + str(e).split()[0].replace("_", "-")
        raise UsageError(f"argument {option}: {e}") from None
    return api.GenerationConfig(max_new_tokens=args.max_tokens, sampling=sampling, stop=tuple(args.stop or ()),
                            truncate=args.truncate, show_special_tokens=args.show_special_tokens)


def _prompt(args: argparse.Namespace) -> str | None:
    """--prompt, else piped stdin (read once the model is found, as UTF-8: other bytes become U+FFFD); None
    means a chat in the terminal."""
    if args.prompt is not None or _interactive():
        return args.prompt
    text = stdin_text()
    if not text.strip():
        raise UsageError(NO_PROMPT)
    return text


def _prompt_text(text: str) -> str:
    """An argparse type: a prompt with something in it (bytes that are not UTF-8 become U+FFFD)."""
    text = argv_text(text)
    if not text.strip():
        raise argparse.ArgumentTypeError("the prompt is empty")
    return text


def _stats_line(stats) -> str:
    return (f"{stats.prompt_tokens} prompt tokens, {stats.generated_tokens} generated ({stats.finish_reason}) · "
            f"TTFT {stats.ttft_s * 1000:.0f} ms · prefill {stats.prefill_tps:.1f} tok/s · "
            f"decode {stats.decode_tps:.1f} tok/s · peak {human_size(stats.peak_rss_bytes)}")


def _stream(events, out, err, show_reasoning: bool):
    """Render events: reasoning dimmed, answer plain; returns the final stats."""
    stats, last_kind = None, None
    for event in events:
        if event.kind == "done":
            stats = event.stats
            continue
        if event.kind == "reasoning" and not show_reasoning:
            continue
        if last_kind == "reasoning" and event.kind == "answer":
            out.print("\n", end="")
        out.print(event.text, end="", style="dim" if event.kind == "reasoning" else None,
                  markup=False, highlight=False, soft_wrap=True)
        last_kind = event.kind
    out.print()
    if stats is not None:
        err.print(_stats_line(stats), style="dim", markup=False, highlight=False)
    return stats


def _chat(session, config, out, err, show_reasoning: bool) -> None:
    """Interactive loop: /reset, /exit; Ctrl-C stops the current answer, Ctrl-C or Ctrl-D at the prompt quits."""
    import threading

    err.print("Chat: /reset clears the history, /exit (or Ctrl-D) quits, Ctrl-C stops an answer.", style="dim")
    if hasattr(sys.stdin, "reconfigure"):  # a typed byte that is not text becomes U+FFFD, not a traceback
        sys.stdin.reconfigure(errors="replace")
    while True:
        try:
            line = input("> ")
        except (EOFError, KeyboardInterrupt):
            out.print()
            return
        text = argv_text(line).strip()
        if not text:
            continue
        if text in ("/exit", "/quit", "/bye"):
            return
        if text == "/reset":
            session.reset()
            err.print("history cleared", style="dim")
            continue
        cancel = threading.Event()
        events = session.send(text, config, cancel)
        try:
            _stream(events, out, err, show_reasoning)
        except KeyboardInterrupt:
            events.close()
            out.print()
            err.print("(stopped)", style="dim")


def _run_arguments(parser: CommandParser) -> None:
    parser.add_argument("-p", "--prompt", type=_prompt_text, metavar="TEXT", help="One-shot prompt (else piped stdin, else a chat).")
    parser.add_argument("--system", type=argv_text, metavar="TEXT", help="System prompt.")
    parser.add_argument("-n", "--max-tokens", type=whole_number(1), default=1024, metavar="N",
                        help="Most tokens to generate (default: %(default)s).")
    parser.add_argument("-t", "--temperature", type=number(0.0), default=0.6, metavar="T",
                        help="Sampling temperature; 0 is greedy (default: %(default)s).")
    parser.add_argument("--top-k", type=whole_number(0), default=0, metavar="K",
                        help="Sample from the K most likely tokens; 0 is all (default: %(default)s).")
    parser.add_argument("--top-p", type=number(), default=0.95, metavar="P",
                        help="Nucleus sampling, in (0, 1] (default: %(default)s).")
    parser.add_argument("--min-p", type=number(), default=0.0, metavar="P",
                        help="Drop tokens less likely than P times the most likely, in [0, 1) (default: %(default)s).")
    parser.add_argument("--repetition-penalty", type=number(), default=1.0, metavar="X",
                        help="Above 1 discourages repeating tokens (default: %(default)s).")
    parser.add_argument("--seed", type=whole_number(0, MAX_SEED), metavar="N",
                        help=f"Seed for reproducible sampling, 0 to {MAX_SEED}.")
    parser.add_argument("--stop", type=argv_text, action="append", metavar="TEXT",
                        help="Stop at this text (repeatable).")
    parser.add_argument("--truncate", action="store_true", help="Drop the oldest prompt tokens if too long.")
    parser.add_argument("--hide-reasoning", action="store_true", help="Do not print the reasoning.")
    parser.add_argument("--show-special-tokens", action="store_true",
                        help="Print BOS/EOS/role tokens the model emits (hidden by default).")
    _model_arguments(parser)


def run_cmd(args: argparse.Namespace) -> None:
    """Answer one prompt or chat; the model is resolved before the prompt is read."""
    config = _generation_config(args)
    if args.json and args.prompt is None and _interactive():
        raise UsageError("--json needs --prompt or piped input")
    resolved = _resolve(args)
    prompt = _prompt(args)
    err = console(stderr=True)
    loaded = _open(resolved, args)
    _print_notes(loaded, err)
    messages = ([{"role": "system", "content": args.system}] if args.system else [])
    if args.json:
        result = api.generate(loaded, [*messages, {"role": "user", "content": prompt}], config)
        emit_json({"model": {**loaded.describe(), "alias": resolved.alias, "variant": resolved.variant_id},
                   "text": result.text, "reasoning": result.reasoning, "stats": result.stats.as_dict()})
        return
    err.print(f"loaded {resolved.variant_id or loaded.folder} in {loaded.load_seconds:.2f} s "
              f"({', '.join(sorted(set(loaded.pipeline.providers)))})", style="dim", markup=False)
    out = console()
    session = api.chat(loaded, args.system)
    show_reasoning = not args.hide_reasoning
    if prompt is not None:
        try:
            _stream(session.send(prompt, config), out, err, show_reasoning)
        except KeyboardInterrupt:
            out.print()
            sys.exit(130)
        return
    _chat(session, config, out, err, show_reasoning)


def _print_notes(loaded, err) -> None:
    """What loading had to work around (a provider that failed, the CPU taking over), on stderr."""
    for note in loaded.pipeline.report.notes:
        err.print(note, style="yellow", markup=False)


def _bench_arguments(parser: CommandParser) -> None:
    parser.add_argument("--prompt-tokens", type=number_list(MAX_CONTEXT), default="32,512", metavar="N,N",
                        help="Prompt lengths, comma separated (default: %(default)s).")
    parser.add_argument("--new-tokens", type=whole_number(2, MAX_CONTEXT), default=64, metavar="N",
                        help="Tokens generated per run (default: %(default)s).")
    parser.add_argument("--repeat", type=whole_number(1, MAX_RUNS), default=3, metavar="N",
                        help="Timed runs per prompt length (default: %(default)s).")
    parser.add_argument("--warmup", type=whole_number(0, MAX_RUNS), default=1, metavar="N",
                        help="Untimed runs first (default: %(default)s).")
    _model_arguments(parser)


def _check_bench_fits(loaded, prompt_tokens: tuple[int, ...], new_tokens: int) -> None:
    """The longest prompt and the new tokens must fit the context; said in bench's own options (the runtime's
    message names run's)."""
    longest = max(prompt_tokens)
    if longest + new_tokens > loaded.context_length:
        raise PackageError(
            f"{loaded.folder}: --prompt-tokens {longest} plus --new-tokens {new_tokens} need {longest + new_tokens} "
            f"positions, but the context holds {loaded.context_length}; lower --prompt-tokens or --new-tokens"
        )


def bench_cmd(args: argparse.Namespace) -> None:
    """Load twice (cold, then warm with huge pages) and time generation at each prompt length."""
    json_out = args.json
    err = console(stderr=True)
    resolved = _resolve(args)
    # The first (cold) load only measures loading; the second is the one timed, with huge pages.
    loaded = _open(resolved, args, huge_pages=False)
    _check_bench_fits(loaded, args.prompt_tokens, args.new_tokens)
    first_load = loaded.load_seconds
    options = replace(loaded.pipeline.options, huge_pages=True)
    del loaded  # load again: the second load is the warm one (files cached, compiled NPU graphs reused)
    loaded = api.load(resolved, options)
    _print_notes(loaded, err)

    def show(run) -> None:
        if not json_out:
            err.print(f"  prompt {run.prompt_tokens}: TTFT {run.ttft_s * 1000:.0f} ms, "
                      f"decode {run.decode_tps:.1f} tok/s", style="dim")

    result = api.bench(loaded, api.BenchConfig(args.prompt_tokens, args.new_tokens, args.repeat, args.warmup), show)
    data = result.as_dict()
    data["model"].update(alias=resolved.alias, variant=resolved.variant_id, load_seconds_first=round(first_load, 3),
                         load_seconds_warm=round(loaded.load_seconds, 3))
    if json_out:
        emit_json(data)
        return
    out = console()
    huge = data["model"]["huge_pages"]
    moved = (f"; {human_size(huge['collapsed_bytes'])} moved to huge pages in {huge['seconds']:.1f} s"
             if huge.get("collapsed_bytes") else "")
    out.print(f"{resolved.variant_id or loaded.folder}: loaded in {first_load:.2f} s (again: "
              f"{loaded.load_seconds:.2f} s{moved}) on "
              f"{', '.join(sorted(set(loaded.pipeline.providers)))}; peak memory "
              f"{human_size(result.peak_rss_bytes)}", markup=False)
    for row in data["results"]:
        out.print(f"prompt {row['prompt_tokens']:>5}: TTFT {row['ttft_s']['median'] * 1000:7.1f} ms  "
                  f"prefill {row['prefill_tps']['median']:8.1f} tok/s  decode {row['decode_tps']['median']:6.2f} "
                  f"tok/s ({row['decode_tps']['min']:.2f}-{row['decode_tps']['max']:.2f})  "
                  f"overhead {row['python_overhead_pct']:.1f} %", markup=False)


COMMANDS = (
    Command("run", "Chat with a model, or answer one prompt (--prompt or piped stdin), streaming.",
            _run_arguments, run_cmd,
            "Reasoning is shown dimmed, apart from the answer; time to first token and tokens/s follow on "
            "stderr. A model that is not downloaded yet is fetched after you agree (or with --yes)."),
    Command("bench", "Measure time to first token, prefill and decode tokens/s, peak memory and load time.",
            _bench_arguments, bench_cmd,
            "The model is loaded twice: the first (cold) load is timed alone, the second one runs the benchmark."),
)
