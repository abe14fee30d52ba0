"""KV cache layouts on fake session metadata: which one the graphs call for, what each binds, keeps and reuses."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from onnxruntime import OrtValue

from catalog.errors import PackageError
from toolkit.runtime.config import load_genai_config
from toolkit.runtime.kv_cache import (
    MIN_SHARED_LENGTH,
    GrowingKV,
    KVCache,
    SharedBufferKV,
    StaticKV,
    kv_cache_for,
)
from toolkit.runtime.stages import StageRunner

LAYERS, HEADS, HEAD = 2, 2, 4


@dataclass
class Meta:  # what onnxruntime's NodeArg tells about an input or output
    name: str
    type: str
    shape: list[Any]


def _config(tmp_path, share: bool = False, context: int = 128, heads: int | None = HEADS):
    (tmp_path / "model.onnx").write_bytes(b"")
    decoder = {"filename": "model.onnx", "num_hidden_layers": LAYERS, "session_options": {"provider_options": []},
               "head_size": HEAD, **({"num_key_value_heads": heads} if heads else {})}
    data = {"model": {"type": "qwen2", "context_length": context, "eos_token_id": 5, "decoder": decoder},
            "search": {"past_present_share_buffer": share}}
    (tmp_path / "genai_config.json").write_text(json.dumps(data))
    return load_genai_config(tmp_path)


def _runners(config, past: list[Any] | None, present: list[Any] | None) -> list[StageRunner]:
    n = config.names
    inputs = {n.input_ids: Meta(n.input_ids, "tensor(int64)", [1, "seq"])}
    outputs = {n.logits: Meta(n.logits, "tensor(float)", [1, "seq", 32])}
    for i in range(LAYERS):
        for past_name, present_name in ((n.past_key_names, n.present_key_names),
                                         (n.past_value_names, n.present_value_names)):
            if past is not None:
                inputs[past_name % i] = Meta(past_name % i, "tensor(float16)", past)
            if present is not None:
                outputs[present_name % i] = Meta(present_name % i, "tensor(float16)", present)
    return [StageRunner(config.stages[0], None, "CPUExecutionProvider", inputs, outputs, None)]


def _cache(tmp_path, layout: str, context: int = 128) -> KVCache:
    config = _config(tmp_path, share=layout == "shared", context=context)
    dynamic = ([1, HEADS, "past", HEAD], [1, HEADS, "total", HEAD])
    past, present = {"static": ([1, HEADS, 96, HEAD],) * 2, "none": (None, None)}.get(layout, dynamic)
    return kv_cache_for(config, _runners(config, past, present))


@pytest.mark.parametrize(("past", "present", "share", "context", "kind", "max_tokens"), [
    ([1, 2, 96, 4], [1, 2, 96, 4], False, 128, StaticKV, 96),
    ([1, 2, 512, 4], [1, 2, 512, 4], False, 128, StaticKV, 128),  # a buffer longer than the context
    ([1, 2, "past", 4], [1, 2, "total", 4], True, 128, SharedBufferKV, 128),
    ([1, 2, "past", 4], [1, 2, "total", 4], False, 128, GrowingKV, 128),
    (["b", "h", "past", "d"], ["b", "h", "total", "d"], True, 64, SharedBufferKV, 64),  # heads from the config
    (None, None, False, 128, KVCache, 128),  # no KV inputs
])
def test_the_layout_is_chosen_once_from_the_kv_inputs(tmp_path, past, present, share, context, kind, max_tokens):
    config = _config(tmp_path, share=share, context=context)
    kv = kv_cache_for(config, _runners(config, past, present))
    assert type(kv) is kind and kv.max_tokens == max_tokens and kv.position == 0
    assert kv.layout == {StaticKV: "static", SharedBufferKV: "shared", GrowingKV: "grow", KVCache: "none"}[kind]


@pytest.mark.parametrize(("past", "present", "heads", "message"), [
    ([1, 2, 96], [1, 2, 96], HEADS, r"expected a 4-d KV cache input, got shape \[1, 2, 96\]"),
    ([1, 2, 96, 4], [1, 2, 97, 4], HEADS,
     r"static KV cache of shape \[1, 2, 96, 4\] but present output has shape \[1, 2, 97, 4\]; sliding KV caches"),
    ([1, 2, 96, 4], None, HEADS, r"static KV cache of shape \[1, 2, 96, 4\] but present output has shape None"),
    ([1, "h", "past", 4], [1, "h", "total", 4], None, r"KV heads and head size are symbolic and not in the config"),
])
def test_kv_inputs_the_runtime_cannot_drive_are_refused_naming_the_input(tmp_path, past, present, heads, message):
    config = _config(tmp_path, heads=heads)
    with pytest.raises(PackageError, match=r"genai_config.json: input past_key_values.0.key: " + message):
        kv_cache_for(config, _runners(config, past, present))


@pytest.mark.parametrize(("layout", "in_place", "reusable"), [
    ("static", True, True), ("shared", True, True), ("grow", False, False), ("none", False, False),
])
def test_what_each_layout_binds_and_keeps(tmp_path, layout, in_place, reusable):
    kv = _cache(tmp_path, layout)
    kv.reserve(10)
    assert (kv.in_place, kv.reusable) == (in_place, reusable)
    past, present = "past_key_values.1.value", "present.1.value"
    if in_place:  # one buffer is the past input and the present output: the graph writes the new rows in it
        assert kv.past(past) is kv.present(present) is kv.bound_values()[present]
        assert len(kv.bound_values()) == 4 * LAYERS
        assert kv.take_output(present, kv.present(present))
    elif layout == "grow":  # the present output (past + new rows) becomes the next past
        assert kv.present(present) is None and kv.past(past).shape() == [1, HEADS, 0, HEAD]
        new = OrtValue.ortvalue_from_numpy(np.ones((1, HEADS, 3, HEAD), dtype=np.float16))
        assert kv.take_output(present, new) and kv.past(past) is new
    else:
        assert kv.past(past) is None and kv.present(present) is None and not kv.take_output(present, None)
    assert not kv.take_output("hidden_states", None)  # any other output goes on to the later stages


@pytest.mark.parametrize(("held", "prompt", "reused"), [
    ([], [1, 2, 3], 0),
    ([1, 2, 3], [1, 2, 3, 4, 5], 3),
    ([1, 2, 3], [1, 2, 3], 2),  # the last prompt token always runs: its logits choose the next token
    ([1, 2, 3, 4], [1, 2], 1),
    ([1, 2, 3], [1, 9, 3, 4], 1),
    ([1, 2, 3], [7, 2, 3, 4], 0),
    ([1, 2, 3], [], 0),
])
@pytest.mark.parametrize("layout", ["static", "shared", "grow", "none"])
def test_a_new_prompt_reuses_the_entries_of_its_longest_held_prefix(tmp_path, layout, held, prompt, reused):
    kv = _cache(tmp_path, layout)
    kv.written(held, len(held))
    assert kv.position == len(held) and kv.tokens == held
    assert kv.reusable_prefix(prompt) == (reused if kv.reusable else 0)


@pytest.mark.parametrize("layout", ["static", "shared", "grow", "none"])
def test_rewind_keeps_the_first_tokens_and_reset_forgets_all(tmp_path, layout):
    kv = _cache(tmp_path, layout)
    kv.written([4, 5, 6], 3)
    kv.written([7], 1)
    kv.rewind(2)
    assert kv.position == 2 and kv.tokens == [4, 5]
    kv.reset()
    assert kv.position == 0 and kv.tokens == []


@pytest.mark.parametrize(("requests", "lengths", "replaced"), [
    ([10], [MIN_SHARED_LENGTH], [True]),
    ([10, 200, 256], [256, 256, 256], [True, False, False]),
    ([10, 300], [256, 512], [True, True]),  # at least doubles
    ([10, 1000], [256, 1000], [True, True]),  # or what the request needs
    ([10, 300, 1500], [256, 512, 1024], [True, True, True]),  # never past the context
])
def test_a_shared_buffer_grows_to_the_request_and_keeps_its_rows(tmp_path, requests, lengths, replaced):
    kv = _cache(tmp_path, "shared", context=1024)
    for total, length, new in zip(requests, lengths, replaced, strict=True):
        before = kv.bound_values().get("past_key_values.0.key")
        if before is not None:  # fill the old buffer: growing must copy it
            before.update_inplace(np.full(before.shape(), 3, dtype=np.float16))
        assert kv.reserve(total) is new
        value = kv.bound_values()["past_key_values.0.key"]
        assert value.shape() == [1, HEADS, length, HEAD]
        if before is not None and new:
            assert (value.numpy()[:, :, :before.shape()[2]] == 3).all()


def test_a_static_buffer_is_allocated_at_load_and_never_replaced(tmp_path):
    kv = _cache(tmp_path, "static")
    value = kv.bound_values()["present.0.key"]
    assert value.shape() == [1, 2, 96, 4] and not kv.reserve(96) and kv.bound_values()["present.0.key"] is value


def test_a_growing_cache_cuts_the_rows_of_pads_and_of_rewound_tokens(tmp_path):
    kv = _cache(tmp_path, "grow")
    rows = np.arange(HEADS * 8 * HEAD, dtype=np.float16).reshape(1, HEADS, 8, HEAD)
    for i in range(LAYERS):  # a window of 8 positions ran, 5 of them real tokens
        for name in (f"present.{i}.key", f"present.{i}.value"):
            kv.take_output(name, OrtValue.ortvalue_from_numpy(rows))
    kv.written([1, 2, 3, 4, 5], 8)
    np.testing.assert_array_equal(kv.past("past_key_values.1.key").numpy(), rows[:, :, :5])
    kv.rewind(2)
    np.testing.assert_array_equal(kv.past("past_key_values.0.value").numpy(), rows[:, :, :2])
    kv.reset()
    assert kv.past("past_key_values.0.key").shape() == [1, HEADS, 0, HEAD]
