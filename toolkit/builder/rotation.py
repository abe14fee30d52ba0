"""QuaRot: seeded randomized Hadamard rotations in Kronecker form, and folding them into the weights.

A rotation Q = diag(s) (H_a kron H_b) / sqrt(n) (s random signs, H Hadamard) is orthogonal, so
x' = x Q leaves RMSNorm's denominator unchanged. Norm scales are folded into the linears first.
"""

from __future__ import annotations

import numpy as np

from toolkit.builder.transformer import LayerWeights


def _is_prime(n: int) -> bool:
    return n > 1 and all(n % p for p in range(2, int(n ** 0.5) + 1))


def sylvester(n: int) -> np.ndarray:
    """Hadamard matrix of order 2^k."""
    h = np.ones((1, 1))
    while h.shape[0] < n:
        h = np.block([[h, h], [h, -h]])
    return h


def _jacobsthal(q: int) -> np.ndarray:
    squares = {(i * i) % q for i in range(1, q)}
    chi = np.array([0] + [1 if i in squares else -1 for i in range(1, q)])
    return np.array([[chi[(j - i) % q] for j in range(q)] for i in range(q)], dtype=np.float64)


def paley(q: int) -> np.ndarray:
    """Paley construction I: Hadamard matrix of order q + 1 for a prime q = 3 (mod 4)."""
    s = np.zeros((q + 1, q + 1))
    s[0, 1:] = 1
    s[1:, 0] = -1
    s[1:, 1:] = _jacobsthal(q)
    return s + np.eye(q + 1)


def paley2(q: int) -> np.ndarray:
    """Paley construction II: Hadamard matrix of order 2 (q + 1) for a prime q = 1 (mod 4)."""
    c = np.zeros((q + 1, q + 1))
    c[0, 1:] = 1
    c[1:, 0] = 1
    c[1:, 1:] = _jacobsthal(q)
    return np.kron(c, np.array([[1, 1], [1, -1]])) + np.kron(np.eye(q + 1), np.array([[1, -1], [-1, -1]]))


def _small_hadamard(a: int) -> np.ndarray | None:
    if a >= 4 and _is_prime(a - 1) and (a - 1) % 4 == 3:
        return paley(a - 1)
    if a >= 12 and a % 2 == 0 and _is_prime(a // 2 - 1) and (a // 2 - 1) % 4 == 1:
        return paley2(a // 2 - 1)
    return None


def hadamard_factors(n: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(H_a, H_b) with a * b = n, H_b of order 2^k and H_a from Paley I or II (or 1), or None if we know none."""
    b = n & -n  # largest power of two dividing n
    a = n // b
    if a == 1:
        return np.ones((1, 1)), sylvester(b)
    for scale in (1, 2, 4, 8):  # move factors of two into H_a until a Paley order fits
        if b % scale == 0 and (h := _small_hadamard(a * scale)) is not None:
            return h, sylvester(b // scale)
    return None


def random_hadamard(n: int, rng: np.random.Generator) -> np.ndarray | None:
    """A random orthogonal n x n matrix diag(s) (H_a kron H_b) / sqrt(n), or None when no construction is known."""
    f = hadamard_factors(n)
    if f is None:
        return None
    h = np.kron(f[0], f[1]) / np.sqrt(n)
    signs = rng.choice([-1.0, 1.0], size=n)
    return (signs[:, None] * h).astype(np.float64)


def online_factors(n: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Normalized (H_a, H_b) for an online rotation x -> x (H_a kron H_b), or None."""
    f = hadamard_factors(n)
    if f is None:
        return None
    return f[0] / np.sqrt(f[0].shape[0]), f[1] / np.sqrt(f[1].shape[0])


def fold_and_rotate(lw: LayerWeights, q: np.ndarray | None, down_online: tuple | None) -> LayerWeights:
    """Fold the layer's norm scales into its linears and rotate the residual stream by q (None: fold only).

    Inputs of q/k/v/gate/up: W' = W diag(gamma) Q; outputs of o/down: W' = Q^T W. q/k/v biases live on the
    heads' side, which is not rotated, so they pass through unchanged.
    """
    def into(w: np.ndarray, gamma: np.ndarray) -> np.ndarray:
        w = w.astype(np.float64) * gamma[None, :].astype(np.float64)
        return (w @ q if q is not None else w).astype(np.float32)

    def out_of(w: np.ndarray) -> np.ndarray:
        return (q.T @ w.astype(np.float64)).astype(np.float32) if q is not None else w

    down = lw.down
    if down_online is not None:  # x_mid -> x_mid H online, so down sees W H (H orthogonal, H^T = H^-1)
        ha, hb = down_online
        down = (down.astype(np.float64) @ np.kron(ha, hb)).astype(np.float32)
    return LayerWeights(
        q=into(lw.q, lw.input_norm), k=into(lw.k, lw.input_norm), v=into(lw.v, lw.input_norm),
        o=out_of(lw.o), gate=into(lw.gate, lw.post_norm), up=into(lw.up, lw.post_norm), down=out_of(down),
        q_bias=lw.q_bias, k_bias=lw.k_bias, v_bias=lw.v_bias, input_norm=None, post_norm=None,
        down_hadamard=down_online,
    )
