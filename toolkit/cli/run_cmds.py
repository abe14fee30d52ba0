"""`toolkit run` (chat, one-shot, piped) and `toolkit bench`: parse, call toolkit.runtime, render."""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Annotated

import typer

from toolkit.cli.output import console, emit_json, human_size

JsonOpt = Annotated[bool, typer.Option("--json", help="Write JSON for scripts.")]
DeviceOpt = Annotated[str | None, typer.Option("--device", help="Prefer npu, gpu or cpu variants.")]
VariantOpt = Annotated[str | None, typer.Option("--variant", help="Use this variant id.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Download without asking when the model is missing.")]
ThreadsOpt = Annotated[int | None, typer.Option("--threads", help="CPU threads per stage (default: physical cores).")]
EpOpt = Annotated[str | None, typer.Option("--ep", help="Force an execution provider for every stage (cpu, qnn...).")]
MirrorOpt = Annotated[str | None, typer.Option("--mirror", help="Download from this toolkit mirror first "
                                                                "(default: $TOOLKIT_MIRROR).")]


def _load(model: str, device: str | None, variant: str | None, yes: bool, threads: int | None, ep: str | None,
          quiet: bool, mirror: str | None = None, huge_pages: bool = True):
    """Resolve (downloading if allowed) and load a model; returns the LocalModel and how it was found."""
    from catalog.loader import Catalog  # noqa: F401  (fail early if the catalog is broken)
    from toolkit.cli.catalog_cmds import device_override
    from toolkit.runtime.model import LocalModel
    from toolkit.runtime.pipeline import RuntimeOptions
    from toolkit.runtime.resolve import resolve_model

    def confirm(question: str) -> bool:
        if yes:
            return True
        if not sys.stdin.isatty():
            return False
        return typer.confirm(question, default=True, err=True)

    progress = None
    if not quiet:
        from toolkit.download.render import for_terminal

        progress = for_terminal()
    resolved = resolve_model(model, device_override(device), variant, confirm, progress, mirror)
    from toolkit import paths

    options = RuntimeOptions(threads=threads, provider=ep, ep_cache_dir=paths.home() / "ep-cache", huge_pages=huge_pages)
    return LocalModel(resolved.folder, options, resolved.markers), resolved


