"""The decoder executor: runs a package's stages over a prompt and then one token at a time.

A single `decoder` package is a pipeline of one stage. Inputs and outputs named in the config's
`inputs`/`outputs` maps are *managed* here (token ids, positions, sequence lengths, attention mask,
KV cache, logits); every other output is handed by name to the later stages that take it, as
onnxruntime-genai does. KV buffers are allocated once and bound as both the past input and the
present output (GroupQueryAttention writes the new entries in place), through IO binding, so no
step copies the cache. With a `sliding_window`, the prompt runs in windows of `window_size`
(padded at the tail, "left" alignment) and the lm_head stage only on the last window, fed only the
last real position when its input shape allows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from catalog.errors import ModelLoadError, PackageError
from toolkit.runtime.config import GenaiConfig, Stage
from toolkit.runtime.providers import create_session

ORT_TYPES: dict[str, Any] = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int16)": np.int16, "tensor(int8)": np.int8,
    "tensor(uint16)": np.uint16, "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_,
}


DYNAMIC_CHUNK = 1024  # prompt tokens per run for graphs without a fixed window (bounds activation memory)


def _dtype(type_str: str, where: str) -> Any:
    if type_str == "tensor(bfloat16)":
        import ml_dtypes

        return ml_dtypes.bfloat16
    try:
        return ORT_TYPES[type_str]
    except KeyError:
        raise PackageError(f"{where}: unsupported tensor type {type_str}") from None


def _static(dim: Any) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


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


@dataclass
class _Runner:
    stage: Stage
    session: Any
    provider: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    run_options: Any


@dataclass
class LoadReport:
    """What loading did: seconds per stage, providers, cache hits and fallbacks."""

    seconds: float = 0.0
    stages: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class DecoderPipeline:
    """Prefill and decode for one package; `prefill(ids)` and `decode(token)` return the next-token logits."""

    def __init__(self, config: GenaiConfig, options: RuntimeOptions | None = None) -> None:
        import onnxruntime as ort

        self.config = config
        self.options = options or RuntimeOptions()
        self.report = LoadReport()
        libraries = config.custom_ops_libraries()
        if libraries and not self.options.allow_custom_ops:
            where, library = libraries[0]
            raise PackageError(
                f"{config.path}: {where}: the package asks to load native code ({library}); a package is data, so "
                "this is refused unless you trust this package and allow it (`--allow-custom-ops`)"
            )
        start = time.perf_counter()
        self._runners: list[_Runner] = []
        sessions: dict[tuple[str, str], Any] = {}
        keys = [(stage.filename, repr(stage.session or config.session)) for stage in config.stages]
        keep_spinning = len(set(keys)) == 1  # several sessions: see providers.SPIN_THEN_STOP
        for stage, key in zip(config.stages, keys, strict=True):
            created = sessions.get(key)
            if created is None:  # context and iterator often share one file: one session serves both
                created = sessions[key] = create_session(
                    config.folder / stage.filename, stage.session or config.session, self.options.threads,
                    self.options.provider, self.options.ep_cache_dir, keep_spinning, self.options.preferred_provider,
                )
            run_options = ort.RunOptions()
            for entry, value in stage.run_options.items():
                run_options.add_run_config_entry(entry, value)
            sess = created.session
            self._runners.append(_Runner(
                stage, sess, created.provider,
                {i.name: i for i in sess.get_inputs()}, {o.name: o for o in sess.get_outputs()}, run_options,
            ))
            self.report.stages.append({"id": stage.id, "provider": created.provider,
                                       "seconds": round(created.load_seconds, 3), "from_cache": created.from_cache})
            self.report.notes += [n for n in created.notes if n not in self.report.notes]
        self._idle = threading.Event()  # set while no generation runs (see busy())
        self._idle.set()
        self.huge_pages = None  # the background huge-page collapse, see hugepages.py; works only while idle
        if self.options.huge_pages:
            from toolkit.runtime.hugepages import start_collapse

            self.huge_pages = start_collapse(self._idle.wait)
        self.report.seconds = time.perf_counter() - start
        self._names = config.names
        self._layers = config.num_hidden_layers
        self._check_io()
        self._plan_kv()
        self._plan_window()
        self.position = 0
        self.ort_seconds = 0.0  # time spent inside onnxruntime, for overhead profiling

    @contextmanager
    def busy(self) -> Iterator[None]:
        """Mark a generation in progress: background work (the huge-page collapse) waits until it ends."""
        self._idle.clear()
        try:
            yield
        finally:
            self._idle.set()

    # ---- load-time analysis -------------------------------------------------------------------------------
    def _managed_inputs(self) -> set[str]:
        n = self._names
        names = {n.input_ids, n.position_ids, n.attention_mask, n.past_sequence_length, n.total_sequence_length}
        for i in range(self._layers):
            names |= {n.past_key_names % i, n.past_value_names % i}
        return names

    def _check_io(self) -> None:
        """Every stage input must be managed or produced by an earlier stage that runs in the same phase."""
        managed_in = self._managed_inputs()
        file = self.config.path
        for phase in ("prompt", "token"):
            produced: set[str] = set()
            for r in self._runners:
                if not (r.stage.run_on_prompt if phase == "prompt" else r.stage.run_on_token_gen):
                    continue
                for name in r.inputs:
                    if name not in managed_in and name not in produced:
                        raise PackageError(
                            f"{file}: pipeline stage {r.stage.id!r} ({r.stage.filename}) needs input {name!r}, "
                            f"which no earlier stage produces and the runtime does not manage"
                        )
                for name in r.outputs:
                    produced.add(r.stage.output_names_forwarder.get(name, name))
            if self._names.logits not in produced:
                raise PackageError(f"{file}: no stage outputs the logits {self._names.logits!r} ({phase} phase)")

    def _plan_kv(self) -> None:
        """Find the KV inputs' shape and type and decide how present outputs reach the next step."""
        n = self._names
        self._kv_names: list[tuple[str, str, str, str]] = [
            (n.past_key_names % i, n.past_value_names % i, n.present_key_names % i, n.present_value_names % i)
            for i in range(self._layers)
        ]
        self._present_to_past = {}
        for past_k, past_v, present_k, present_v in self._kv_names:
            self._present_to_past[present_k], self._present_to_past[present_v] = past_k, past_v
        meta = None
        for r in self._runners:
            if self._kv_names[0][0] in r.inputs:
                meta = r.inputs[self._kv_names[0][0]]
                present = r.outputs.get(self._kv_names[0][2])
                break
        self.kv_mode = "none"
        self.max_tokens = self.config.context_length  # the most positions a conversation can use
        self._kv_values = {}
        self._token_plan = None
        if meta is None:
            return
        where = f"{self.config.path}: input {meta.name}"
        self._kv_dtype = _dtype(meta.type, where)
        shape = list(meta.shape)
        if len(shape) != 4:
            raise PackageError(f"{where}: expected a 4-d KV cache input, got shape {shape}")
        if all(_static(d) for d in shape):
            if present is None or list(present.shape) != shape:
                raise PackageError(
                    f"{where}: static KV cache of shape {shape} but present output has shape "
                    f"{None if present is None else list(present.shape)}; sliding KV caches "
                    f"(slide_key_value_cache) are not supported"
                )
            self.kv_mode = "static"
            self._kv_shape = [int(d) for d in shape]
            self.max_tokens = min(self._kv_shape[2], self.config.context_length)
        else:
            kv_heads = _static(shape[1]) or self.config.num_key_value_heads
            head = _static(shape[3]) or self.config.head_size
            if not kv_heads or not head:
                raise PackageError(f"{where}: KV heads and head size are symbolic and not in the config")
            self._kv_shape = [1, kv_heads, 0, head]
            self.kv_mode = "shared" if self.config.search.past_present_share_buffer else "grow"
        self._kv_buffers: list[np.ndarray] = []
        self._kv_values: dict[str, Any] = {}
        self._token_plan = None
        if self.kv_mode == "static":
            self._allocate_kv(self._kv_shape[2])

    def _allocate_kv(self, length: int) -> None:
        from onnxruntime import OrtValue

        shape = list(self._kv_shape)
        shape[2] = length
        self._kv_buffers, self._kv_values = [], {}
        for past_k, past_v, present_k, present_v in self._kv_names:
            for past, present in ((past_k, present_k), (past_v, present_v)):
                buf = np.zeros(shape, dtype=self._kv_dtype)
                value = OrtValue.ortvalue_from_numpy(buf)
                self._kv_buffers.append(buf)
                self._kv_values[past] = value
                self._kv_values[present] = value
        self._token_plan = None

    def _plan_window(self) -> None:
        """Window size for prompts: from sliding_window, checked against static prompt-stage shapes."""
        sw = self.config.sliding_window
        self.window = sw.window_size if sw else None
        self._fixed_window = False  # prompt models of static shape: the last window is padded
        if sw is not None and sw.alignment != "left":
            raise PackageError(f"{self.config.path}: model.decoder.sliding_window.alignment: only \"left\" is "
                               f"supported, got {sw.alignment!r}")
        if sw is not None and sw.slide_key_value_cache:
            raise PackageError(f"{self.config.path}: model.decoder.sliding_window.slide_key_value_cache: true is "
                               f"not supported (static KV buffers are updated in place)")
        for r in self._runners:
            if not r.stage.run_on_prompt:
                continue
            for meta in r.inputs.values():
                kv_names = {name for names in self._kv_names for name in names}
                if meta.name in kv_names or len(meta.shape) < 2 or meta.name == self._names.attention_mask:
                    continue
                if meta.name in (self._names.past_sequence_length, self._names.total_sequence_length):
                    continue
                seq = _static(meta.shape[1])
                if seq is not None and seq > 1:
                    self._fixed_window = True
                if seq is not None and seq > 1 and self.window is None:
                    raise PackageError(f"{self.config.path}: stage {r.stage.id!r} input {meta.name!r} has a fixed "
                                       f"length {seq} but model.decoder.sliding_window is not set")
                if seq is not None and self.window is not None and seq not in (1, self.window):
                    raise PackageError(f"{self.config.path}: model.decoder.sliding_window.window_size is "
                                       f"{self.window} but stage {r.stage.id!r} input {meta.name!r} has length {seq}")
        self.pad_value = sw.pad_value if sw else 0

    @property
    def providers(self) -> list[str]:
        return [r.provider for r in self._runners]

    # ---- state -----------------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the conversation: the next prefill starts at position 0 (buffers are reused)."""
        self.position = 0
        if self.kv_mode == "grow":
            self._kv_values = {}

    def ensure_capacity(self, total_tokens: int) -> None:
        """Make room for `total_tokens` positions, or raise if the package cannot hold them."""
        limit = self.max_tokens
        if total_tokens > limit:
            raise PackageError(f"{self.config.path}: {total_tokens} tokens do not fit the model's context of "
                               f"{limit} tokens")
        if self.kv_mode == "shared":
            have = self._kv_buffers[0].shape[2] if self._kv_buffers else 0
            if total_tokens > have:
                need = min(limit, max(total_tokens, 2 * have, 256))
                old = self._kv_buffers
                self._allocate_kv(need)
                for new, prev in zip(self._kv_buffers, old, strict=False):
                    new[:, :, :prev.shape[2]] = prev

    # ---- running ---------------------------------------------------------------------------------------------
    def _int_input(self, name: str, values: np.ndarray) -> Any:
        from onnxruntime import OrtValue

        for r in self._runners:
            if name in r.inputs:
                values = values.astype(_dtype(r.inputs[name].type, name), copy=False)
                break
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
            fixed = _static(mask_meta.shape[1]) if len(mask_meta.shape) == 2 else None
            mask = np.zeros((1, fixed or past + width), dtype=np.int64)
            mask[0, :past + width] = 1
            values[n.attention_mask] = self._int_input(n.attention_mask, mask)
        return values

    def _run_phase(self, prompt: bool, managed: dict[str, Any], last_real: int, run_lm_head: bool,
                   shapes: dict[str, tuple[tuple[int, ...], Any]] | None = None) -> Any:
        """Run the stages of one phase once; returns the logits OrtValue (None when lm_head was skipped)."""
        store: dict[str, Any] = {}
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
                value = self._kv_values.get(name)
                if value is None:
                    value = managed.get(name)
                if value is None:
                    value = store.get(name)
                if value is None:
                    raise ModelLoadError(f"stage {stage.id!r}: no value for input {name!r}")
                if prompt and stage.is_lm_head and name not in managed and len(meta.shape) == 3 \
                        and _static(meta.shape[1]) is None and value.shape()[1] > 1:
                    value = _slice_position(value, last_real)
                binding.bind_ortvalue_input(name, value)
            for name in r.outputs:
                if self.kv_mode in ("static", "shared") and name in self._kv_values:
                    binding.bind_ortvalue_output(name, self._kv_values[name])
                else:
                    binding.bind_output(name, "cpu")
            t0 = time.perf_counter()
            r.session.run_with_iobinding(binding, r.run_options)
            self.ort_seconds += time.perf_counter() - t0
            for name, value in zip(r.outputs, binding.get_outputs(), strict=True):
                if shapes is not None:
                    key = stage.output_names_forwarder.get(name, name)
                    shapes[key] = (tuple(value.shape()), _dtype(value.data_type(), name))
                if name == logits_name:
                    logits = value
                elif self.kv_mode == "grow" and name in self._present_to_past:
                    self._kv_values[self._present_to_past[name]] = value
                elif name not in self._kv_values:
                    store[stage.output_names_forwarder.get(name, name)] = value
        return logits

    def _empty_grow_kv(self) -> None:
        from onnxruntime import OrtValue

        shape = list(self._kv_shape)
        shape[2] = 0
        for past_k, past_v, _, _ in self._kv_names:
            for past in (past_k, past_v):
                self._kv_values[past] = OrtValue.ortvalue_from_numpy(np.zeros(shape, dtype=self._kv_dtype))

    def prefill(self, token_ids: Sequence[int]) -> np.ndarray:
        """Run the prompt (continuing after any earlier turns); returns logits for the next token."""
        ids = np.asarray(token_ids, dtype=np.int64)
        if ids.size == 0:  # the CLI refuses an empty prompt, so the package's chat template rendered nothing
            raise PackageError(f"{self.config.folder}: the prompt has no tokens: the package's chat template "
                               "(tokenizer_config.json chat_template, or chat_template.jinja) rendered nothing")
        if self._fixed_window:
            width = self.window
        else:  # dynamic-length graphs: bigger chunks make better matrix products (512 tokens: ~18% faster)
            width = self.options.prefill_chunk or max(self.window or 0, DYNAMIC_CHUNK)
        padded = -(-ids.size // width) * width if self._fixed_window else ids.size
        if self.kv_mode == "grow" and self.position == 0:
            self._empty_grow_kv()
        self.ensure_capacity(self.position + padded)
        logits = None
        for start in range(0, ids.size, width):
            chunk = ids[start:start + width]
            real = chunk.size
            if real < width and self._fixed_window:
                chunk = np.concatenate([chunk, np.full(width - real, self.pad_value, dtype=np.int64)])
            last = start + width >= ids.size
            managed = self._managed_values(chunk, real, self.position)
            logits = self._run_phase(True, managed, real - 1, run_lm_head=last)
            self.position += real
            if self.kv_mode == "grow" and chunk.size > real:
                self._trim_grow_kv()
        return self._last_logits(logits, (ids.size - 1) % width)

    def _trim_grow_kv(self) -> None:
        from onnxruntime import OrtValue

        for past_k, past_v, _, _ in self._kv_names:
            for past in (past_k, past_v):
                arr = self._kv_values[past].numpy()[:, :, :self.position]
                self._kv_values[past] = OrtValue.ortvalue_from_numpy(np.ascontiguousarray(arr))

    @staticmethod
    def _last_logits(logits: Any, index: int) -> np.ndarray:
        arr = logits.numpy()
        arr = arr.reshape(-1, arr.shape[-1])
        return arr[min(index, arr.shape[0] - 1)].astype(np.float32, copy=False)

    def decode(self, token: int) -> np.ndarray:
        """Run one generated token; returns logits for the one after it."""
        self.ensure_capacity(self.position + 1)
        if self._token_plan is not None:
            logits = self._token_plan.step(token, self.position)
            self.position += 1
            return logits
        managed = self._managed_values(np.array([token], dtype=np.int64), 1, self.position)
        shapes: dict[str, tuple[tuple[int, ...], Any]] = {}
        value = self._run_phase(False, managed, 0, run_lm_head=True, shapes=shapes)
        self.position += 1
        if self.kv_mode in ("static", "shared"):
            from toolkit.runtime.token_plan import TokenPlan

            runners = [r for r in self._runners if r.stage.run_on_token_gen]
            self._token_plan = TokenPlan(self, runners, shapes)
        return self._last_logits(value, 0)

    def _input_dtype(self, name: str) -> Any:
        for r in self._runners:
            if name in r.inputs:
                return _dtype(r.inputs[name].type, name)
        return np.int64


def _slice_position(value: Any, index: int) -> Any:
    """The [:, index:index+1] slice of a [batch, seq, hidden] OrtValue (lm_head needs only the last token)."""
    from onnxruntime import OrtValue

    arr = value.numpy()
    return OrtValue.ortvalue_from_numpy(np.ascontiguousarray(arr[:, index:index + 1]))
