"""A numpy (float64) reference forward for qwen2/llama checkpoints: the oracle for package tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from toolkit.builder.checkpoint import Checkpoint


class ReferenceModel:
    """Full-sequence causal forward pass in float64, straight from the HF weights."""

    def __init__(self, folder: str | Path) -> None:
        self.ckpt = Checkpoint(folder)
        self.cfg = c = self.ckpt.config
        t = lambda n: self.ckpt.tensor(n).astype(np.float64)  # noqa: E731
        self.embed = t("model.embed_tokens.weight")
        self.lm_head = self.ckpt.lm_head().astype(np.float64)
        self.norm = t("model.norm.weight")
        self.layers = []
        for i in range(c.num_layers):
            p = f"model.layers.{i}."
            layer = {k: t(p + n) for k, n in (
                ("q", "self_attn.q_proj.weight"), ("k", "self_attn.k_proj.weight"),
                ("v", "self_attn.v_proj.weight"), ("o", "self_attn.o_proj.weight"),
                ("gate", "mlp.gate_proj.weight"), ("up", "mlp.up_proj.weight"),
                ("down", "mlp.down_proj.weight"), ("ln1", "input_layernorm.weight"),
                ("ln2", "post_attention_layernorm.weight"))}
            for b in ("q", "k", "v"):
                name = p + f"self_attn.{b}_proj.bias"
                layer[b + "_bias"] = t(name) if self.ckpt.has(name) else 0.0
            self.layers.append(layer)

    def _rms(self, x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.cfg.rms_norm_eps) * w

    def _rope(self, x, pos):
        hd = self.cfg.head_dim
        inv = 1.0 / (self.cfg.rope_theta ** (np.arange(0, hd // 2) * 2 / hd))
        ang = pos[:, None] * inv[None, :]
        cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
        return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)

    def hidden_states(self, ids: list[int]) -> np.ndarray:
        """Final-normed hidden states [S, H] for a token sequence."""
        c = self.cfg
        s = len(ids)
        x = self.embed[np.asarray(ids)]
        pos = np.arange(s, dtype=np.float64)
        mask = np.triu(np.full((s, s), -np.inf), 1)
        g = c.num_heads // c.num_kv_heads
        for L in self.layers:
            h = self._rms(x, L["ln1"])
            q = (h @ L["q"].T + L["q_bias"]).reshape(s, c.num_heads, c.head_dim)
            k = (h @ L["k"].T + L["k_bias"]).reshape(s, c.num_kv_heads, c.head_dim)
            v = (h @ L["v"].T + L["v_bias"]).reshape(s, c.num_kv_heads, c.head_dim)
            q, k = self._rope(q, pos), self._rope(k, pos)
            k, v = np.repeat(k, g, axis=1), np.repeat(v, g, axis=1)
            att = np.einsum("shd,thd->hst", q, k) / np.sqrt(c.head_dim) + mask
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            o = np.einsum("hst,thd->shd", att, v).reshape(s, -1)
            x = x + o @ L["o"].T
            h = self._rms(x, L["ln2"])
            gate = h @ L["gate"].T
            x = x + ((gate / (1 + np.exp(-gate))) * (h @ L["up"].T)) @ L["down"].T
        return self._rms(x, self.norm)

    def logits(self, ids: list[int]) -> np.ndarray:
        """Logits [S, vocab] for every position."""
        return self.hidden_states(ids) @ self.lm_head.T

    def is_greedy_continuation(self, ids: list[int], prompt_len: int) -> bool:
        """Whether every token after the prompt is the argmax given the tokens before it (one forward pass).

        Equivalent to `greedy(ids[:prompt_len], len(ids) - prompt_len) == ids`, without the recompute per step.
        """
        logits = self.logits(ids)
        return bool(np.all(logits[prompt_len - 1:-1].argmax(-1) == np.asarray(ids[prompt_len:])))

    def greedy(self, prompt: list[int], n_new: int) -> list[int]:
        """Greedy continuation: the prompt followed by n_new argmax tokens (full recompute, fine for tiny models)."""
        ids = list(prompt)
        for _ in range(n_new):
            ids.append(int(np.argmax(self.logits(ids)[-1])))
        return ids
