"""KV cache layouts: how the past key/value inputs are fed, where a run's new entries go, and which tokens they hold.

The layout is decided once at load from the graphs' KV input shapes (`kv_cache_for`):

| layout | when | entries |
|---|---|---|
| `StaticKV` ("static") | static inputs `[1, kv_heads, context, head]` | one buffer per layer and K/V, allocated at load |
| `SharedBufferKV` ("shared") | dynamic inputs, `search.past_present_share_buffer` | the same, sized to the request |
| `GrowingKV` ("grow") | dynamic inputs without it | the present outputs become the next past |
| `KVCache` ("none") | no KV inputs | nothing |

In the first two a buffer is bound as both the past input and the present output, and the graph writes the new
rows in place at the position (gpt-fast's `KVCache.update`): nothing is copied between steps, and the pre-bound
`TokenPlan` can drive them. Every layout records the token ids whose entries it holds, so it alone owns the
position (the number of them) and can say how much of a new prompt it already holds (`reusable_prefix`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from catalog.errors import PackageError
from toolkit.runtime.config import GenaiConfig
from toolkit.runtime.stages import StageRunner, static_dim, tensor_dtype

MIN_SHARED_LENGTH = 256  # a shared buffer starts at least this long and at least doubles when it grows


class LayerNames(NamedTuple):
    """The KV input and output names of one layer."""

    past_key: str
    past_value: str
    present_key: str
    present_value: str


def layer_names(config: GenaiConfig) -> list[LayerNames]:
    """Every layer's KV names, from the config's `%d` patterns."""
    n = config.names
    return [LayerNames(n.past_key_names % i, n.past_value_names % i, n.present_key_names % i,
                       n.present_value_names % i) for i in range(config.num_hidden_layers)]


@dataclass(frozen=True)
class KVSpec:
    """What the graphs say about the KV inputs: names, `[1, kv_heads, length, head]` (length 0: dynamic), dtype."""

    layers: tuple[LayerNames, ...]
    shape: tuple[int, int, int, int]
    dtype: Any


class KVCache:
    """The interface, and the layout of graphs without KV inputs: only the token record and the position."""

    layout = "none"
    reusable = False  # a later prompt that starts with the recorded tokens may keep their entries
    in_place = False  # the graph writes into the bound past buffers, so a TokenPlan may bind them once

    def __init__(self, max_tokens: int) -> None:
        self.max_tokens = max_tokens  # the most positions a conversation can use
        self._tokens: list[int] = []

    @property
    def position(self) -> int:
        """Where the next run writes: the number of tokens whose entries are held."""
        return len(self._tokens)

    @property
    def tokens(self) -> list[int]:
        """The token ids whose entries are held, in order (a copy)."""
        return list(self._tokens)

    def reusable_prefix(self, ids: Sequence[int]) -> int:
        """How many leading tokens of `ids` are already held (at least one is always left to run)."""
        if not self.reusable:
            return 0
        limit, held, n = min(len(self._tokens), len(ids) - 1), self._tokens, 0
        while n < limit and held[n] == ids[n]:
            n += 1
        return n

    def reset(self) -> None:
        """Forget every entry: the next run writes at position 0 (buffers are kept)."""
        self.rewind(0)

    def rewind(self, position: int) -> None:
        """Keep the entries of the first `position` tokens; the next run writes after them."""
        del self._tokens[position:]

    def reserve(self, total_tokens: int) -> bool:
        """Make room for `total_tokens` positions; True when the buffers were replaced (bindings to them are stale)."""
        return False

    def written(self, ids: Sequence[int], width: int) -> None:
        """Record a run of `width` positions whose first `len(ids)` held these real tokens (the rest were pads)."""
        self._tokens.extend(ids)

    def past(self, name: str) -> Any | None:
        """The value to bind to KV input `name`, or None when it is not one."""
        return None

    def present(self, name: str) -> Any | None:
        """The buffer to bind output `name` to when the graph writes it in place, else None."""
        return None

    def take_output(self, name: str, value: Any) -> bool:
        """After a run: whether output `name` was a KV entry this cache keeps (so no later stage gets it)."""
        return False

    def bound_values(self) -> Mapping[str, Any]:
        """Every past and present name and the value bound to it, for layouts written in place."""
        return {}


class _InPlaceKV(KVCache):
    """Buffers bound as both the past input and the present output of every layer."""

    reusable = True
    in_place = True

    def __init__(self, spec: KVSpec, max_tokens: int) -> None:
        super().__init__(max_tokens)
        self.spec = spec
        self._buffers: list[np.ndarray] = []
        self._values: dict[str, Any] = {}  # past and present name -> the OrtValue over one layer's K or V buffer

    def _allocate(self, length: int) -> None:
        from onnxruntime import OrtValue  # heavy: imported once a model loads

        shape = list(self.spec.shape)
        shape[2] = length
        self._buffers, self._values = [], {}
        for layer in self.spec.layers:
            for past, present in ((layer.past_key, layer.present_key), (layer.past_value, layer.present_value)):
                buf = np.zeros(shape, dtype=self.spec.dtype)
                value = OrtValue.ortvalue_from_numpy(buf)
                self._buffers.append(buf)
                self._values[past] = value
                self._values[present] = value

    def past(self, name: str) -> Any | None:
        return self._values.get(name)

    def present(self, name: str) -> Any | None:
        return self._values.get(name)

    def take_output(self, name: str, value: Any) -> bool:
        return name in self._values

    def bound_values(self) -> Mapping[str, Any]:
        return self._values


class StaticKV(_InPlaceKV):
    """Static-shape KV inputs: the buffers are allocated once, at load, for the whole context."""

    layout = "static"

    def __init__(self, spec: KVSpec, max_tokens: int) -> None:
        super().__init__(spec, max_tokens)
        self._allocate(spec.shape[2])


class SharedBufferKV(_InPlaceKV):
    """Dynamic KV inputs sharing past and present: buffers sized to the request, grown (and copied) when needed."""

    layout = "shared"

    def reserve(self, total_tokens: int) -> bool:
        have = self._buffers[0].shape[2] if self._buffers else 0
        if total_tokens <= have:
            return False
        need = min(self.max_tokens, max(total_tokens, 2 * have, MIN_SHARED_LENGTH))
        old = self._buffers
        self._allocate(need)
        for new, prev in zip(self._buffers, old, strict=False):
            new[:, :, :prev.shape[2]] = prev
        return True


class GrowingKV(KVCache):
    """Dynamic KV inputs the graph concatenates to: each run's present outputs become the next run's past."""

    layout = "grow"

    def __init__(self, spec: KVSpec, max_tokens: int) -> None:
        super().__init__(max_tokens)
        self.spec = spec
        self._present_to_past = {}
        for layer in spec.layers:
            self._present_to_past[layer.present_key] = layer.past_key
            self._present_to_past[layer.present_value] = layer.past_value
        self._values: dict[str, Any] = {}
        self.rewind(0)

    def rewind(self, position: int) -> None:
        super().rewind(position)
        self._keep_rows(position)

    def written(self, ids: Sequence[int], width: int) -> None:
        super().written(ids, width)
        if width > len(ids):  # the pads' rows were appended too: cut them off
            self._keep_rows(self.position)

    def _keep_rows(self, length: int) -> None:
        from onnxruntime import OrtValue  # heavy: imported once a model loads

        for layer in self.spec.layers:
            for past in (layer.past_key, layer.past_value):
                if length == 0:  # spec.shape has length 0: the empty past of a first run
                    rows = np.zeros(self.spec.shape, dtype=self.spec.dtype)
                else:
                    rows = np.ascontiguousarray(self._values[past].numpy()[:, :, :length])
                self._values[past] = OrtValue.ortvalue_from_numpy(rows)

    def past(self, name: str) -> Any | None:
        return self._values.get(name)

    def take_output(self, name: str, value: Any) -> bool:
        past = self._present_to_past.get(name)
        if past is None:
            return False
        self._values[past] = value
        return True


def kv_cache_for(config: GenaiConfig, runners: Sequence[StageRunner]) -> KVCache:
    """The KV layout the stages' graphs call for, read from the session metadata of the first stage taking KV."""
    layers = layer_names(config)
    meta = present = None
    for r in runners:
        if layers[0].past_key in r.inputs:
            meta = r.inputs[layers[0].past_key]
            present = r.outputs.get(layers[0].present_key)
            break
    if meta is None:
        return KVCache(config.context_length)
    where = f"{config.path}: input {meta.name}"
    dtype = tensor_dtype(meta.type, where)
    shape = list(meta.shape)
    if len(shape) != 4:
        raise PackageError(f"{where}: expected a 4-d KV cache input, got shape {shape}")
    if all(static_dim(d) for d in shape):
        if present is None or list(present.shape) != shape:
            raise PackageError(
                f"{where}: static KV cache of shape {shape} but present output has shape "
                f"{None if present is None else list(present.shape)}; sliding KV caches "
                f"(slide_key_value_cache) are not supported"
            )
        spec = KVSpec(tuple(layers), (int(shape[0]), int(shape[1]), int(shape[2]), int(shape[3])), dtype)
        return StaticKV(spec, min(spec.shape[2], config.context_length))
    kv_heads = static_dim(shape[1]) or config.num_key_value_heads
    head = static_dim(shape[3]) or config.head_size
    if not kv_heads or not head:
        raise PackageError(f"{where}: KV heads and head size are symbolic and not in the config")
    spec = KVSpec(tuple(layers), (1, kv_heads, 0, head), dtype)
    if config.search.past_present_share_buffer:
        return SharedBufferKV(spec, config.context_length)
    return GrowingKV(spec, config.context_length)
