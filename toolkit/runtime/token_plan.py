"""The decode fast path: every buffer of a one-token step allocated and bound once.

After the first decode step has run the ordinary way (so every intermediate output's shape is
known), `TokenPlan` allocates numpy buffers for the token id, positions, sequence lengths, the
hidden states passed between stages and the logits, wraps them as OrtValues (no copies) and binds
them, with the KV buffers, into one IO binding per stage. A step then writes four integers and
calls `run_with_iobinding` once per stage: the Python work per token is a few microseconds.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from toolkit.runtime.config import IONames
from toolkit.runtime.stages import StageRunner


class TokenPlan:
    """Pre-bound decode step for stages whose KV cache is written in place.

    Built from what the pipeline knows explicitly: the managed names, the token-phase stages, the KV values
    bound to past and present names, the dtypes of the managed inputs, the shape and dtype of every output
    seen in one ordinary step (by forwarded name), and the most positions a conversation can use."""

    def __init__(self, names: IONames, runners: Sequence[StageRunner], kv_values: Mapping[str, Any],
                 input_dtypes: Mapping[str, Any], output_shapes: Mapping[str, tuple[tuple[int, ...], Any]],
                 max_tokens: int) -> None:
        from onnxruntime import OrtValue  # heavy: imported once a model loads

        self._names = names
        self._arrays: dict[str, np.ndarray] = {}
        values: dict[str, Any] = {}
        self._dynamic_mask = False

        def managed(name: str, shape: tuple[int, ...], dtype: Any) -> None:
            arr = np.zeros(shape, dtype=dtype)
            self._arrays[name] = arr
            values[name] = OrtValue.ortvalue_from_numpy(arr)

        for r in runners:
            for name, meta in r.inputs.items():
                if name in values or name in kv_values:
                    continue
                if name in (names.input_ids, names.position_ids, names.past_sequence_length):
                    managed(name, (1, 1), input_dtypes[name])
                elif name == names.total_sequence_length:
                    managed(name, (1,), input_dtypes[name])
                elif name == names.attention_mask:
                    fixed = meta.shape[1] if isinstance(meta.shape[1], int) else None
                    if fixed is None:
                        self._dynamic_mask = True
                        self._mask_ones = np.ones((1, max_tokens), dtype=input_dtypes[name])
                    else:
                        managed(name, (1, fixed), input_dtypes[name])
        for r in runners:
            for name in r.outputs:
                if name in kv_values:
                    continue
                key = r.stage.output_names_forwarder.get(name, name)
                shape, dtype = output_shapes[key]
                managed(key, shape, dtype)
        self._logits = self._arrays[names.logits]
        self._bindings = []
        for r in runners:
            binding = r.session.io_binding()
            for name in r.inputs:
                if name == names.attention_mask and self._dynamic_mask:
                    continue
                kv = kv_values.get(name)
                binding.bind_ortvalue_input(name, kv if kv is not None else values[name])
            for name in r.outputs:
                kv = kv_values.get(name)
                key = r.stage.output_names_forwarder.get(name, name)
                binding.bind_ortvalue_output(name, kv if kv is not None else values[key])
            self._bindings.append((r, binding, names.attention_mask in r.inputs and self._dynamic_mask))

    def step(self, token: int, position: int) -> tuple[np.ndarray, float]:
        """Run one token at `position`; returns a copy of its logits row and the seconds spent in onnxruntime."""
        from onnxruntime import OrtValue  # heavy: imported once a model loads

        a, n = self._arrays, self._names
        if n.input_ids in a:
            a[n.input_ids][0, 0] = token
        if n.position_ids in a:
            a[n.position_ids][0, 0] = position
        if n.past_sequence_length in a:
            a[n.past_sequence_length][0, 0] = position
        if n.total_sequence_length in a:
            a[n.total_sequence_length][0] = position + 1
        if n.attention_mask in a:
            a[n.attention_mask][0, position] = 1
            a[n.attention_mask][0, position + 1:] = 0
            a[n.attention_mask][0, :position] = 1
        mask = None
        if self._dynamic_mask:
            mask = OrtValue.ortvalue_from_numpy(self._mask_ones[:, :position + 1])
        start = time.perf_counter()
        for r, binding, needs_mask in self._bindings:
            if needs_mask:
                binding.bind_ortvalue_input(n.attention_mask, mask)
            r.session.run_with_iobinding(binding, r.run_options)
        seconds = time.perf_counter() - start
        logits = self._logits
        return logits.reshape(-1, logits.shape[-1])[-1].astype(np.float32, copy=True), seconds
