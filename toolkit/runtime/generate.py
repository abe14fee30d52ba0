"""Generation in three layers, as in mlx-lm: tokens, then events, then a joined result.

- `generate_step(model, prompt_ids, ...)` yields a `Step` per token (prefill, then one decode per token):
  the token id and what the statistics need about the prompt that led to it.
- `stream_generate(model, prompt, ...)` adds detokenizing, stop tokens and strings, the reasoning
  split and timing; it yields `GenerationEvent`s and ends with one of kind "done" carrying stats.
- `generate(...)` joins the events into a `GenerationResult`.
The CLI and the server both consume `stream_generate`.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import numpy as np

from catalog.errors import PackageError
from toolkit.runtime.detokenizer import StreamingDetokenizer
from toolkit.runtime.model import LocalModel
from toolkit.runtime.sampler import SamplingParams, sample
from toolkit.runtime.textstream import ReasoningSplitter, StopStrings


@dataclass(frozen=True)
class GenerationConfig:
    """What to generate: how many tokens, how to sample, when to stop."""

    max_new_tokens: int = 512
    sampling: SamplingParams = field(default_factory=SamplingParams)
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    ignore_eos: bool = False
    truncate: bool = False
    reuse_cache: bool = True
    show_special_tokens: bool = False  # BOS/EOS/role tokens a model emits are not text unless asked for


@dataclass
class GenerationStats:
    """Timings of one generation. decode_tps = (N-1) / time of tokens 2..N (the first token is prefill's)."""

    prompt_tokens: int = 0
    reused_tokens: int = 0
    generated_tokens: int = 0
    ttft_s: float = 0.0
    prefill_tps: float = 0.0
    decode_tps: float = 0.0
    decode_s: float = 0.0
    total_s: float = 0.0
    peak_rss_bytes: int = 0
    finish_reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class GenerationEvent:
    """One piece of the stream: kind is "reasoning", "answer" or "done" (the last, with stats)."""

    kind: str
    text: str = ""
    stats: GenerationStats | None = None


@dataclass
class GenerationResult:
    text: str
    reasoning: str
    stats: GenerationStats


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far (the `resource` module does not exist on Windows)."""
    if sys.platform == "win32":
        return _windows_peak_working_set()
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _windows_peak_working_set() -> int:
    import ctypes
    from ctypes import wintypes

    class Counters(ctypes.Structure):
        _fields_ = [("cb", wintypes.DWORD), ("PageFaultCount", wintypes.DWORD)] + [
            (name, ctypes.c_size_t)
            for name in (
                "PeakWorkingSetSize", "WorkingSetSize", "QuotaPeakPagedPoolUsage", "QuotaPagedPoolUsage",
                "QuotaPeakNonPagedPoolUsage", "QuotaNonPagedPoolUsage", "PagefileUsage", "PeakPagefileUsage",
            )
        ]

    counters = Counters(cb=ctypes.sizeof(Counters))
    process = ctypes.windll.kernel32.GetCurrentProcess()
    if not ctypes.windll.psapi.GetProcessMemoryInfo(process, ctypes.byref(counters), counters.cb):
        return 0
    return int(counters.PeakWorkingSetSize)


def _fit_to_context(model: LocalModel, prompt_ids: list[int], config: GenerationConfig) -> list[int]:
    """The prompt when it fits the context with the new tokens; else an error, or its tail when truncating."""
    room = model.context_length - config.max_new_tokens
    if len(prompt_ids) > room:
        if not config.truncate or room <= 0:
            raise PackageError(
                f"{model.folder}: the prompt has {len(prompt_ids)} tokens and {config.max_new_tokens} new tokens "
                f"were asked for, but the context holds {model.context_length}; shorten the prompt, lower "
                f"--max-tokens, or pass --truncate to drop the oldest tokens"
            )
        prompt_ids = prompt_ids[len(prompt_ids) - room:]
    return prompt_ids


class Step(NamedTuple):
    """One generated token and what the statistics need to know about the prompt that led to it.

    `finish_reason` is "length" on the last token the limit allows, and "stop" on a final record whose token is
    a stop token: that token is not output, it only says why generation ended (and carries the prompt figures
    when it is the first token)."""

    token: int
    prompt_tokens: int  # after truncation
    reused_tokens: int  # leading prompt tokens whose KV entries were kept from the previous generation
    prefill_s: float  # seconds the prompt's runs took
    first_token_at: float  # time.perf_counter() when the first token was sampled
    finish_reason: str | None = None


def generate_step(
    model: LocalModel,
    prompt_ids: Sequence[int],
    config: GenerationConfig,
    cancel: threading.Event | None = None,
) -> Iterator[Step]:
    """Yield a `Step` per generated token until a stop token (a last record with finish_reason "stop"), the token
    limit or `cancel` is set. The KV entries of the longest prefix the model still holds are reused."""
    ids = _fit_to_context(model, list(prompt_ids), config)
    pipeline = model.pipeline
    kv = pipeline.kv
    stops = set() if config.ignore_eos else set(model.eos_ids)
    stops.update(config.stop_token_ids)
    with pipeline.busy():  # background work (huge pages) waits while a generation runs
        rng = np.random.default_rng(config.sampling.seed)
        history: list[int] = list(ids)
        reuse = kv.reusable_prefix(ids) if config.reuse_cache else 0
        kv.rewind(reuse)
        pipeline.ensure_capacity(len(ids) + config.max_new_tokens)  # one allocation for the whole request
        start = time.perf_counter()
        logits = pipeline.prefill(ids[reuse:])
        prefill_s = time.perf_counter() - start
        first_token_at = 0.0
        for n in range(config.max_new_tokens):
            token = sample(logits, config.sampling, history, rng)
            if n == 0:
                first_token_at = time.perf_counter()
            if token in stops:
                yield Step(token, len(ids), reuse, prefill_s, first_token_at, "stop")
                return
            history.append(token)
            at_limit = n + 1 == config.max_new_tokens
            yield Step(token, len(ids), reuse, prefill_s, first_token_at, "length" if at_limit else None)
            if cancel is not None and cancel.is_set():
                return
            if not at_limit:
                logits = pipeline.decode(token)


def _hidden_tokens(model: LocalModel, stops: Sequence[str]) -> set[int]:
    """Control tokens that produce no text: every special token but those a reasoning marker or a stop string
    contains (a stop such as "\n<｜User｜>" must still see the role token)."""
    m = model.markers
    markers = [s for s in (m.reasoning_start, m.reasoning_end, *stops) if s]
    return {i for i, text in model.tokenizer.control_tokens().items() if not any(text in s for s in markers)}


def stream_generate(
    model: LocalModel,
    prompt: str | list[dict[str, Any]] | Sequence[int],
    config: GenerationConfig | None = None,
    cancel: threading.Event | None = None,
) -> Iterator[GenerationEvent]:
    """Events for a prompt given as chat messages, plain text (chat template applied) or token ids."""
    config = config or GenerationConfig()
    tok = model.tokenizer
    if isinstance(prompt, str):
        prompt = [{"role": "user", "content": prompt}]
    if prompt and isinstance(prompt[0], dict):
        text = tok.render_chat(list(prompt))
        ids = tok.encode_chat(list(prompt))
        opens = model.prompt_opens_reasoning(text)
    else:
        ids, opens = [int(t) for t in prompt], False
    m = model.markers
    splitter = ReasoningSplitter(m.reasoning_start, m.reasoning_end, in_reasoning=opens)
    stopper = StopStrings([*m.stop, *config.stop])
    detok = StreamingDetokenizer(tok)
    hidden = set() if config.show_special_tokens else _hidden_tokens(model, stopper.stops)
    stats = GenerationStats()
    last: Step | None = None
    start = time.perf_counter()
    finish, stop_string = "length", False
    try:
        for step in generate_step(model, ids, config, cancel):
            last = step
            if step.finish_reason == "stop":  # a stop token: not text, and the last record
                continue
            stats.generated_tokens += 1
            if step.token in hidden:
                continue
            safe, stop_string = stopper.feed(detok.add(step.token))
            for kind, piece in splitter.feed(safe):
                yield GenerationEvent(kind, piece)
            if stop_string:
                break
        if stop_string or (last is not None and last.finish_reason == "stop"):
            finish = "stop"
        elif cancel is not None and cancel.is_set():
            finish = "cancelled"
        if not stop_string:  # text held back for a possible stop string or an unfinished character
            safe, stop_string = stopper.feed(detok.flush())
            rest = "" if stop_string else stopper.flush()
            for kind, piece in splitter.feed(safe + rest):
                yield GenerationEvent(kind, piece)
        for kind, piece in splitter.flush():
            yield GenerationEvent(kind, piece)
    finally:
        end = time.perf_counter()
        stats.prompt_tokens = last.prompt_tokens if last is not None else len(ids)
        if last is not None:
            stats.reused_tokens = last.reused_tokens
            stats.ttft_s = last.first_token_at - start
            processed = stats.prompt_tokens - stats.reused_tokens
            stats.prefill_tps = processed / last.prefill_s if last.prefill_s else 0.0
            stats.decode_s = end - last.first_token_at
            if stats.generated_tokens > 1:
                stats.decode_tps = (stats.generated_tokens - 1) / max(stats.decode_s, 1e-9)
        stats.total_s = end - start
        stats.peak_rss_bytes = peak_rss_bytes()
        stats.finish_reason = finish
    yield GenerationEvent("done", stats=stats)


def generate(
    model: LocalModel,
    prompt: str | list[dict[str, Any]] | Sequence[int],
    config: GenerationConfig | None = None,
) -> GenerationResult:
    """The whole reply at once: answer text, reasoning text and stats."""
    parts: dict[str, list[str]] = {"answer": [], "reasoning": []}
    stats = GenerationStats()
    for event in stream_generate(model, prompt, config):
        if event.kind == "done":
            stats = event.stats or stats
        else:
            parts[event.kind].append(event.text)
    return GenerationResult("".join(parts["answer"]), "".join(parts["reasoning"]), stats)
