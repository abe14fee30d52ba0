"""Convert a Qwen2 Hugging Face checkpoint to GGUF and quantize it to Q4_0 for the llama.cpp anchor.

Runs in the benchmark venv that has llama-cpp-python and gguf (not a project dependency):

    /work/bench-venv/bin/python benchmarks/runtime_gguf.py CKPT_DIR OUT.gguf

Written with the `gguf` package directly (llama.cpp's convert_hf_to_gguf.py needs torch); the tensor
names and metadata are those convert_hf_to_gguf.py writes for Qwen2. The F16 intermediate is removed
after quantizing with llama_cpp.llama_model_quantize (ftype 2 = Q4_0).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

TENSOR_MAP = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
}


def load_tensors(ckpt: Path):
    """Yield (hf_name, float32 array) from every safetensors shard, one at a time (bf16 read by hand)."""
    import struct

    dtypes = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16}
    for shard in sorted(ckpt.glob("*.safetensors")):
        with open(shard, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
            base = 8 + n
            for name, info in header.items():
                if name == "__metadata__":
                    continue
                start, end = info["data_offsets"]
                f.seek(base + start)
                arr = np.frombuffer(f.read(end - start), dtype=dtypes[info["dtype"]]).reshape(info["shape"])
                if info["dtype"] == "BF16":
                    arr = (arr.astype(np.uint32) << 16).view(np.float32)
                yield name, arr.astype(np.float32)


def gguf_name(hf: str) -> str:
    if hf == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf == "model.norm.weight":
        return "output_norm.weight"
    if hf == "lm_head.weight":
        return "output.weight"
    parts = hf.split(".")  # model.layers.N.<module...>.<weight|bias>
    layer, module, kind = parts[2], ".".join(parts[3:-1]), parts[-1]
    return f"blk.{layer}.{TENSOR_MAP[module]}.{kind}"


def add_tokenizer(writer, ckpt: Path, vocab_size: int) -> None:
    import gguf

    tok = json.loads((ckpt / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = dict(tok["model"]["vocab"])
    added = {t["content"]: t["id"] for t in tok.get("added_tokens", [])}
    by_id = {i: t for t, i in vocab.items()}
    by_id.update({i: t for t, i in added.items()})
    tokens, types = [], []
    for i in range(vocab_size):
        if i in by_id:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.CONTROL if by_id[i] in added else gguf.TokenType.NORMAL)
        else:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    cfg = json.loads((ckpt / "config.json").read_text())
    writer.add_bos_token_id(int(cfg.get("bos_token_id") or 151643))
    writer.add_eos_token_id(int(cfg.get("eos_token_id") or 151643))


def convert(ckpt: Path, out_f16: Path) -> None:
    import gguf

    cfg = json.loads((ckpt / "config.json").read_text())
    writer = gguf.GGUFWriter(str(out_f16), "qwen2")
    writer.add_name("synthetic-qwen2")
    writer.add_context_length(4096)
    writer.add_embedding_length(cfg["hidden_size"])
    writer.add_block_count(cfg["num_hidden_layers"])
    writer.add_feed_forward_length(cfg["intermediate_size"])
    writer.add_head_count(cfg["num_attention_heads"])
    writer.add_head_count_kv(cfg["num_key_value_heads"])
    writer.add_rope_freq_base(float(cfg.get("rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(float(cfg["rms_norm_eps"]))
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    add_tokenizer(writer, ckpt, cfg["vocab_size"])
    for name, arr in load_tensors(ckpt):
        arr = arr.astype(np.float16) if arr.ndim == 2 else arr.astype(np.float32)
        writer.add_tensor(gguf_name(name), arr)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def quantize(src: Path, dst: Path) -> None:
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), params)
    if rc != 0:
        raise SystemExit(f"llama_model_quantize failed with {rc}")


def main() -> None:
    ckpt, out = Path(sys.argv[1]), Path(sys.argv[2])
    f16 = out.with_suffix(".f16.gguf")
    if not out.exists():
        convert(ckpt, f16)
        quantize(f16, out)
        f16.unlink()
    print(out)


if __name__ == "__main__":
    main()
