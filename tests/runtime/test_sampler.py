"""Sampling decisions as tables: each filter alone, then the whole chain with a seed."""

from __future__ import annotations

import numpy as np
import pytest

from toolkit.runtime.sampler import (
    SamplingParams,
    apply_min_p,
    apply_repetition_penalty,
    apply_top_k,
    apply_top_p,
    sample,
)

LOGITS = np.log(np.array([0.5, 0.25, 0.15, 0.07, 0.03], dtype=np.float32))


def _kept(logits: np.ndarray) -> list[int]:
    return [i for i, v in enumerate(logits) if np.isfinite(v)]


@pytest.mark.parametrize(("k", "kept"), [(0, [0, 1, 2, 3, 4]), (1, [0]), (3, [0, 1, 2]), (9, [0, 1, 2, 3, 4])])
def test_top_k(k, kept):
    assert _kept(apply_top_k(LOGITS, k)) == kept


@pytest.mark.parametrize(("p", "kept"), [(1.0, [0, 1, 2, 3, 4]), (0.5, [0]), (0.6, [0, 1]), (0.9, [0, 1, 2]),
                                          (0.95, [0, 1, 2, 3])])
def test_top_p_keeps_smallest_set_reaching_p(p, kept):
    assert _kept(apply_top_p(LOGITS, p)) == kept


@pytest.mark.parametrize(("min_p", "kept"), [(0.0, [0, 1, 2, 3, 4]), (0.2, [0, 1, 2]), (0.45, [0, 1]), (0.9, [0])])
def test_min_p_relative_to_top_token(min_p, kept):
    assert _kept(apply_min_p(LOGITS, min_p)) == kept


def test_repetition_penalty_divides_positive_and_multiplies_negative():
    logits = np.array([2.0, -2.0, 1.0], dtype=np.float32)
    out = apply_repetition_penalty(logits, [0, 1, 1], 2.0)
    assert out.tolist() == [1.0, -4.0, 1.0]
    assert logits.tolist() == [2.0, -2.0, 1.0]  # input untouched


def test_greedy_takes_argmax_and_penalty_can_change_it():
    logits = np.array([0.1, 3.0, 2.9], dtype=np.float32)
    assert sample(logits, SamplingParams()) == 1
    assert sample(logits, SamplingParams(repetition_penalty=1.5), history=[1]) == 2


def test_seeded_sampling_is_reproducible_and_follows_probabilities():
    params = SamplingParams(temperature=1.0, seed=7)
    rng = np.random.default_rng(7)
    draws = [sample(LOGITS, params, rng=rng) for _ in range(4000)]
    again = [sample(LOGITS, params, rng=np.random.default_rng(7)) for _ in range(1)]
    assert again[0] == draws[0]
    freq = np.bincount(draws, minlength=5) / len(draws)
    np.testing.assert_allclose(freq, np.exp(LOGITS), atol=0.03)


def test_filters_restrict_what_can_be_drawn():
    params = SamplingParams(temperature=5.0, top_k=2, seed=1)
    rng = np.random.default_rng(1)
    assert {sample(LOGITS, params, rng=rng) for _ in range(300)} == {0, 1}


@pytest.mark.parametrize("bad", [dict(temperature=-1), dict(top_p=0), dict(top_p=1.5), dict(min_p=1.0),
                                 dict(top_k=-1), dict(repetition_penalty=0)])
def test_invalid_settings_are_rejected(bad):
    with pytest.raises(ValueError):
        SamplingParams(**bad)
