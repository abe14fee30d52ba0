"""Read a Hugging Face checkpoint folder: config.json and (sharded) safetensors, memory-mapped.

Tensors are read one at a time through numpy memory maps (bf16 via ml_dtypes), so a build never
holds the whole model in fp32.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import ml_dtypes
import numpy as np

from catalog.errors import BuildError, MissingFileError

_DTYPES = {
    "F32": np.dtype(np.float32),
    "F16": np.dtype(np.float16),
    "BF16": np.dtype(ml_dtypes.bfloat16),
    "F64": np.dtype(np.float64),
}
SUPPORTED_ARCHITECTURES = ("qwen2", "llama")


@dataclass(frozen=True)
class ModelConfig:
    """The architecture facts a build needs, read from config.json."""

    model_type: str
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    rms_norm_eps: float
    rope_theta: float
    tie_word_embeddings: bool
    attention_bias: bool
    bos_token_id: int | None
    eos_token_id: int | list[int] | None
    pad_token_id: int | None
    max_position_embeddings: int

    @classmethod
    def from_file(cls, path: Path) -> ModelConfig:
        """Parse config.json; unknown keys are ignored, missing or unsupported ones name the field."""
        try:
            raw = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise BuildError(f"{path}: cannot read config.json: {e}") from e
        model_type = raw.get("model_type")
        if model_type not in SUPPORTED_ARCHITECTURES:
            raise BuildError(
                f"{path}: model_type: {model_type!r} is not supported (supported: {', '.join(SUPPORTED_ARCHITECTURES)})"
            )
        if raw.get("rope_scaling"):
            raise BuildError(f"{path}: rope_scaling: {raw['rope_scaling']!r} is not supported")
        if raw.get("hidden_act", "silu") != "silu":
            raise BuildError(f"{path}: hidden_act: {raw['hidden_act']!r} is not supported (only silu)")

        def need(key: str):
            if key not in raw:
                raise BuildError(f"{path}: {key}: missing")
            return raw[key]

        heads = int(need("num_attention_heads"))
        hidden = int(need("hidden_size"))
        return cls(
            model_type=model_type,
            hidden_size=hidden,
            intermediate_size=int(need("intermediate_size")),
            num_layers=int(need("num_hidden_layers")),
            num_heads=heads,
            num_kv_heads=int(raw.get("num_key_value_heads") or heads),
            head_dim=int(raw.get("head_dim") or hidden // heads),
            vocab_size=int(need("vocab_size")),
            rms_norm_eps=float(raw.get("rms_norm_eps", 1e-6)),
            rope_theta=float(raw.get("rope_theta", 10000.0)),
            tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
            attention_bias=model_type == "qwen2" or bool(raw.get("attention_bias", False)),
            bos_token_id=raw.get("bos_token_id"),
            eos_token_id=raw.get("eos_token_id"),
            pad_token_id=raw.get("pad_token_id"),
            max_position_embeddings=int(raw.get("max_position_embeddings", 4096)),
        )


class Checkpoint:
    """A checkpoint folder; `tensor(name)` returns one weight as float32, read on demand."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise MissingFileError(f"{self.folder}: checkpoint folder does not exist")
        self.config = ModelConfig.from_file(self.folder / "config.json")
        self._index: dict[str, tuple[Path, str, list[int], int, int]] = {}
        files = sorted(self.folder.glob("*.safetensors"))
        if not files:
            raise BuildError(f"{self.folder}: no *.safetensors files found")
        for f in files:
            self._read_header(f)
        self._maps: dict[Path, np.memmap] = {}

    def _read_header(self, path: Path) -> None:
        try:
            with open(path, "rb") as fh:
                (n,) = struct.unpack("<Q", fh.read(8))
                if n <= 0 or n > 100_000_000:
                    raise ValueError(f"header length {n} is implausible")
                header = json.loads(fh.read(n))
        except (OSError, ValueError, struct.error) as e:
            raise BuildError(f"{path}: not a valid safetensors file: {e}") from e
        base = 8 + n
        for name, meta in header.items():
            if name == "__metadata__":
                continue
            dtype = meta.get("dtype")
            if dtype not in _DTYPES:
                raise BuildError(f"{path}: tensor {name}: dtype {dtype} is not supported (F32, F16, BF16)")
            start, end = meta["data_offsets"]
            self._index[name] = (path, dtype, list(meta["shape"]), base + start, base + end)

    def names(self) -> list[str]:
        """All tensor names in the checkpoint."""
        return list(self._index)

    def has(self, name: str) -> bool:
        """Whether the checkpoint holds a tensor of this name."""
        return name in self._index

    def raw(self, name: str) -> np.ndarray:
        """The tensor in its stored dtype, as a read-only memory-mapped view."""
        if name not in self._index:
            raise BuildError(f"{self.folder}: tensor {name} is missing from the checkpoint")
        path, dtype, shape, start, end = self._index[name]
        mm = self._maps.get(path)
        if mm is None:
            mm = self._maps[path] = np.memmap(path, dtype=np.uint8, mode="r")
        dt = _DTYPES[dtype]
        count = int(np.prod(shape)) if shape else 1
        if end - start != count * dt.itemsize:
            raise BuildError(f"{path}: tensor {name}: byte length does not match shape {shape} and {dtype}")
        return mm[start:end].view(dt).reshape(shape)

    def tensor(self, name: str) -> np.ndarray:
        """The tensor converted to float32 (a fresh array)."""
        return np.array(self.raw(name), dtype=np.float32)  # always a copy: callers may modify it

    def layer(self, i: int, suffix: str) -> np.ndarray:
        """`model.layers.{i}.{suffix}` as float32."""
        return self.tensor(f"model.layers.{i}.{suffix}")

    def lm_head(self) -> np.ndarray:
        """The output projection [vocab, hidden] (the embedding table when tied)."""
        if self.has("lm_head.weight"):
            return self.tensor("lm_head.weight")
        return self.tensor("model.embed_tokens.weight")

    def eos_ids(self) -> list[int]:
        """End-of-sequence ids from config.json (a list, possibly empty)."""
        eos = self.config.eos_token_id
        if eos is None:
            return []
        return list(eos) if isinstance(eos, list) else [int(eos)]
