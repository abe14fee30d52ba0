"""The embeddings and lm_head stages (CPU): fp32, or int4 block-wise as both NPU and CPU packages ship them."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto

from toolkit.builder.graph import MS_DOMAIN, Graph
from toolkit.builder.quantize import BLOCK, BlockQuantized, quantize_blockwise


def build_embeddings(table: np.ndarray, quantized: bool) -> Graph:
    """input_ids int64 [1, S] -> input_hidden_states [1, S, H] (Gather or GatherBlockQuantized)."""
    vocab, hidden = table.shape
    g = Graph("embeddings")
    g.input("input_ids", TensorProto.INT64, [1, "sequence_length"])
    if quantized:
        bq = quantize_blockwise(table, shrink=(1.0,))  # a lookup: plain min/max ranges lose nothing measurable
        data = g.init("embed_tokens.qweight", bq.packed.reshape(vocab, -1))
        scales = g.init("embed_tokens.scales", bq.scales)
        zps = g.init("embed_tokens.qzeros", bq.zero_points)
        g.op("GatherBlockQuantized", [data, "input_ids", scales, zps], name="embed_tokens/Gather",
             outputs=["input_hidden_states"], domain=MS_DOMAIN, gather_axis=0, quantize_axis=1,
             block_size=BLOCK, bits=4)
    else:
        w = g.init("embed_tokens.weight", np.ascontiguousarray(table, dtype=np.float32))
        g.op("Gather", [w, "input_ids"], name="embed_tokens/Gather", outputs=["input_hidden_states"], axis=0)
    g.output("input_hidden_states", TensorProto.FLOAT, [1, "sequence_length", hidden])
    return g


def build_lm_head(weight: np.ndarray, quantized: bool, quantized_weight: BlockQuantized | None = None) -> Graph:
    """output_hidden_states [1, S, H] -> logits [1, S, vocab] (MatMul or MatMulNBits int4 block 32)."""
    vocab, hidden = weight.shape
    g = Graph("lm_head")
    g.input("output_hidden_states", TensorProto.FLOAT, [1, "sequence_length", hidden])
    if quantized:
        bq = quantized_weight if quantized_weight is not None else quantize_blockwise(weight)
        g.op("MatMulNBits",
             ["output_hidden_states", g.init("lm_head.qweight", bq.packed),
              g.init("lm_head.scales", bq.scales.reshape(-1)), g.init("lm_head.qzeros", bq.zero_points.reshape(-1))],
             name="lm_head/MatMulNBits", outputs=["logits"], domain=MS_DOMAIN,
             K=hidden, N=vocab, bits=bq.bits, block_size=BLOCK, accuracy_level=4)
    else:
        wt = g.init("lm_head.weight_t", np.ascontiguousarray(weight.T, dtype=np.float32))
        g.op("MatMul", ["output_hidden_states", wt], name="lm_head/MatMul", outputs=["logits"])
    g.output("logits", TensorProto.FLOAT, [1, "sequence_length", vocab])
    return g
