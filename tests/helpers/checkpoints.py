"""Write tiny random Hugging Face checkpoints (qwen2 with biases and 2 KV heads; llama) for tests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import ml_dtypes
import numpy as np
from safetensors.numpy import save_file

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"
STORIES = FIXTURES / "stories260k-hf"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")

QWEN2_TINY = dict(model_type="qwen2", hidden_size=96, intermediate_size=160, num_hidden_layers=2,
                  num_attention_heads=6, num_key_value_heads=2, vocab_size=512, rms_norm_eps=1e-6,
                  rope_theta=10000.0, tie_word_embeddings=False, max_position_embeddings=512)
LLAMA_TINY = dict(model_type="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=4, vocab_size=512, rms_norm_eps=1e-5,
                  rope_theta=10000.0, tie_word_embeddings=True, max_position_embeddings=512)


def random_weights(cfg: dict, seed: int, std: float = 0.08) -> dict[str, np.ndarray]:
    """HF-named float32 weights for a config; norms near 1, q/k/v biases for qwen2."""
    rng = np.random.default_rng(seed)
    h, inter = cfg["hidden_size"], cfg["intermediate_size"]
    nh, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = h // nh

    def mat(o, i):
        return (rng.standard_normal((o, i)) * std).astype(np.float32)

    def norm(n):
        return (1.0 + 0.2 * rng.standard_normal(n)).astype(np.float32)

    w = {"model.embed_tokens.weight": (rng.standard_normal((cfg["vocab_size"], h)) * 0.5).astype(np.float32),
         "model.norm.weight": norm(h)}
    if not cfg["tie_word_embeddings"]:
        w["lm_head.weight"] = mat(cfg["vocab_size"], h)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        w[p + "self_attn.q_proj.weight"] = mat(nh * hd, h)
        w[p + "self_attn.k_proj.weight"] = mat(kv * hd, h)
        w[p + "self_attn.v_proj.weight"] = mat(kv * hd, h)
        w[p + "self_attn.o_proj.weight"] = mat(h, nh * hd)
        w[p + "mlp.gate_proj.weight"] = mat(inter, h)
        w[p + "mlp.up_proj.weight"] = mat(inter, h)
        w[p + "mlp.down_proj.weight"] = mat(h, inter)
        w[p + "input_layernorm.weight"] = norm(h)
        w[p + "post_attention_layernorm.weight"] = norm(h)
        if cfg["model_type"] == "qwen2":
            for n, size in (("q", nh * hd), ("k", kv * hd), ("v", kv * hd)):
                w[p + f"self_attn.{n}_proj.bias"] = (rng.standard_normal(size) * 0.3).astype(np.float32)
    return w


def write_checkpoint(folder: Path, cfg: dict, seed: int = 0, dtype: str = "float32",
                     shards: int = 1) -> Path:
    """Write config.json, safetensors (optionally bf16/fp16 and sharded) and the stories260K tokenizer."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = random_weights(cfg, seed)
    np_dtype = {"float32": np.float32, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16}[dtype]
    weights = {k: v.astype(np_dtype) for k, v in weights.items()}
    config = {**cfg, "architectures": ["Qwen2ForCausalLM" if cfg["model_type"] == "qwen2" else "LlamaForCausalLM"],
              "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": dtype}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    names = sorted(weights)
    if shards == 1:
        save_file(weights, str(folder / "model.safetensors"))
    else:
        index = {}
        for s in range(shards):
            part = {n: weights[n] for n in names[s::shards]}
            fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
            save_file(part, str(folder / fname))
            index.update({n: fname for n in part})
        (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": index}))
    for name in TOKENIZER_FILES:
        shutil.copyfile(STORIES / name, folder / name)
    return folder
