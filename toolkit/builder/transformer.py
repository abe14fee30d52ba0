"""The decoder layers as one ONNX graph (the `context` and `iterator` stages).

Inputs: input_hidden_states [1, S, H], past_keys_%d / past_values_%d [1, kv, ctx, hd] (static),
past_seq_len int32 [1, 1] (index of the last token of this step, GQA's seqlens_k) and
total_seq_len int32 [1]. Outputs: output_hidden_states (after the final norm) and
present_keys_%d / present_values_%d, the same static buffers with this step's rows written.
Two attention forms: GroupQueryAttention (CPU) and plain ops that QNN's HTP runs (NPU).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from onnx import TensorProto, helper

from toolkit.builder.checkpoint import ModelConfig
from toolkit.builder.graph import MS_DOMAIN, Graph
from toolkit.builder.linear import ActHook, no_qdq

Linear = Callable[[Graph, str, str, np.ndarray, np.ndarray | None], str]


@dataclass
class LayerWeights:
    """One decoder layer; weights are [out, in]. Norm scales of None were folded into the linears."""

    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    o: np.ndarray
    gate: np.ndarray
    up: np.ndarray
    down: np.ndarray
    q_bias: np.ndarray | None = None
    k_bias: np.ndarray | None = None
    v_bias: np.ndarray | None = None
    input_norm: np.ndarray | None = None
    post_norm: np.ndarray | None = None
    down_hadamard: tuple[np.ndarray, np.ndarray] | None = None  # online x -> x (Ha kron Hb) before down


@dataclass
class GraphSpec:
    """How to write the graph: attention form, norm form, static sequence length, KV length."""

    attention: str  # "gqa" (CPU, needs head_dim % 16 == 0) or "explicit" (plain ops)
    context_length: int
    seq_len: int | None  # None: dynamic (CPU); 64 or 1: static (NPU)
    fused_norm: bool = True
    mask_value: float = -1e4  # additive bias of masked scores (the NPU uses a small one: it is quantized)


def rope_tables(cfg: ModelConfig, length: int) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin [length, head_dim / 2] for rotate-half RoPE."""
    half = cfg.head_dim // 2
    inv = 1.0 / (cfg.rope_theta ** (np.arange(0, half, dtype=np.float64) * 2 / cfg.head_dim))
    ang = np.arange(length, dtype=np.float64)[:, None] * inv[None, :]
    return np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)


def _add_norm(g: Graph, x: str, delta: str | None, gamma: np.ndarray | None, eps: float, name: str,
              spec: GraphSpec, hidden: int, act: ActHook, add_name: str = "",
              out: str | None = None) -> tuple[str, str]:
    """(norm(x + delta), x + delta): the residual add and RMSNorm, one SkipSimplifiedLayerNormalization
    kernel when norms are fused (its fourth output is the sum); delta None: no add."""
    if delta is None:
        return _rms_norm(g, x, gamma, eps, name, spec, hidden, act, out), x
    if not spec.fused_norm:
        x = act(g, g.op("Add", [x, delta], name=add_name))
        return _rms_norm(g, x, gamma, eps, name, spec, hidden, act, out), x
    scale = (gamma if gamma is not None else np.ones(hidden)).astype(np.float32)
    y, _, _, total = g.op("SkipSimplifiedLayerNormalization", [delta, x, g.init(name + ".weight", scale)],
                          outputs=[out or name + "/out", "", "", add_name], name=name,
                          domain=MS_DOMAIN, epsilon=eps)
    return y, total


def _rms_norm(g: Graph, x: str, gamma: np.ndarray | None, eps: float, name: str, spec: GraphSpec,
              hidden: int, act: ActHook, out: str | None = None) -> str:
    if spec.fused_norm:
        scale = gamma if gamma is not None else np.ones(hidden, np.float32)
        return g.op("SimplifiedLayerNormalization", [x, g.init(name + ".weight", scale.astype(np.float32))],
                    name=name, outputs=[out] if out else None, axis=-1, epsilon=eps, stash_type=1)
    sq = act(g, g.op("Mul", [x, x], name=name + "/sq"))
    ms = act(g, g.op("ReduceMean", [sq, g.const([-1])], name=name + "/mean", keepdims=1))
    ms = act(g, g.op("Add", [ms, act(g, g.const(eps, np.float32))], name=name + "/eps"))
    rms = act(g, g.op("Sqrt", [ms], name=name + "/sqrt"))
    y = g.op("Div", [x, rms], name=name + "/div")
    if gamma is not None:
        y = g.op("Mul", [act(g, y), g.init(name + ".weight", gamma.astype(np.float32))], name=name + "/scale")
    return act(g, y, out=out)


