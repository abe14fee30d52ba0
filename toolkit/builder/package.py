"""Package files: genai_config.json (decoder-pipeline), tokenizer files, and the manifest fragment."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from toolkit.builder.checkpoint import Checkpoint
from toolkit.files import sha256_file

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                   "vocab.json", "merges.txt", "chat_template.jinja", "generation_config.json")
MANIFEST_NAME = "toolkit_manifest.json"
EMBEDDINGS, TRANSFORMER, CONTEXT, ITERATOR, LM_HEAD = (
    "embeddings.onnx", "transformer.onnx", "context.onnx", "iterator.onnx", "lm_head.onnx")


def pad_token_id(ckpt: Checkpoint) -> int:
    """The id used to pad the last prompt window: config pad, else the first eos, else 0."""
    cfg = ckpt.config
    if cfg.pad_token_id is not None:
        return int(cfg.pad_token_id)
    eos = ckpt.eos_ids()
    return eos[0] if eos else 0


QNN_HTP_OPTIONS = {"backend_path": "QnnHtp.dll", "htp_performance_mode": "burst",
                   "htp_graph_finalization_optimization_mode": "3"}


def genai_config(ckpt: Checkpoint, context_file: str, iterator_file: str, context_length: int,
                 window: int, npu: bool = False) -> dict:
    """The ONNX Runtime GenAI decoder-pipeline config for our four stages.

    For NPU packages the context and iterator stages name QNN's HTP backend, as published
    Foundry Local packages do; runtimes resolve `backend_path` to their own QNN library.
    """
    cfg = ckpt.config
    n = cfg.num_layers
    kv_in = [f"past_keys_{i}" for i in range(n)] + [f"past_values_{i}" for i in range(n)]
    kv_out = [f"present_keys_{i}" for i in range(n)] + [f"present_values_{i}" for i in range(n)]
    block_in = ["input_hidden_states", *kv_in, "past_seq_len", "total_seq_len"]
    block_out = ["output_hidden_states", *kv_out]
    eos = ckpt.eos_ids()
    npu_options = ({"session_options": {"log_id": "onnxruntime-genai",
                                        "provider_options": [{"qnn": dict(QNN_HTP_OPTIONS)}]}} if npu else {})
    return {
        "model": {
            "bos_token_id": cfg.bos_token_id if cfg.bos_token_id is not None else 0,
            "context_length": context_length,
            "decoder": {
                "session_options": {"log_id": "onnxruntime-genai", "provider_options": []},
                "head_size": cfg.head_dim,
                "hidden_size": cfg.hidden_size,
                "num_attention_heads": cfg.num_heads,
                "num_hidden_layers": n,
                "num_key_value_heads": cfg.num_kv_heads,
                "inputs": {
                    "input_ids": "input_ids",
                    "past_key_names": "past_keys_%d",
                    "past_value_names": "past_values_%d",
                    "past_sequence_length": "past_seq_len",
                    "total_sequence_length": "total_seq_len",
                },
                "outputs": {
                    "logits": "logits",
                    "present_key_names": "present_keys_%d",
                    "present_value_names": "present_values_%d",
                },
                "sliding_window": {"window_size": window, "pad_value": 0, "alignment": "left",
                                   "slide_key_value_cache": False},
                "pipeline": [
                    {"embeddings": {"filename": EMBEDDINGS, "inputs": ["input_ids"],
                                    "outputs": ["input_hidden_states"]}},
                    {"context": {"filename": context_file, "inputs": block_in, "outputs": block_out,
                                 **npu_options, "run_on_token_gen": False}},
                    {"iterator": {"filename": iterator_file, "inputs": block_in, "outputs": block_out,
                                  **npu_options, "run_on_prompt": False}},
                    {"lm_head": {"filename": LM_HEAD, "inputs": ["output_hidden_states"], "outputs": ["logits"],
                                 "is_lm_head": True}},
                ],
            },
            "eos_token_id": eos if len(eos) > 1 else (eos[0] if eos else 0),
            "pad_token_id": pad_token_id(ckpt),
            "type": "decoder-pipeline",
            "vocab_size": cfg.vocab_size,
        },
        "search": {
            "diversity_penalty": 0.0, "do_sample": False, "early_stopping": True, "length_penalty": 1.0,
            "max_length": context_length, "min_length": 0, "no_repeat_ngram_size": 0, "num_beams": 1,
            "num_return_sequences": 1, "past_present_share_buffer": True, "repetition_penalty": 1.0,
            "temperature": 1.0, "top_k": 1, "top_p": 1.0,
        },
    }


def copy_tokenizer(ckpt: Checkpoint, out: Path) -> list[Path]:
    """Copy the tokenizer files that exist in the checkpoint folder."""
    copied = []
    for name in TOKENIZER_FILES:
        src = ckpt.folder / name
        if src.is_file():
            shutil.copyfile(src, out / name)
            copied.append(out / name)
    return copied


def write_manifest(out: Path, info: dict) -> dict:
    """Write the manifest fragment: every file of the package with size and sha256, plus build facts."""
    files = []
    for p in sorted(out.rglob("*")):
        if p.is_file() and p.name != MANIFEST_NAME:
            files.append({"path": p.relative_to(out).as_posix(), "size": p.stat().st_size,
                          "sha256": sha256_file(p)})
    manifest = {**info, "files": files, "size": sum(f["size"] for f in files)}
    (out / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
