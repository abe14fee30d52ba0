"""stream_generate / generate / ChatSession on real packages: stops, limits, cancellation, cache reuse."""

from __future__ import annotations

import threading
import time

import pytest

from toolkit.runtime.chat import ChatSession
from toolkit.runtime.generate import GenerationConfig, generate, generate_step, stream_generate
from toolkit.runtime.model import LocalModel
from toolkit.runtime.sampler import SamplingParams

STORY = "Once upon a time, there was a little girl named Lily."


@pytest.fixture(scope="module")
def stories(stories_package):
    return LocalModel(stories_package)


def test_events_stream_text_and_end_with_stats(stories):
    events = list(stream_generate(stories, [1], GenerationConfig(max_new_tokens=30)))
    assert events[-1].kind == "done" and all(e.kind == "answer" for e in events[:-1])
    text = "".join(e.text for e in events[:-1])
    assert text.startswith("Once upon a time, there was")
    stats = events[-1].stats
    assert stats.generated_tokens == 30 and stats.finish_reason == "length" and stats.prompt_tokens == 1
    assert stats.ttft_s > 0 and stats.decode_tps > 0 and stats.peak_rss_bytes > 0


def test_stop_string_cuts_the_text(stories):
    result = generate(stories, [1], GenerationConfig(max_new_tokens=60, stop=("Lily",)))
    assert result.text == "Once upon a time, there was a little girl named "
    assert result.stats.finish_reason == "stop"


def test_eos_token_ends_generation(stories):
    story = [s.token for s in generate_step(stories, [1], GenerationConfig(max_new_tokens=20, ignore_eos=True))]
    eos_config = GenerationConfig(max_new_tokens=20, stop_token_ids=(story[5],))
    result = generate(stories, [1], eos_config)
    assert result.stats.finish_reason == "stop" and result.stats.generated_tokens == 5


def test_each_step_carries_the_prompt_figures_and_the_last_says_the_limit_ended_it(stories):
    before = time.perf_counter()
    config = GenerationConfig(max_new_tokens=5, ignore_eos=True, reuse_cache=False)
    steps = list(generate_step(stories, [1, 403], config))
    assert [s.finish_reason for s in steps] == [None, None, None, None, "length"]
    assert {(s.prompt_tokens, s.reused_tokens, s.prefill_s, s.first_token_at) for s in steps} == {
        (2, 0, steps[0].prefill_s, steps[0].first_token_at)}
    assert steps[0].prefill_s > 0 and before + steps[0].prefill_s < steps[0].first_token_at < time.perf_counter()


def test_a_stop_token_ends_with_a_record_of_it_that_is_not_output(stories):
    story = [s.token for s in generate_step(stories, [1], GenerationConfig(max_new_tokens=20, ignore_eos=True))]
    steps = list(generate_step(stories, [1], GenerationConfig(max_new_tokens=20, stop_token_ids=(story[5],))))
    assert [s.token for s in steps] == story[:6] and [s.finish_reason for s in steps] == [None] * 5 + ["stop"]
    first = list(generate_step(stories, [1], GenerationConfig(max_new_tokens=20, stop_token_ids=(story[0],))))
    assert len(first) == 1 and first[0].finish_reason == "stop" and first[0].first_token_at > 0
    stats = generate(stories, [1], GenerationConfig(max_new_tokens=20, stop_token_ids=(story[0],))).stats
    assert stats.finish_reason == "stop" and stats.generated_tokens == 0 and stats.ttft_s > 0


def test_cancel_stops_after_current_token(stories):
    cancel = threading.Event()
    got = []
    for event in stream_generate(stories, [1], GenerationConfig(max_new_tokens=100), cancel):
        if event.kind == "done":
            stats = event.stats
        else:
            got.append(event.text)
            cancel.set()
    assert stats.finish_reason == "cancelled" and stats.generated_tokens < 5


def test_seeded_sampling_is_reproducible(stories):
    config = GenerationConfig(max_new_tokens=25, sampling=SamplingParams(temperature=1.0, top_p=0.9, seed=11))
    assert generate(stories, [1], config).text == generate(stories, [1], config).text