def _generation_config(max_tokens, temperature, top_k, top_p, min_p, repetition_penalty, seed, stop, truncate):
    from toolkit.runtime.generate import GenerationConfig
    from toolkit.runtime.sampler import SamplingParams

    try:
        sampling = SamplingParams(temperature, top_k, top_p, min_p, repetition_penalty, seed)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from e
    return GenerationConfig(max_new_tokens=max_tokens, sampling=sampling, stop=tuple(stop or ()), truncate=truncate)


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
    while True:
        try:
            line = input("> ")
        except (EOFError, KeyboardInterrupt):
            out.print()
            return
        text = line.strip()
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


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run_cmd(
        model: Annotated[str, typer.Argument(help="A catalog alias (e.g. deepseek_r1_1_5) or a package folder.")],
        prompt: Annotated[str | None, typer.Option("--prompt", "-p", help="One-shot prompt (else stdin or chat).")] = None,
        system: Annotated[str | None, typer.Option("--system", help="System prompt.")] = None,
        max_tokens: Annotated[int, typer.Option("--max-tokens", "-n", min=1, help="Most tokens to generate.")] = 1024,
        temperature: Annotated[float, typer.Option("--temperature", "-t", min=0.0, help="0 is greedy.")] = 0.6,
        top_k: Annotated[int, typer.Option("--top-k", min=0)] = 0,
        top_p: Annotated[float, typer.Option("--top-p")] = 0.95,
        min_p: Annotated[float, typer.Option("--min-p")] = 0.0,
        repetition_penalty: Annotated[float, typer.Option("--repetition-penalty")] = 1.0,
        seed: Annotated[int | None, typer.Option("--seed")] = None,
        stop: Annotated[list[str] | None, typer.Option("--stop", help="Stop at this text (repeatable).")] = None,
        truncate: Annotated[bool, typer.Option("--truncate", help="Drop the oldest prompt tokens if too long.")] = False,
        hide_reasoning: Annotated[bool, typer.Option("--hide-reasoning", help="Do not print the reasoning.")] = False,
        device: DeviceOpt = None, variant: VariantOpt = None, yes: YesOpt = False, threads: ThreadsOpt = None,
        ep: EpOpt = None, mirror: MirrorOpt = None, json_out: JsonOpt = False,
    ) -> None:
        """Chat with a model, or answer one prompt (--prompt or piped stdin), streaming reasoning and answer."""
        from toolkit.runtime.chat import ChatSession
        from toolkit.runtime.generate import generate

        if prompt is None and not sys.stdin.isatty():
            prompt = sys.stdin.read()
        if prompt is not None and not prompt.strip():
            raise typer.BadParameter("the prompt is empty", param_hint="--prompt")
        config = _generation_config(max_tokens, temperature, top_k, top_p, min_p, repetition_penalty, seed, stop,
                                    truncate)
        err = console(stderr=True)
        loaded, resolved = _load(model, device, variant, yes, threads, ep, quiet=json_out, mirror=mirror)
        for note in loaded.pipeline.report.notes:
            err.print(note, style="yellow", markup=False)
        messages = ([{"role": "system", "content": system}] if system else [])
        if json_out:
            if prompt is None:
                raise typer.BadParameter("--json needs --prompt or piped input")
            result = generate(loaded, [*messages, {"role": "user", "content": prompt}], config)
            emit_json({"model": {**loaded.describe(), "alias": resolved.alias, "variant": resolved.variant_id},
                       "text": result.text, "reasoning": result.reasoning, "stats": result.stats.as_dict()})
            return
        err.print(f"loaded {resolved.variant_id or loaded.folder} in {loaded.load_seconds:.2f} s "
                  f"({', '.join(sorted(set(loaded.pipeline.providers)))})", style="dim", markup=False)
        out = console()
        session = ChatSession(loaded, system)
        if prompt is not None:
            try:
                _stream(session.send(prompt, config), out, err, not hide_reasoning)
            except KeyboardInterrupt:
                out.print()
                raise typer.Exit(130) from None
            return
        _chat(session, config, out, err, not hide_reasoning)

    @app.command("bench")
    def bench_cmd(
        model: Annotated[str, typer.Argument(help="A catalog alias or a package folder.")],
        prompt_tokens: Annotated[str, typer.Option("--prompt-tokens", help="Prompt lengths, comma separated.")] = "32,512",
        new_tokens: Annotated[int, typer.Option("--new-tokens", min=2, help="Tokens generated per run.")] = 64,
        repeat: Annotated[int, typer.Option("--repeat", min=1, help="Timed runs per prompt length.")] = 3,
        warmup: Annotated[int, typer.Option("--warmup", min=0, help="Untimed runs first.")] = 1,
        device: DeviceOpt = None, variant: VariantOpt = None, yes: YesOpt = False, threads: ThreadsOpt = None,
        ep: EpOpt = None, mirror: MirrorOpt = None, json_out: JsonOpt = False,
    ) -> None:
        """Time to first token, prefill and decode tokens/s, peak memory and load time."""
        from toolkit.runtime.bench import BenchConfig, run_bench

        try:
            lengths = tuple(int(x) for x in prompt_tokens.split(",") if x.strip())
        except ValueError:
            raise typer.BadParameter("expected numbers like 32,512", param_hint="--prompt-tokens") from None
        if not lengths or min(lengths) < 1:
            raise typer.BadParameter("expected positive numbers", param_hint="--prompt-tokens")
        err = console(stderr=True)
        # The first (cold) load only measures loading; the second is the one timed, with huge pages.
        loaded, resolved = _load(model, device, variant, yes, threads, ep, quiet=json_out, mirror=mirror,
                                 huge_pages=False)
        first_load = loaded.load_seconds
        options, markers = replace(loaded.pipeline.options, huge_pages=True), loaded.markers
        del loaded  # load again: the second load is the warm one (files cached, compiled NPU graphs reused)
        from toolkit.runtime.model import LocalModel

        loaded = LocalModel(resolved.folder, options, markers)

        def show(run) -> None:
            if not json_out:
                err.print(f"  prompt {run.prompt_tokens}: TTFT {run.ttft_s * 1000:.0f} ms, "
                          f"decode {run.decode_tps:.1f} tok/s", style="dim")

        result = run_bench(loaded, BenchConfig(lengths, new_tokens, repeat, warmup), show)
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
