"""Write a shape-faithful synthetic DeepSeek-R1-Distill-Qwen-1.5B checkpoint (random bf16, std 0.02).

Real config (Qwen2: hidden 1536, 28 layers, 12 heads, 2 KV heads, intermediate 8960, vocab 151936,
untied lm_head, q/k/v biases), two safetensors shards written tensor by tensor (never the whole
model in memory), and the DeepSeek-R1-Distill-Qwen tokenizer from ../shared/fixtures.

    python benchmarks/make_synthetic_checkpoint.py OUT_DIR [--layers 28] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import shutil
import struct
import sys
import time
from pathlib import Path

import ml_dtypes
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TOKENIZER = ROOT.parent / "shared" / "fixtures" / "deepseek-r1-distill-qwen-tokenizer"

CONFIG = {
    "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
    "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 1536, "initializer_range": 0.02,
    "intermediate_size": 8960, "max_position_embeddings": 131072, "max_window_layers": 21,
    "model_type": "qwen2", "num_attention_heads": 12, "num_hidden_layers": 28, "num_key_value_heads": 2,
    "rms_norm_eps": 1e-06, "rope_theta": 10000, "sliding_window": 4096, "tie_word_embeddings": False,
    "torch_dtype": "bfloat16", "use_cache": True, "use_sliding_window": False, "vocab_size": 151936,
}


def tensor_shapes(cfg: dict) -> dict[str, tuple[int, ...]]:
    """Every tensor name and shape of a Qwen2ForCausalLM checkpoint."""
    h, inter, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    hd = h // cfg["num_attention_heads"]
    kv = cfg["num_key_value_heads"] * hd
    shapes = {"model.embed_tokens.weight": (v, h), "model.norm.weight": (h,), "lm_head.weight": (v, h)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes.update({
            p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,),
            p + "self_attn.q_proj.weight": (h, h), p + "self_attn.q_proj.bias": (h,),
            p + "self_attn.k_proj.weight": (kv, h), p + "self_attn.k_proj.bias": (kv,),
            p + "self_attn.v_proj.weight": (kv, h), p + "self_attn.v_proj.bias": (kv,),
            p + "self_attn.o_proj.weight": (h, h),
            p + "mlp.gate_proj.weight": (inter, h), p + "mlp.up_proj.weight": (inter, h),
            p + "mlp.down_proj.weight": (h, inter),
        })
    return shapes


def _values(rng: np.random.Generator, name: str, shape: tuple[int, ...], rows_per_chunk: int = 4096):
    """Yield bf16 bytes of one tensor in row chunks: norms are 1, everything else N(0, 0.02)."""
    if name.endswith("norm.weight"):
        yield np.ones(shape, ml_dtypes.bfloat16).tobytes()
        return
    if len(shape) == 1:
        yield (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(ml_dtypes.bfloat16).tobytes()
        return
    for r0 in range(0, shape[0], rows_per_chunk):
        rows = min(rows_per_chunk, shape[0] - r0)
        chunk = rng.standard_normal((rows, shape[1]), dtype=np.float32) * 0.02
        yield chunk.astype(ml_dtypes.bfloat16).tobytes()


def write_shard(path: Path, shapes: dict[str, tuple[int, ...]], rng: np.random.Generator) -> None:
    """Stream one safetensors file: header with offsets, then each tensor's bytes."""
    header, offset = {}, 0
    for name, shape in shapes.items():
        n = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    header["__metadata__"] = {"format": "pt"}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)))
        fh.write(raw)
        for name, shape in shapes.items():
            for block in _values(rng, name, shape):
                fh.write(block)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--layers", type=int, default=28, help="fewer layers for a quick run (default 28)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    cfg = {**CONFIG, "num_hidden_layers": args.layers}
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    names = list(tensor_shapes(cfg).items())
    half = len(names) // 2
    shards = [dict(names[:half]), dict(names[half:])]
    weight_map = {}
    for i, shard in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        write_shard(args.out / fname, shard, rng)
        weight_map.update({n: fname for n in shard})
    total = sum(int(np.prod(s)) for s in tensor_shapes(cfg).values())
    (args.out / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total * 2}, "weight_map": weight_map}, indent=2))
    (args.out / "config.json").write_text(json.dumps(cfg, indent=2))
    (args.out / "generation_config.json").write_text(json.dumps(
        {"bos_token_id": 151646, "eos_token_id": 151643, "do_sample": True, "temperature": 0.6, "top_p": 0.95}))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        if (TOKENIZER / name).is_file():
            shutil.copyfile(TOKENIZER / name, args.out / name)
    print(json.dumps({"out": str(args.out), "parameters": total, "bytes": total * 2,
                      "seconds": round(time.perf_counter() - t0, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