def test_second_turn_reuses_the_kv_cache_and_matches_a_fresh_run(stories, stories_package):
    config = GenerationConfig(max_new_tokens=12, ignore_eos=True)
    prompt = stories.tokenizer.encode("Once upon a time", add_special_tokens=True)
    first = [s.token for s in generate_step(stories, prompt, config)]
    longer = prompt + first + stories.tokenizer.encode(" The end.")
    reused = list(generate_step(stories, longer, config))
    assert {s.reused_tokens for s in reused} == {len(prompt) + len(first) - 1}
    fresh = [s.token for s in generate_step(LocalModel(stories_package), longer, config)]
    assert [s.token for s in reused] == fresh


def test_a_prompt_that_leaves_the_held_tokens_reuses_only_their_common_prefix(stories, stories_package):
    config = GenerationConfig(max_new_tokens=6, ignore_eos=True)
    prompt = stories.tokenizer.encode("Once upon a time there was a cat", add_special_tokens=True)
    list(generate_step(stories, prompt, config))
    other = prompt[:4] + stories.tokenizer.encode(" dog who liked the sun")
    steps = list(generate_step(stories, other, config))
    assert steps[0].reused_tokens == 4
    assert stories.pipeline.kv.tokens == other + [s.token for s in steps[:-1]]  # the last one was never run
    fresh = [s.token for s in generate_step(LocalModel(stories_package), other, config)]
    assert [s.token for s in steps] == fresh
    again = list(generate_step(stories, other, GenerationConfig(max_new_tokens=6, ignore_eos=True, reuse_cache=False)))
    assert again[0].reused_tokens == 0 and [s.token for s in again] == fresh


def test_chat_session_keeps_history_and_resets(float_package):
    model = LocalModel(float_package)
    chat = ChatSession(model, system="be brief")
    config = GenerationConfig(max_new_tokens=4, ignore_eos=True)
    list(chat.send("hello", config))
    list(chat.send("again", config))
    assert [m["role"] for m in chat.messages] == ["system", "user", "assistant", "user", "assistant"]
    chat.reset()
    assert chat.messages == [{"role": "system", "content": "be brief"}] and model.pipeline.kv.tokens == []


def test_text_held_for_a_possible_stop_string_is_released_at_the_end(stories):
    full = generate(stories, [1], GenerationConfig(max_new_tokens=12)).text
    tail = full[-3:]
    # a stop string that starts like the end of the text but never completes: nothing may be lost
    result = generate(stories, [1], GenerationConfig(max_new_tokens=12, stop=(tail + "\u2603",)))
    assert result.text == full and result.stats.finish_reason == "length"



def test_special_tokens_the_model_emits_are_not_text_unless_asked_for(stories, shared_fixtures):
    # stories260K separates stories with <s> (BOS, a special token): after the end of this story it starts another
    text = (shared_fixtures / "text" / "tinystories_sample.txt").read_text()
    story = [d.strip() for d in text.split("<|endoftext|>") if d.strip()][1]
    prompt = [1, *stories.tokenizer.encode(story)[-200:]]
    config = GenerationConfig(max_new_tokens=12, ignore_eos=True)
    assert next(generate_step(stories, prompt, config)).token == 1
    shown = generate(stories, prompt, config)
    assert shown.text.startswith("Once upon a time") and "<s>" not in shown.text
    assert shown.stats.generated_tokens == 12
    literal = generate(stories, prompt, GenerationConfig(max_new_tokens=12, ignore_eos=True, show_special_tokens=True))
    assert literal.text.startswith("<s>") and literal.text.removeprefix("<s>").strip() == shown.text.strip()



def test_a_stop_string_that_contains_a_special_token_still_stops(stories, shared_fixtures):
    text = (shared_fixtures / "text" / "tinystories_sample.txt").read_text()
    story = [d.strip() for d in text.split("<|endoftext|>") if d.strip()][1]
    prompt = [1, *stories.tokenizer.encode(story)[-200:]]  # the model's next token is <s>, then "Once upon"
    result = generate(stories, prompt, GenerationConfig(max_new_tokens=12, ignore_eos=True, stop=("<s> Once",)))
    assert result.stats.finish_reason == "stop" and result.text == ""
