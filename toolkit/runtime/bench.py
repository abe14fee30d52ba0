"""`toolkit bench`: time to first token, prefill and decode speed, memory and load time for a package.

Prompts are random token ids (seeded, ordinary vocabulary only) so every engine sees the same ids;
decoding is greedy and ignores end-of-sequence so each run produces exactly `new_tokens` tokens.
Each prompt length gets `warmup` untimed runs and `repeat` timed ones; medians with min/max are reported.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from toolkit.runtime.generate import GenerationConfig, generate_step, peak_rss_bytes
from toolkit.runtime.model import LocalModel


@dataclass(frozen=True)
class BenchConfig:
    prompt_tokens: tuple[int, ...] = (32, 512)
    new_tokens: int = 64
    repeat: int = 3
    warmup: int = 1
    seed: int = 0


@dataclass
class BenchRun:
    prompt_tokens: int
    ttft_s: float
    prefill_tps: float
    decode_tps: float
    decode_s: float
    ort_share: float  # share of decode time spent inside onnxruntime; 1 - ort_share is our overhead


@dataclass
class BenchResult:
    model: dict[str, Any]
    runs: list[BenchRun] = field(default_factory=list)
    peak_rss_bytes: int = 0

    def summary(self) -> list[dict[str, Any]]:
        """Per prompt length: median, min and max of each metric."""
        out = []
        for n in sorted({r.prompt_tokens for r in self.runs}):
            rows = [r for r in self.runs if r.prompt_tokens == n]
            entry: dict[str, Any] = {"prompt_tokens": n, "runs": len(rows)}
            for key in ("ttft_s", "prefill_tps", "decode_tps", "ort_share"):
                values = [getattr(r, key) for r in rows]
                entry[key] = {"median": round(statistics.median(values), 4), "min": round(min(values), 4),
                              "max": round(max(values), 4)}
            entry["python_overhead_pct"] = round(100 * (1 - entry["ort_share"]["median"]), 2)
            out.append(entry)
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "results": self.summary(), "peak_rss_bytes": self.peak_rss_bytes}


def bench_prompt(model: LocalModel, n: int, seed: int) -> list[int]:
    """`n` random ids from the ordinary vocabulary (below every special token)."""
    specials = [t for t in model.eos_ids if t is not None]
    high = min([model.tokenizer.vocab_size, *(specials or [model.tokenizer.vocab_size])])
    rng = np.random.default_rng(seed + n)
    return [int(t) for t in rng.integers(10, max(11, high), n)]


def run_once(model: LocalModel, ids: list[int], new_tokens: int) -> BenchRun:
    """One timed generation (no KV reuse) of exactly `new_tokens` greedy tokens."""
    config = GenerationConfig(max_new_tokens=new_tokens, ignore_eos=True, reuse_cache=False)
    pipeline = model.pipeline
    start = time.perf_counter()
    first = None
    count = 0
    ort_at_first = 0.0
    prefill_s = 0.0
    for step in generate_step(model, ids, config):
        count += 1
        if first is None:
            first = time.perf_counter()
            ort_at_first = pipeline.ort_seconds
            prefill_s = step.prefill_s
    end = time.perf_counter()
    decode_s = end - first if first is not None else 0.0
    ort_decode = pipeline.ort_seconds - ort_at_first
    return BenchRun(
        prompt_tokens=len(ids),
        ttft_s=(first or end) - start,
        prefill_tps=len(ids) / prefill_s if prefill_s > 0 else 0.0,
        decode_tps=(count - 1) / decode_s if count > 1 and decode_s > 0 else 0.0,
        decode_s=decode_s,
        ort_share=ort_decode / decode_s if decode_s > 0 else 1.0,
    )


def run_bench(model: LocalModel, config: BenchConfig, on_run=None) -> BenchResult:
    """Warm-up and timed runs for each prompt length; `on_run(run)` sees each timed run as it finishes."""
    model.wait_for_huge_pages()  # time the model as it runs once loading has settled (see hugepages.py)
    result = BenchResult(model=model.describe())
    for n in config.prompt_tokens:
        ids = bench_prompt(model, n, config.seed)
        for _ in range(config.warmup):
            run_once(model, ids, min(config.new_tokens, 8))
        for _ in range(config.repeat):
            run = run_once(model, ids, config.new_tokens)
            result.runs.append(run)
            if on_run is not None:
                on_run(run)
    result.peak_rss_bytes = peak_rss_bytes()
    return result
