"""QuaRot pieces: Kronecker Hadamard constructions and the invariance of folding + rotating."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.reference import ReferenceModel
from toolkit.builder.rotation import hadamard_factors, online_factors, paley, paley2, random_hadamard


@pytest.mark.parametrize("q", [3, 11, 19, 43, 139])
def test_paley_construction_is_a_hadamard_matrix(q):
    h = paley(q)
    assert set(np.unique(h)) <= {-1.0, 1.0}
    assert np.array_equal(h @ h.T, (q + 1) * np.eye(q + 1))


@pytest.mark.parametrize("q", [5, 13, 73])
def test_paley2_construction_is_a_hadamard_matrix(q):
    h = paley2(q)
    assert np.array_equal(h @ h.T, 2 * (q + 1) * np.eye(2 * (q + 1)))


# DeepSeek-R1-Distill-Qwen 1.5B / 7B / 14B hidden and intermediate sizes, and the tiny test models
@pytest.mark.parametrize("n, a", [(1536, 12), (8960, 140), (3584, 28), (18944, 148), (5120, 20), (13824, 108),
                                  (96, 12), (160, 20), (64, 1)])
def test_kronecker_factors_cover_real_sizes(n, a):
    f = hadamard_factors(n)
    assert f[0].shape[0] == a and f[0].shape[0] * f[1].shape[0] == n
    ha, hb = f
    assert np.array_equal(ha @ ha.T, len(ha) * np.eye(len(ha)))  # then H_a kron H_b is Hadamard too
    assert np.array_equal(hb @ hb.T, len(hb) * np.eye(len(hb)))


def test_sizes_without_a_known_construction_are_reported():
    assert hadamard_factors(172) is None  # stories260K's intermediate size: no online Hadamard there


def test_random_hadamard_is_orthogonal_and_seeded():
    a = random_hadamard(96, np.random.default_rng(3))
    b = random_hadamard(96, np.random.default_rng(3))
    assert np.allclose(a @ a.T, np.eye(96), atol=1e-12)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, random_hadamard(96, np.random.default_rng(4)))


def test_folded_and_rotated_model_computes_the_same_logits(tiny_qwen2_checkpoint):
    """Norm folding + residual rotation + online down Hadamard leave the function unchanged (biases included)."""
    from toolkit.builder.npu import rotated_model

    ref = ReferenceModel(tiny_qwen2_checkpoint)
    layer, embed, head, info = rotated_model(ref.ckpt, rotate=True, online=True, seed=0)
    assert info["online_down_hadamard"]
    cfg = ref.cfg
    ids = [1, 40, 7, 99, 3, 250, 17]
    x = embed[np.asarray(ids)].astype(np.float64)
    s, g = len(ids), cfg.num_heads // cfg.num_kv_heads
    mask = np.triu(np.full((s, s), -np.inf), 1)
    pos = np.arange(s, dtype=np.float64)
    for i in range(cfg.num_layers):
        lw = layer(i)
        assert lw.input_norm is None and lw.post_norm is None
        h = x / np.sqrt(np.mean(x * x, -1, keepdims=True) + cfg.rms_norm_eps)
        q = ref._rope((h @ lw.q.T + lw.q_bias).reshape(s, cfg.num_heads, -1), pos)
        k = ref._rope((h @ lw.k.T + lw.k_bias).reshape(s, cfg.num_kv_heads, -1), pos)
        v = (h @ lw.v.T + lw.v_bias).reshape(s, cfg.num_kv_heads, -1)
        k, v = np.repeat(k, g, 1), np.repeat(v, g, 1)
        att = np.einsum("shd,thd->hst", q, k) / np.sqrt(cfg.head_dim) + mask
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        x = x + np.einsum("hst,thd->shd", att, v).reshape(s, -1) @ lw.o.T
        h = x / np.sqrt(np.mean(x * x, -1, keepdims=True) + cfg.rms_norm_eps)
        gate = h @ lw.gate.T
        mid = (gate / (1 + np.exp(-gate))) * (h @ lw.up.T)
        mid = mid @ np.kron(*lw.down_hadamard)  # what the graph's online Hadamard computes
        x = x + mid @ lw.down.T
    h = x / np.sqrt(np.mean(x * x, -1, keepdims=True) + cfg.rms_norm_eps)
    assert np.abs(h @ head.T - ref.logits(ids)).max() < 1e-3


def test_online_factors_are_orthonormal():
    ha, hb = online_factors(160)
    h = np.kron(ha, hb)
    assert np.allclose(h @ h.T, np.eye(160), atol=1e-12)