def _mlp(g: Graph, x: str, lw: LayerWeights, name: str, linear: Linear, act: ActHook) -> str:
    fused = getattr(linear, "fused", None)
    if fused is not None:  # one MatMulNBits for gate and up, then a Split
        both = fused(g, x, name + ".gate_up_proj", [(name + ".gate_proj", lw.gate, None),
                                                     (name + ".up_proj", lw.up, None)])
        gate, up = g.op("Split", [both, g.const([lw.gate.shape[0], lw.up.shape[0]])], n_out=2,
                        name=name + "/gate_up_split", axis=-1)
    else:
        gate = act(g, linear(g, x, name + ".gate_proj", lw.gate, None))
        up = act(g, linear(g, x, name + ".up_proj", lw.up, None))
    sig = act(g, g.op("Sigmoid", [gate], name=name + "/sigmoid"))
    silu = act(g, g.op("Mul", [gate, sig], name=name + "/silu"))
    mid = act(g, g.op("Mul", [silu, up], name=name + "/mul"))
    if lw.down_hadamard is not None:
        mid = _online_hadamard(g, mid, lw.down_hadamard, name + "/had", act)
    return act(g, linear(g, mid, name + ".down_proj", lw.down, None))


def _online_hadamard(g: Graph, x: str, mats: tuple[np.ndarray, np.ndarray], name: str, act: ActHook) -> str:
    """x -> x (Ha kron Hb) in Kronecker form: reshape to [.., a, b], Ha^T X Hb, reshape back."""
    ha, hb = mats
    a, b = ha.shape[0], hb.shape[0]
    xs = g.op("Reshape", [x, g.const([0, 0, a, b])], name=name + "/split")
    y = act(g, g.op("MatMul", [xs, g.init(name + ".hb", hb.astype(np.float32))], name=name + "/mm_b"))
    yt = g.op("Transpose", [y], name=name + "/t1", perm=[0, 1, 3, 2])
    z = act(g, g.op("MatMul", [yt, g.init(name + ".ha", ha.astype(np.float32))], name=name + "/mm_a"))
    zt = g.op("Transpose", [z], name=name + "/t2", perm=[0, 1, 3, 2])
    return act(g, g.op("Reshape", [zt, g.const([0, 0, a * b])], name=name + "/merge"))


def _qkv(g: Graph, h: str, lw: LayerWeights, n: str, linear: Linear, spec: GraphSpec,
         act: ActHook) -> tuple[str, str, str]:
    """q, k, v; with GroupQueryAttention and a fusing linear, one packed [.., (nh + 2 kv) hd] tensor and
    empty k, v (GQA's packed-QKV form)."""
    fused = getattr(linear, "fused", None)
    if fused is not None and spec.attention == "gqa":
        parts = [(n + ".attn.q_proj", lw.q, lw.q_bias), (n + ".attn.k_proj", lw.k, lw.k_bias),
                 (n + ".attn.v_proj", lw.v, lw.v_bias)]
        return fused(g, h, n + ".attn.qkv_proj", parts), "", ""
    q = act(g, linear(g, h, n + ".attn.q_proj", lw.q, lw.q_bias))
    k = act(g, linear(g, h, n + ".attn.k_proj", lw.k, lw.k_bias))
    v = act(g, linear(g, h, n + ".attn.v_proj", lw.v, lw.v_bias))
    return q, k, v


def _attention_gqa(g: Graph, q: str, k: str, v: str, layer: int, cfg: ModelConfig, io: dict) -> str:
    out, pk, pv = g.op(
        "GroupQueryAttention",
        [q, k, v, f"past_keys_{layer}", f"past_values_{layer}", io["seqlens_k"], "total_seq_len",
         io["cos"], io["sin"]],
        outputs=[f"attn_out_{layer}", f"present_keys_{layer}", f"present_values_{layer}"],
        name=f"layers.{layer}.attn/GQA", domain=MS_DOMAIN,
        num_heads=cfg.num_heads, kv_num_heads=cfg.num_kv_heads, do_rotary=1, rotary_interleaved=0,
        scale=float(cfg.head_dim ** -0.5),
    )
    return out


