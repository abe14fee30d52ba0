"""A checkpoint's weights as the linears read them: one layer's tensors, and the norm scale feeding a linear."""

from __future__ import annotations

import numpy as np

from toolkit.builder.checkpoint import Checkpoint
from toolkit.builder.transformer import LayerWeights


def checkpoint_layer(ckpt: Checkpoint, i: int) -> LayerWeights:
    """One layer's weights as stored (norm scales kept in the norms)."""
    cfg = ckpt.config
    p = f"model.layers.{i}."

    def bias(name: str):
        return ckpt.tensor(p + name) if cfg.attention_bias and ckpt.has(p + name) else None

    return LayerWeights(
        q=ckpt.tensor(p + "self_attn.q_proj.weight"), k=ckpt.tensor(p + "self_attn.k_proj.weight"),
        v=ckpt.tensor(p + "self_attn.v_proj.weight"), o=ckpt.tensor(p + "self_attn.o_proj.weight"),
        gate=ckpt.tensor(p + "mlp.gate_proj.weight"), up=ckpt.tensor(p + "mlp.up_proj.weight"),
        down=ckpt.tensor(p + "mlp.down_proj.weight"),
        q_bias=bias("self_attn.q_proj.bias"), k_bias=bias("self_attn.k_proj.bias"),
        v_bias=bias("self_attn.v_proj.bias"),
        input_norm=ckpt.tensor(p + "input_layernorm.weight"),
        post_norm=ckpt.tensor(p + "post_attention_layernorm.weight"),
    )


_NORM_OF = {"attn.q_proj": "input_layernorm", "attn.k_proj": "input_layernorm", "attn.v_proj": "input_layernorm",
            "mlp.gate_proj": "post_attention_layernorm", "mlp.up_proj": "post_attention_layernorm"}


def norm_input_scale(ckpt: Checkpoint, linear: str) -> np.ndarray | None:
    """The RMSNorm scale that multiplies a linear's input (q/k/v, gate/up, lm_head); None for o/down.

    The normalized stream has roughly unit magnitude per channel, so gamma_j is the typical size of
    input j: the data-free weight for that column's quantization error.
    """
    if linear == "lm_head":
        return ckpt.tensor("model.norm.weight")
    layer, _, kind = linear.partition(".")[2].partition(".")
    norm = _NORM_OF.get(kind)
    return ckpt.tensor(f"model.layers.{layer}.{norm}.weight") if norm and layer.isdigit() else None
