"""The decoder executor: runs a package's stages over a prompt and then one token at a time.

A single `decoder` package is a pipeline of one stage. Inputs and outputs named in the config's
`inputs`/`outputs` maps are *managed* here (token ids, positions, sequence lengths, attention mask,
KV cache, logits); every other output is handed by name to the later stages that take it, as
onnxruntime-genai does. The KV cache is one of the layouts in kv_cache.py, chosen at load; it owns
the position. With a `sliding_window`, the prompt runs in windows of `window_size` (padded at the
tail, "left" alignment) and the lm_head stage only on the last window, fed only the last real
position when its input shape allows. From the second generated token on, a `TokenPlan` runs the
step with every buffer bound once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from catalog.errors import ModelLoadError, PackageError
from toolkit.runtime.config import GenaiConfig
from toolkit.runtime.hugepages import start_collapse
from toolkit.runtime.kv_cache import KVCache, kv_cache_for, layer_names
from toolkit.runtime.stages import (
    check_stage_inputs,
    input_dtypes,
    load_stages,
    plan_prompt_window,
    static_dim,
    tensor_dtype,
)
from toolkit.runtime.token_plan import TokenPlan

DYNAMIC_CHUNK = 1024  # prompt tokens per run for graphs without a fixed window (bounds activation memory)


@dataclass
class RuntimeOptions:
    """How to load a package: threads, a provider override, where compiled NPU graphs are cached, and whether
    its custom-op library (native code) may be loaded: only for a local package the user trusts."""

    threads: int | None = None
    provider: str | None = None  # forces every stage onto this provider (`--ep`); its failures are errors
    # tried first by the stages whose config lists it (the provider the variant was chosen for); others keep
    # their own order, so embeddings and lm_head stay on the CPU in NPU packages
    preferred_provider: str | None = None
    ep_cache_dir: Path | None = None
    prefill_chunk: int | None = None  # prompt tokens per run for dynamic-length graphs (None: automatic)
    huge_pages: bool = True  # re-back the loaded weights with transparent huge pages (Linux; see hugepages.py)
    allow_custom_ops: bool = False  # load the package's custom_ops_library (native code; it must be inside it)


class DecoderPipeline:
    """Prefill and decode for one package; `prefill(ids)` and `decode(token)` return the next-token logits.

    `kv` holds the KV entries and the tokens they belong to (its `position` is where the next run writes);
    `reset()` or `rewind(n)` it to start a new prompt."""

    def __init__(self, config: GenaiConfig, options: RuntimeOptions | None = None) -> None:
        self.config = config
        self.options = options or RuntimeOptions()
        libraries = config.custom_ops_libraries()
        if libraries and not self.options.allow_custom_ops:
            where, library = libraries[0]
            raise PackageError(
                f"{config.path}: {where}: the package asks to load native code ({library}); a package is data, so "
                "this is refused unless you trust this package and allow it (`--allow-custom-ops`)"
            )
        start = time.perf_counter()
        o = self.options
        self._runners, self.report = load_stages(config, o.threads, o.provider, o.preferred_provider, o.ep_cache_dir)
        self._idle = threading.Event()  # set while no generation runs (see busy())
        self._idle.set()
        self.huge_pages = start_collapse(self._idle.wait) if o.huge_pages else None  # works only while idle
        self.report.seconds = time.perf_counter() - start
        self._names = n = config.names
        layers = layer_names(config)
        managed = {n.input_ids, n.position_ids, n.attention_mask, n.past_sequence_length, n.total_sequence_length}
        check_stage_inputs(config, self._runners, managed | {x for la in layers for x in (la.past_key, la.past_value)})
        self.kv: KVCache = kv_cache_for(config, self._runners)
        self.prompt_window = plan_prompt_window(config, self._runners, {x for la in layers for x in la})
        self._int_dtypes = input_dtypes(self._runners, managed)
        self._token_plan: TokenPlan | None = None
        self.ort_seconds = 0.0  # time spent inside onnxruntime, for overhead profiling

    @contextmanager
    def busy(self) -> Iterator[None]:
        """Mark a generation in progress: background work (the huge-page collapse) waits until it ends."""
        self._idle.clear()
        try:
            yield
        finally:
            self._idle.set()

    @property
    def providers(self) -> list[str]:
        return [r.provider for r in self._runners]

    def ensure_capacity(self, total_tokens: int) -> None:
        """Make room for `total_tokens` positions, or raise if the package cannot hold them."""
        limit = self.kv.max_tokens
        if total_tokens > limit:
            raise PackageError(f"{self.config.path}: {total_tokens} tokens do not fit the model's context of "
                               f"{limit} tokens")
        if self.kv.reserve(total_tokens):
            self._token_plan = None  # it was bound to the old buffers

    # ---- running ---------------------------------------------------------------------------------------------
    def _int_input(self, name: str, values: np.ndarray) -> Any:
        from onnxruntime import OrtValue  # heavy: imported once a model loads

        dtype = self._int_dtypes.get(name)
        if dtype is not None:
            values = values.astype(dtype, copy=False)
        return OrtValue.ortvalue_from_numpy(np.ascontiguousarray(values))

    def _managed_values(self, tokens: np.ndarray, real: int, past: int) -> dict[str, Any]:
        """Token ids, positions, lengths and mask for running `tokens` (the first `real` are real) at `past`."""
        n = self._names
        width = tokens.shape[0]
        positions = np.zeros(width, dtype=np.int64)
        positions[:real] = np.arange(past, past + real)
        values = {
            n.input_ids: self._int_input(n.input_ids, tokens.reshape(1, width)),
            n.position_ids: self._int_input(n.position_ids, positions.reshape(1, width)),
            # GroupQueryAttention's seqlens_k: index of the last position written by this run
            n.past_sequence_length: self._int_input(n.past_sequence_length,
                                                    np.array([[past + width - 1]], dtype=np.int32)),
            n.total_sequence_length: self._int_input(n.total_sequence_length,
                                                     np.array([past + width], dtype=np.int32)),
        }
        mask_meta = next((r.inputs[n.attention_mask] for r in self._runners if n.attention_mask in r.inputs), None)
        if mask_meta is not None:
            fixed = static_dim(mask_meta.shape[1]) if len(mask_meta.shape) == 2 else None
            mask = np.zeros((1, fixed or past + width), dtype=np.int64)
            mask[0, :past + width] = 1
            values[n.attention_mask] = self._int_input(n.attention_mask, mask)
        return values

    def _run_phase(self, prompt: bool, managed: dict[str, Any], last_real: int, run_lm_head: bool,
                   shapes: dict[str, tuple[tuple[int, ...], Any]] | None = None) -> Any:
        """Run the stages of one phase once; returns the logits OrtValue (None when lm_head was skipped)."""
        store: dict[str, Any] = {}
        kv = self.kv
        logits_name = self._names.logits
        logits = None
        for r in self._runners:
            stage = r.stage
            if (prompt and not stage.run_on_prompt) or (not prompt and not stage.run_on_token_gen):
                continue
            if prompt and stage.is_lm_head and not run_lm_head:
                continue
            binding = r.session.io_binding()
            for name, meta in r.inputs.items():
                value = kv.past(name)
                if value is None:
                    value = managed.get(name)
                if value is None:
                    value = store.get(name)
                if value is None:
                    raise ModelLoadError(f"stage {stage.id!r}: no value for input {name!r}")
                if prompt and stage.is_lm_head and name not in managed and len(meta.shape) == 3 \
                        and static_dim(meta.shape[1]) is None and value.shape()[1] > 1:
                    value = _slice_position(value, last_real)
                binding.bind_ortvalue_input(name, value)
            for name in r.outputs:
                buffer = kv.present(name)
                if buffer is not None:
                    binding.bind_ortvalue_output(name, buffer)
                else:
                    binding.bind_output(name, "cpu")
            t0 = time.perf_counter()
            r.session.run_with_iobinding(binding, r.run_options)
            self.ort_seconds += time.perf_counter() - t0
            for name, value in zip(r.outputs, binding.get_outputs(), strict=True):
                if shapes is not None:
                    key = stage.output_names_forwarder.get(name, name)
                    shapes[key] = (tuple(value.shape()), tensor_dtype(value.data_type(), name))
                if name == logits_name:
                    logits = value
                elif not kv.take_output(name, value):
                    store[stage.output_names_forwarder.get(name, name)] = value
        return logits

    def prefill(self, token_ids: Sequence[int]) -> np.ndarray:
        """Run the prompt (continuing after any earlier turns); returns logits for the next token."""
        ids = np.asarray(token_ids, dtype=np.int64)
        if ids.size == 0:  # the CLI refuses an empty prompt, so the package's chat template rendered nothing
            raise PackageError(f"{self.config.folder}: the prompt has no tokens: the package's chat template "
                               "(tokenizer_config.json chat_template, or chat_template.jinja) rendered nothing")
        window = self.prompt_window
        fixed = window.fixed
        if fixed:
            width = window.size
        else:  # dynamic-length graphs: bigger chunks make better matrix products (512 tokens: ~18% faster)
            width = self.options.prefill_chunk or max(window.size or 0, DYNAMIC_CHUNK)
        padded = -(-ids.size // width) * width if fixed else ids.size
        kv = self.kv
        self.ensure_capacity(kv.position + padded)
        logits = None
        for start in range(0, ids.size, width):
            chunk = ids[start:start + width]
            real = chunk.size
            if real < width and fixed:
                chunk = np.concatenate([chunk, np.full(width - real, window.pad_value, dtype=np.int64)])
            last = start + width >= ids.size
            managed = self._managed_values(chunk, real, kv.position)
            logits = self._run_phase(True, managed, real - 1, run_lm_head=last)
            kv.written(ids[start:start + real].tolist(), chunk.size)
        return self._last_logits(logits, (ids.size - 1) % width)

    @staticmethod
    def _last_logits(logits: Any, index: int) -> np.ndarray:
        arr = logits.numpy()
        arr = arr.reshape(-1, arr.shape[-1])
        return arr[min(index, arr.shape[0] - 1)].astype(np.float32, copy=False)

    def decode(self, token: int) -> np.ndarray:
        """Run one generated token; returns logits for the one after it."""
        kv = self.kv
        self.ensure_capacity(kv.position + 1)
        if self._token_plan is not None:
            logits, seconds = self._token_plan.step(token, kv.position)
            self.ort_seconds += seconds
            kv.written((token,), 1)
            return logits
        managed = self._managed_values(np.array([token], dtype=np.int64), 1, kv.position)
        shapes: dict[str, tuple[tuple[int, ...], Any]] = {}
        value = self._run_phase(False, managed, 0, run_lm_head=True, shapes=shapes)
        kv.written((token,), 1)
        if kv.in_place:  # every shape is known now: bind the buffers once for the following tokens
            runners = [r for r in self._runners if r.stage.run_on_token_gen]
            self._token_plan = TokenPlan(self._names, runners, kv.bound_values(), self._int_dtypes, shapes,
                                         kv.max_tokens)
        return self._last_logits(value, 0)


def _slice_position(value: Any, index: int) -> Any:
    """The [:, index:index+1] slice of a [batch, seq, hidden] OrtValue (lm_head needs only the last token)."""
    from onnxruntime import OrtValue  # heavy: imported once a model loads

    arr = value.numpy()
    return OrtValue.ortvalue_from_numpy(np.ascontiguousarray(arr[:, index:index + 1]))
