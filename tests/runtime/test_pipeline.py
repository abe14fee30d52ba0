"""The decoder pipeline on packages made by `toolkit build`: logits and greedy tokens against two oracles."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.reference import ReferenceModel
from tests.runtime.conftest import CONTEXT
from toolkit.runtime.config import load_genai_config
from toolkit.runtime.generate import GenerationConfig, generate_step
from toolkit.runtime.model import LocalModel
from toolkit.runtime.pipeline import DecoderPipeline, RuntimeOptions


def _ids(n: int, seed: int = 0) -> list[int]:
    return [int(t) for t in np.random.default_rng(seed + n).integers(3, 500, n)]


def _greedy(model: LocalModel, prompt: list[int], n: int) -> list[int]:
    return [step.token for step in generate_step(model, prompt, GenerationConfig(max_new_tokens=n, ignore_eos=True))]


def _og_greedy(folder, prompt: list[int], n: int) -> list[int]:
    og = pytest.importorskip("onnxruntime_genai")
    model = og.Model(str(folder))
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=CONTEXT, do_sample=False)
    gen = og.Generator(model, params)
    gen.append_tokens(prompt)
    for _ in range(n):
        gen.generate_next_token()
    return [int(t) for t in gen.get_sequence(0)[-n:]]


@pytest.fixture(scope="module")
def reference(qwen_checkpoint):
    return ReferenceModel(qwen_checkpoint)


@pytest.fixture(scope="module")
def float_pipeline(float_package):
    return DecoderPipeline(load_genai_config(float_package))


@pytest.fixture(scope="module", params=["fixed-64-padded", "dynamic-chunks-of-64", "dynamic-one-shot"])
def prompt_pipeline(request, float_package, fixed_window_package):
    if request.param == "fixed-64-padded":
        pipeline = DecoderPipeline(load_genai_config(fixed_window_package))
        assert pipeline.prompt_window.fixed and pipeline.prompt_window.size == 64
        return pipeline
    chunk = 64 if request.param == "dynamic-chunks-of-64" else None
    return DecoderPipeline(load_genai_config(float_package), RuntimeOptions(prefill_chunk=chunk))


@pytest.mark.parametrize("length", [1, 63, 64, 65, 200])
def test_windowed_prefill_logits_match_one_shot_reference(prompt_pipeline, reference, length):
    ids = _ids(length)
    prompt_pipeline.kv.reset()
    logits = prompt_pipeline.prefill(ids)
    expected = reference.logits(ids)[-1]
    np.testing.assert_allclose(logits, expected, atol=2e-4, rtol=1e-4)
    assert prompt_pipeline.kv.position == length and prompt_pipeline.kv.tokens == ids
    next_logits = prompt_pipeline.decode(7)  # the KV rows written by the windows are the right ones
    np.testing.assert_allclose(next_logits, reference.logits([*ids, 7])[-1], atol=2e-4, rtol=1e-4)


def test_prefill_continues_after_earlier_turn_at_any_offset(prompt_pipeline, reference):
    first, second = _ids(70, 1), _ids(61, 2)
    prompt_pipeline.kv.reset()
    prompt_pipeline.prefill(first)
    logits = prompt_pipeline.prefill(second)
    np.testing.assert_allclose(logits, reference.logits(first + second)[-1], atol=2e-4, rtol=1e-4)


def test_decode_logits_match_reference_step_by_step(float_pipeline, reference):
    ids = _ids(66, 4)
    float_pipeline.kv.reset()
    float_pipeline.prefill(ids)
    for token in (7, 99, 3):
        logits = float_pipeline.decode(token)
        ids.append(token)
        np.testing.assert_allclose(logits, reference.logits(ids)[-1], atol=2e-4, rtol=1e-4)


def test_stages_sharing_a_file_share_one_session(float_pipeline):
    runners = float_pipeline._runners
    by_file = {}
    for r in runners:
        by_file.setdefault(r.stage.filename, set()).add(id(r.session))
    assert all(len(sessions) == 1 for sessions in by_file.values())
    assert len({r.stage.id for r in runners}) == 4


def test_pipeline_sessions_spin_only_while_they_run(float_pipeline):
    # Several sessions run in turn: a pool spinning after its run would steal the next stage's cores.
    for r in float_pipeline._runners:
        options = r.session.get_session_options()
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "1"
        assert options.get_session_config_entry("session.force_spinning_stop") == "1"


def test_float_greedy_equals_reference_forward(float_package, reference):
    model = LocalModel(float_package)
    prompt = _ids(70, 5)
    assert _greedy(model, prompt, 16) == reference.greedy(prompt, 16)[len(prompt):]


@pytest.mark.parametrize("package", ["float_package", "int4_package"])
@pytest.mark.parametrize("length", [5, 70])
def test_greedy_equals_onnxruntime_genai_on_same_package(request, package, length):
    folder = request.getfixturevalue(package)
    prompt = _ids(length, 6)
    assert _greedy(LocalModel(folder), prompt, 12) == _og_greedy(folder, prompt, 12)


def test_stories260k_greedy_reproduces_reference_and_genai(stories_package, shared_fixtures):
    model = LocalModel(stories_package)
    reference = ReferenceModel(shared_fixtures / "stories260k-hf")
    ours = _greedy(model, [1], 40)
    assert ours == reference.greedy([1], 40)[1:]
    assert ours == _og_greedy(stories_package, [1], 40)
    text = model.tokenizer.decode(ours)
    assert text.startswith("Once upon a time, there was a little girl named Lily.")


def test_prompt_longer_than_context_fails_clearly(float_package):
    from catalog.errors import PackageError

    model = LocalModel(float_package)
    with pytest.raises(PackageError, match=r"context holds 320.*--truncate"):
        list(generate_step(model, _ids(CONTEXT), GenerationConfig(max_new_tokens=8)))


def test_truncation_keeps_the_newest_tokens_when_asked(float_package):
    model = LocalModel(float_package)
    ids = _ids(CONTEXT + 10)
    steps = list(generate_step(model, ids, GenerationConfig(max_new_tokens=8, truncate=True, ignore_eos=True)))
    assert len(steps) == 8 and steps[0].prompt_tokens == CONTEXT - 8
    assert model.pipeline.kv.tokens[:CONTEXT - 8] == ids[-(CONTEXT - 8):]
