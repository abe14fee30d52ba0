"""Tokenizer, chat template, streaming detokenizer, reasoning split and stop strings on real tokenizers."""

from __future__ import annotations

import pytest

from toolkit.runtime.detokenizer import StreamingDetokenizer
from toolkit.runtime.textstream import ReasoningSplitter, StopStrings
from toolkit.runtime.tokenizer import PackageTokenizer

BOS, EOS, THINK = 151646, 151643, 151648
MULTIBYTE = "héllo 世界 🎉 naïve café 👩‍👩‍👧 Ελληνικά ∑x² — «ok»"


def test_deepseek_chat_template_renders_like_transformers(deepseek_tokenizer):
    messages = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "<think>\nhmm\n</think>\n\nHello!"},
        {"role": "user", "content": "2+2?"},
    ]
    text = deepseek_tokenizer.render_chat(messages)
    assert text == ("<｜begin▁of▁sentence｜>You are helpful.<｜User｜>Hi<｜Assistant｜>\n\nHello!"
                    "<｜end▁of▁sentence｜><｜User｜>2+2?<｜Assistant｜><think>\n")
    ids = deepseek_tokenizer.encode_chat(messages)
    assert ids[0] == BOS and ids.count(BOS) == 1
    assert ids[-2:] == [THINK, deepseek_tokenizer.encode("\n")[0]]
    assert ids.count(151644) == 2 and ids.count(151645) == 2 and ids.count(EOS) == 1
    assert deepseek_tokenizer.eos_token_id == EOS


def test_template_without_generation_prompt(deepseek_tokenizer):
    text = deepseek_tokenizer.render_chat([{"role": "user", "content": "x"}], add_generation_prompt=False)
    assert text == "<｜begin▁of▁sentence｜><｜User｜>x"


@pytest.mark.parametrize("folder", ["deepseek-r1-distill-qwen-tokenizer", "stories260k-hf"])
def test_streaming_detokenizer_never_emits_broken_characters(shared_fixtures, folder):
    tok = PackageTokenizer(shared_fixtures / folder)
    ids = tok.encode(MULTIBYTE)
    detok = StreamingDetokenizer(tok)
    deltas = [detok.add(t) for t in ids]
    deltas.append(detok.flush())
    assert all("\ufffd" not in d for d in deltas)
    assert "".join(deltas) == tok.decode(ids)
    assert "".join(deltas).strip() == MULTIBYTE
    held = sum(1 for d in deltas[:-1] if d == "")
    assert held > 0, "the text should contain characters split over several tokens"


def test_split_emoji_is_held_until_complete(deepseek_tokenizer):
    ids = deepseek_tokenizer.encode(" 🎉")
    assert len(ids) > 1
    detok = StreamingDetokenizer(deepseek_tokenizer)
    assert [detok.add(t) for t in ids] == [""] * (len(ids) - 1) + [" 🎉"]


def test_sentencepiece_spaces_survive_streaming(shared_fixtures):
    tok = PackageTokenizer(shared_fixtures / "stories260k-hf")
    ids = tok.encode("Once upon a time there was a cat.")
    detok = StreamingDetokenizer(tok)
    assert "".join(detok.add(t) for t in ids) == "Once upon a time there was a cat."


def test_plain_prompt_gets_bos_when_configured(shared_fixtures):
    tok = PackageTokenizer(shared_fixtures / "stories260k-hf")
    assert tok.chat_template is None
    assert tok.encode_chat([{"role": "user", "content": "Once"}])[0] == 1


def _feed_all(splitter: ReasoningSplitter, pieces: list[str]) -> list[tuple[str, str]]:
    out = []
    for p in pieces:
        out += splitter.feed(p)
    out += splitter.flush()
    merged: list[tuple[str, str]] = []
    for kind, text in out:
        if merged and merged[-1][0] == kind:
            merged[-1] = (kind, merged[-1][1] + text)
        else:
            merged.append((kind, text))
    return merged


@pytest.mark.parametrize("pieces", [
    ["Let me think.", "</think>", "\n\n", "Answer: 4"],
    ["Let me th", "ink.</th", "ink>\n\nAns", "wer: 4"],
    list("Let me think.</think>\n\nAnswer: 4"),
])
def test_reasoning_split_when_prompt_opened_think(pieces):
    got = _feed_all(ReasoningSplitter("<think>", "</think>", in_reasoning=True), pieces)
    assert got == [("reasoning", "Let me think."), ("answer", "Answer: 4")]


def test_reasoning_block_opened_by_the_model_and_lookalikes_pass_through():
    got = _feed_all(ReasoningSplitter(), ["<thi", "nk>\nplan</think>x < y <th", "e end>"])
    assert got == [("reasoning", "plan"), ("answer", "x < y <the end>")]


def test_no_markers_means_all_answer():
    assert _feed_all(ReasoningSplitter(None, None), ["<think>a</think>"]) == [("answer", "<think>a</think>")]


@pytest.mark.parametrize(("pieces", "text", "stopped"), [
    (["Hello ", "wor", "ld STOP here"], "Hello world ", True),
    (["Hello ", "ST", "OP"], "Hello ", True),
    (["Hello ", "ST", "ep"], "Hello STep", False),
    (["<|im", "_end|>", "more"], "", True),
])
def test_stop_strings_across_deltas(pieces, text, stopped):
    stop = StopStrings(["STOP", "<|im_end|>"])
    out, hit = "", False
    for p in pieces:
        safe, hit = stop.feed(p)
        out += safe
        if hit:
            break
    if not hit:
        out += stop.flush()
    assert (out, hit) == (text, stopped)