def _rope_explicit(g: Graph, x: str, heads: int, cfg: ModelConfig, io: dict, name: str, act: ActHook) -> str:
    """Rotate-half RoPE with plain ops: x*cos + concat(-x2, x1)*sin, x as [1, S, heads, hd]."""
    xs = g.op("Reshape", [x, g.const([1, -1, heads, cfg.head_dim])], name=name + "/heads")
    x1, x2 = g.op("Split", [xs, g.const([cfg.head_dim // 2] * 2)], n_out=2, name=name + "/halves", axis=-1)
    neg = act(g, g.op("Neg", [act(g, x2)], name=name + "/neg"))
    rot = act(g, g.op("Concat", [neg, act(g, x1)], name=name + "/rotate_half", axis=-1))
    a = act(g, g.op("Mul", [xs, io["cos_s"]], name=name + "/cos"))
    b = act(g, g.op("Mul", [rot, io["sin_s"]], name=name + "/sin"))
    return act(g, g.op("Add", [a, b], name=name + "/rope"))


def _attention_explicit(g: Graph, q: str, k: str, v: str, layer: int, cfg: ModelConfig, io: dict,
                        act: ActHook) -> str:
    """Attention over the whole static cache with a causal mask; this step's rows written by a one-hot MatMul."""
    n = f"layers.{layer}.attn"
    kv, hd = cfg.num_kv_heads, cfg.head_dim
    qr = _rope_explicit(g, q, cfg.num_heads, cfg, io, n + "/q", act)
    kr = _rope_explicit(g, k, kv, cfg, io, n + "/k", act)
    vs = g.op("Reshape", [v, g.const([1, -1, kv, hd])], name=n + "/v_heads")
    presents = []
    for kind, new, past in (("keys", kr, f"past_keys_{layer}"), ("values", vs, f"past_values_{layer}")):
        new_t = g.op("Transpose", [new], name=f"{n}/{kind}_t", perm=[0, 2, 1, 3])  # [1, kv, S, hd]
        placed = act(g, g.op("MatMul", [io["place"], new_t], name=f"{n}/{kind}_place"))  # [1, kv, ctx, hd]
        kept = act(g, g.op("Mul", [act(g, past), io["keep"]], name=f"{n}/{kind}_keep"))
        summed = g.op("Add", [kept, placed], name=f"{n}/{kind}_present")
        presents.append(act(g, summed, out=f"present_{kind}_{layer}"))
    pk, pv = presents
    qt = g.op("Transpose", [qr], name=n + "/q_t", perm=[0, 2, 1, 3])  # [1, nh, S, hd]
    qg = g.op("Reshape", [qt, g.const([1, kv, -1, hd])], name=n + "/q_groups")  # [1, kv, g*S, hd]
    kt = g.op("Transpose", [pk], name=n + "/k_t", perm=[0, 1, 3, 2])  # [1, kv, hd, ctx]
    scores = act(g, g.op("MatMul", [qg, kt], name=n + "/scores"))
    scaled = act(g, g.op("Mul", [scores, act(g, g.const(hd ** -0.5, np.float32))], name=n + "/scale"))
    masked = act(g, g.op("Add", [scaled, io["mask"]], name=n + "/masked_scores"))
    probs = act(g, g.op("Softmax", [masked], name=n + "/probs", axis=-1))
    ctxv = act(g, g.op("MatMul", [probs, pv], name=n + "/context"))  # [1, kv, g*S, hd]
    ch = g.op("Reshape", [ctxv, g.const([1, cfg.num_heads, -1, hd])], name=n + "/ctx_heads")
    ct = g.op("Transpose", [ch], name=n + "/ctx_t", perm=[0, 2, 1, 3])
    return g.op("Reshape", [ct, g.const([1, -1, cfg.num_heads * hd])], name=n + "/merge")


def _explicit_position_inputs(g: Graph, cfg: ModelConfig, spec: GraphSpec, act: ActHook) -> dict:
    """Positions, RoPE rows, the one-hot write matrix, keep mask and causal mask, from past_seq_len.

    Integer work stays in int32 and every float tensor comes from Gather/Where over (quantized)
    constants, so QNN's HTP backend can run all of it.
    """
    s, ctx = spec.seq_len, spec.context_length
    grp = cfg.num_heads // cfg.num_kv_heads
    i32 = np.int32
    last = g.op("Reshape", ["past_seq_len", g.const([1])], name="last_pos")  # int32 [1]
    if s is None:  # dynamic length (CPU): S from the input's shape
        s64 = g.op("Slice", [g.op("Shape", ["input_hidden_states"]), g.const([1]), g.const([2])], name="seq_len")
        s_len = g.op("Cast", [s64], name="seq_len_i32", to=TensorProto.INT32)
        steps = g.op("Range", [g.const(0, i32), g.op("Squeeze", [s_len, g.const([0])]), g.const(1, i32)],
                     name="steps")
        start = g.op("Add", [g.op("Sub", [last, s_len]), g.const([1], i32)], name="start_pos")
    else:
        steps = g.const(np.arange(s), i32)
        start = g.op("Sub", [last, g.const([s - 1], i32)], name="start_pos")
    pos = g.op("Add", [start, steps], name="positions")  # int32 [S]
    s_dim = s if s is not None else -1
    cos, sin = rope_tables(cfg, ctx)
    io = {}
    for key, table in (("cos_s", np.concatenate([cos, cos], 1)), ("sin_s", np.concatenate([sin, sin], 1))):
        rows = act(g, g.op("Gather", [act(g, g.init(key + "_table", table)), pos], name=key + "/gather", axis=0))
        io[key] = act(g, g.op("Reshape", [rows, g.const([1, s_dim, 1, cfg.head_dim])], name=key + "/shape"))
    one, zero = act(g, g.const(1.0, np.float32)), act(g, g.const(0.0, np.float32))
    cols = g.const(np.arange(ctx), i32)
    pos_col = g.op("Unsqueeze", [pos, g.const([1])], name="pos_col")  # [S, 1]
    hit = g.op("Equal", [cols, pos_col], name="write_hit")  # [S, ctx]
    onehot = act(g, g.op("Where", [hit, one, zero], name="write_onehot"))
    io["place"] = act(g, g.op("Transpose", [onehot], name="place_matrix", perm=[1, 0]))  # [ctx, S]
    written = g.op("And", [g.op("GreaterOrEqual", [cols, start], name="after_start"),
                           g.op("LessOrEqual", [cols, last], name="before_last")], name="written")  # [ctx]
    keep = act(g, g.op("Where", [written, zero, one], name="keep_rows"))
    io["keep"] = act(g, g.op("Reshape", [keep, g.const([1, 1, ctx, 1])], name="keep_mask"))
    pos_g = g.op("Tile", [pos_col, g.const([grp, 1])], name="pos_groups")  # [g*S, 1]
    allowed = g.op("LessOrEqual", [cols, pos_g], name="causal")  # [g*S, ctx]
    io["mask"] = act(g, g.op("Where", [allowed, zero, act(g, g.const(spec.mask_value, np.float32))], name="mask"))
    return io


def build_transformer(cfg: ModelConfig, layers: Callable[[int], LayerWeights], final_norm: np.ndarray | None,
                      linear: Linear, spec: GraphSpec, act: ActHook = no_qdq, name: str = "transformer") -> Graph:
    """Emit the decoder layers and the final norm as one graph."""
    g = Graph(name)
    H, ctx = cfg.hidden_size, spec.context_length
    seq = spec.seq_len if spec.seq_len is not None else "sequence_length"
    x = g.input("input_hidden_states", TensorProto.FLOAT, [1, seq, H])
    kv_shape = [1, cfg.num_kv_heads, ctx, cfg.head_dim]
    for i in range(cfg.num_layers):
        g.input(f"past_keys_{i}", TensorProto.FLOAT, kv_shape)
        g.input(f"past_values_{i}", TensorProto.FLOAT, kv_shape)
    g.input("past_seq_len", TensorProto.INT32, [1, 1])
    g.input("total_seq_len", TensorProto.INT32, [1])
    if spec.attention == "gqa":
        cos, sin = rope_tables(cfg, ctx)
        io = {"seqlens_k": g.op("Reshape", ["past_seq_len", g.const([1])], name="seqlens_k"),
              "cos": g.init("cos_cache", cos), "sin": g.init("sin_cache", sin)}
    else:
        io = _explicit_position_inputs(g, cfg, spec, act)
    x = act(g, x)
    eps = cfg.rms_norm_eps
    mlp_out = None  # the previous layer's MLP output, added to the residual stream by the next norm
    for i in range(cfg.num_layers):
        lw = layers(i)
        n = f"layers.{i}"
        h, x = _add_norm(g, x, mlp_out, lw.input_norm, eps, n + ".input_layernorm", spec, H, act,
                         f"layers.{i - 1}/mlp_residual")
        q, k, v = _qkv(g, h, lw, n, linear, spec, act)
        if spec.attention == "gqa":
            a = _attention_gqa(g, q, k, v, i, cfg, io)
        else:
            a = _attention_explicit(g, q, k, v, i, cfg, io, act)
        o = act(g, linear(g, act(g, a), n + ".attn.o_proj", lw.o, None))
        h, x = _add_norm(g, x, o, lw.post_norm, eps, n + ".post_attention_layernorm", spec, H, act,
                         n + "/attn_residual")
        mlp_out = _mlp(g, h, lw, n + ".mlp", linear, act)
        g.output(f"present_keys_{i}", TensorProto.FLOAT, kv_shape)
        g.output(f"present_values_{i}", TensorProto.FLOAT, kv_shape)
    _add_norm(g, x, mlp_out, final_norm, eps, "final_norm", spec, H, act,
              f"layers.{cfg.num_layers - 1}/mlp_residual", out="output_hidden_states")
    g.outputs.insert(0, helper.make_tensor_value_info("output_hidden_states", TensorProto.FLOAT, [1, seq, H]))
    return g
