"""Choosing the next token from logits: pure functions over numpy arrays.

`SamplingParams` holds the settings; `sample(logits, params, history, rng)` applies, in order,
repetition penalty, temperature, top-k, top-p, min-p, then draws (or takes the argmax when
greedy). Every step is a separate function so each can be tested on small tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SamplingParams:
    """Generation settings. temperature 0 means greedy."""

    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if not 0 <= self.min_p < 1:
            raise ValueError(f"min_p must be in [0, 1), got {self.min_p}")
        if self.repetition_penalty <= 0:
            raise ValueError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def apply_repetition_penalty(logits: np.ndarray, history: Sequence[int], penalty: float) -> np.ndarray:
    """CTRL-style penalty: positive logits of seen tokens divided by `penalty`, negative ones multiplied."""
    if penalty == 1.0 or len(history) == 0:
        return logits
    ids = np.unique(np.asarray(history, dtype=np.int64))
    out = logits.copy()
    seen = out[ids]
    out[ids] = np.where(seen > 0, seen / penalty, seen * penalty)
    return out


def apply_top_k(logits: np.ndarray, k: int) -> np.ndarray:
    """Keep the k largest logits; the rest become -inf."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = np.partition(logits, -k)[-k]
    return np.where(logits < kth, -np.inf, logits)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax in float64."""
    x = logits.astype(np.float64)
    x = np.exp(x - np.max(x))
    return x / x.sum()


def apply_top_p(logits: np.ndarray, p: float) -> np.ndarray:
    """Keep the smallest set of most likely tokens whose probabilities add up to at least p."""
    if p >= 1.0:
        return logits
    probs = softmax(logits)
    order = np.argsort(-probs, kind="stable")
    cumulative = np.cumsum(probs[order])
    keep_count = int(np.searchsorted(cumulative, p) + 1)
    out = np.full_like(logits, -np.inf)
    kept = order[:keep_count]
    out[kept] = logits[kept]
    return out


def apply_min_p(logits: np.ndarray, min_p: float) -> np.ndarray:
    """Drop tokens whose probability is below min_p times the top token's probability."""
    if min_p <= 0:
        return logits
    probs = softmax(logits)
    return np.where(probs < min_p * probs.max(), -np.inf, logits)


def sample(
    logits: np.ndarray,
    params: SamplingParams,
    history: Sequence[int] = (),
    rng: np.random.Generator | None = None,
) -> int:
    """The next token id for one row of logits."""
    logits = apply_repetition_penalty(logits, history, params.repetition_penalty)
    if params.greedy:
        return int(np.argmax(logits))
    logits = logits.astype(np.float64) / params.temperature
    logits = apply_top_k(logits, params.top_k)
    logits = apply_top_p(logits, params.top_p)
    logits = apply_min_p(logits, params.min_p)
    probs = softmax(logits)
    rng = rng if rng is not None else np.random.default_rng(params.seed)
    return int(rng.choice(probs.shape[-1], p=probs))
