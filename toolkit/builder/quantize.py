"""Weight quantizers: int4 block-wise (MatMulNBits, GatherBlockQuantized) and int4 per-channel (RTN, GPTQ)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from onnx import TensorProto, helper

BLOCK = 32


@dataclass
class BlockQuantized:
    """Asymmetric 4-bit (or 8-bit) block quantization of a [rows, cols] matrix along cols, packed as ORT expects."""

    packed: np.ndarray  # uint8 [rows, n_blocks, BLOCK * bits // 8]
    scales: np.ndarray  # float32 [rows, n_blocks]
    zero_points: np.ndarray  # uint8 [rows, ceil(n_blocks * bits / 8)]
    cols: int
    bits: int = 4

    def dequantize(self) -> np.ndarray:
        """Back to float32 [rows, cols] (for tests and the reference)."""
        rows, n_blocks, _ = self.packed.shape
        if self.bits == 8:
            w = (self.packed.astype(np.float32) - self.zero_points[..., None]) * self.scales[..., None]
            return w.reshape(rows, -1)[:, : self.cols]
        q = np.empty((rows, n_blocks, BLOCK), np.float32)
        q[..., 0::2] = self.packed & 0x0F
        q[..., 1::2] = self.packed >> 4
        zp = np.empty((rows, self.zero_points.shape[1] * 2), np.float32)
        zp[:, 0::2] = self.zero_points & 0x0F
        zp[:, 1::2] = self.zero_points >> 4
        w = (q - zp[:, :n_blocks, None]) * self.scales[..., None]
        return w.reshape(rows, -1)[:, : self.cols]


def _pack_nibbles(q: np.ndarray) -> np.ndarray:
    """Pack uint8 values < 16 pairwise along the last axis (first value in the low nibble)."""
    if q.shape[-1] % 2:
        q = np.concatenate([q, np.zeros(q.shape[:-1] + (1,), q.dtype)], axis=-1)
    return (q[..., 0::2] | (q[..., 1::2] << 4)).astype(np.uint8)


SHRINK_GRID = (1.0, 0.95, 0.9, 0.85, 0.8, 0.75)


def _block_params(blocks: np.ndarray, shrink: tuple[float, ...],
                  col_weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-block scale and zero point; the range is shrunk by the factor with the least squared error.

    `col_weights` (broadcastable to `blocks`, >= 0) weighs each column's squared error.
    """
    root_w = None if col_weights is None else np.sqrt(col_weights, dtype=np.float32)
    lo0 = np.minimum(blocks.min(axis=-1), 0.0)
    span = np.maximum(blocks.max(axis=-1), 0.0) - lo0
    tmp = np.empty_like(blocks)
    best_err = best_scale = best_zp = None
    for a in shrink:
        scale = (span * np.float32(a / 15.0)).astype(np.float32)
        scale[scale == 0] = 1.0
        zp = np.clip(np.round(-lo0 * np.float32(a) / scale), 0, 15).astype(np.float32)
        if len(shrink) == 1:
            return scale, zp
        np.multiply(blocks, (1.0 / scale)[..., None], out=tmp)
        tmp += zp[..., None]
        np.round(tmp, out=tmp)
        np.clip(tmp, 0, 15, out=tmp)
        tmp -= zp[..., None]
        tmp *= scale[..., None]
        tmp -= blocks
        if root_w is not None:
            tmp *= root_w
        err = np.einsum("...i,...i->...", tmp, tmp)
        if best_err is None:
            best_err, best_scale, best_zp = err, scale, zp
        else:
            better = err < best_err
            best_err = np.where(better, err, best_err)
            best_scale = np.where(better, scale, best_scale)
            best_zp = np.where(better, zp, best_zp)
    return best_scale, best_zp


def _pack_blocks(q: np.ndarray, scales: np.ndarray, zps: np.ndarray, cols: int) -> BlockQuantized:
    return BlockQuantized(_pack_nibbles(q.astype(np.uint8)), scales.astype(np.float32),
                          _pack_nibbles(zps.astype(np.uint8)), cols)


def quantize_blockwise(w: np.ndarray, rows_per_chunk: int = 2048, shrink: tuple[float, ...] = SHRINK_GRID,
                       input_scale: np.ndarray | None = None) -> BlockQuantized:
    """Quantize w [rows, cols] to 4 bits in blocks of 32 along cols, asymmetric, with an MSE range search.

    `input_scale` [cols]: the typical magnitude of each input (e.g. the RMSNorm scale feeding the linear);
    the range search then minimizes the output error sum_j (input_scale_j * dw_j)^2 instead of the
    plain weight error. Row chunks run on a thread pool (numpy releases the GIL), one per CPU.
    """
    rows, cols = w.shape
    n_blocks = -(-cols // BLOCK)
    col_w = None
    if input_scale is not None:
        s2 = np.square(np.asarray(input_scale, np.float64).reshape(-1))
        if s2.shape != (cols,):
            raise ValueError(f"input_scale has {s2.size} values for a weight with {cols} columns")
        s2 = s2 / max(float(s2.mean()), 1e-30)
        col_w = np.pad(s2, (0, n_blocks * BLOCK - cols)).astype(np.float32).reshape(n_blocks, BLOCK)
    packed = np.empty((rows, n_blocks, BLOCK // 2), np.uint8)
    scales = np.empty((rows, n_blocks), np.float32)
    zps = np.empty((rows, -(-n_blocks // 2)), np.uint8)

    def work(r0: int) -> None:
        chunk = np.asarray(w[r0:r0 + rows_per_chunk], dtype=np.float32)
        if cols % BLOCK:
            chunk = np.pad(chunk, ((0, 0), (0, n_blocks * BLOCK - cols)))
        blocks = chunk.reshape(chunk.shape[0], n_blocks, BLOCK)
        scale, zp = _block_params(blocks, shrink, col_w)
        q = np.clip(np.round(blocks / scale[..., None]) + zp[..., None], 0, 15).astype(np.uint8)
        packed[r0:r0 + rows_per_chunk] = _pack_nibbles(q)
        scales[r0:r0 + rows_per_chunk] = scale
        zps[r0:r0 + rows_per_chunk] = _pack_nibbles(zp.astype(np.uint8))

    starts = range(0, rows, rows_per_chunk)
    if len(starts) == 1:
        work(0)
    else:
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            list(pool.map(work, starts))
    return BlockQuantized(packed, scales, zps, cols)


def quantize_blockwise8(w: np.ndarray) -> BlockQuantized:
    """8-bit asymmetric blocks of 32 (for the few small, sensitive tensors kept at higher precision)."""
    rows, cols = w.shape
    n_blocks = -(-cols // BLOCK)
    x = np.pad(np.asarray(w, np.float32), ((0, 0), (0, n_blocks * BLOCK - cols))).reshape(rows, n_blocks, BLOCK)
    lo, hi = np.minimum(x.min(-1), 0.0), np.maximum(x.max(-1), 0.0)
    scale = np.where(hi > lo, (hi - lo) / 255.0, 1.0).astype(np.float32)
    zp = np.clip(np.round(-lo / scale), 0, 255)
    q = np.clip(np.round(x / scale[..., None]) + zp[..., None], 0, 255).astype(np.uint8)
    return BlockQuantized(q, scale, zp.astype(np.uint8), cols, bits=8)


def _gptq_inverse(hessian: np.ndarray, w: np.ndarray, damp: float) -> np.ndarray:
    """Upper Cholesky factor of the damped inverse Hessian (dead inputs get a unit diagonal, zero weight)."""
    H = np.array(hessian, dtype=np.float64)
    dead = np.diag(H) == 0
    H[dead, dead] = 1.0
    w[:, dead] = 0.0
    H += np.eye(H.shape[0]) * damp * np.mean(np.diag(H))
    return np.linalg.cholesky(np.linalg.inv(H)).T


def _gptq_sweep(W: np.ndarray, Hinv: np.ndarray, step: int, round_column) -> np.ndarray:
    """The GPTQ column sweep in lazy batches of `step` columns. `round_column(j, column)` gives column j's
    levels and their dequantized values; each rounding error is spread over the columns not yet rounded.
    W (columns already in rounding order) is updated in place; returns the levels [rows, cols]."""
    rows, cols = W.shape
    Q = np.zeros((rows, cols), np.float64)
    for b0 in range(0, cols, step):
        b1 = min(b0 + step, cols)
        W1 = W[:, b0:b1].copy()
        Err = np.zeros_like(W1)
        H1 = Hinv[b0:b1, b0:b1]
        for i in range(b1 - b0):
            q, dequantized = round_column(b0 + i, W1[:, i])
            Q[:, b0 + i] = q
            err = (W1[:, i] - dequantized) / H1[i, i]
            W1[:, i:] -= np.outer(err, H1[i, i:])
            Err[:, i] = err
        W[:, b1:] -= Err @ Hinv[b0:b1, b1:]
    return Q


def gptq_blockwise(w: np.ndarray, hessian: np.ndarray, damp: float = 0.01, step: int = 128,
                   act_order: bool = True) -> BlockQuantized:
    """GPTQ with asymmetric 4-bit groups of 32 along the input axis (the MatMulNBits layout).

    w is [out, in]. Group scales and zero points are fixed first from the weights (range search,
    "static groups"), then columns are rounded in decreasing Hessian-diagonal order (act order),
    each rounding error spread over the columns not yet rounded.
    """
    W = np.array(w, dtype=np.float64)
    rows, cols = W.shape
    n_blocks = -(-cols // BLOCK)
    padded = np.pad(W, ((0, 0), (0, n_blocks * BLOCK - cols))).reshape(rows, n_blocks, BLOCK)
    scales, zps = (a.astype(np.float64) for a in _block_params(padded.astype(np.float32), SHRINK_GRID))
    H = np.array(hessian, dtype=np.float64)
    perm = np.argsort(-np.diag(H), kind="stable") if act_order else np.arange(cols)
    W = W[:, perm]
    Hinv = _gptq_inverse(H[np.ix_(perm, perm)], W, damp)
    group = perm // BLOCK

    def round_column(j: int, col: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s, z = scales[:, group[j]], zps[:, group[j]]
        q = np.clip(np.round(col / s) + z, 0, 15)
        return q, (q - z) * s

    Q = _gptq_sweep(W, Hinv, step, round_column).astype(np.uint8)
    levels = np.zeros((rows, n_blocks * BLOCK), np.uint8)
    levels[:, perm] = Q
    zero_pad = np.round(zps).astype(np.uint8)[:, -1:]
    if cols % BLOCK:  # padded tail columns hold the zero point, i.e. the value 0
        levels[:, cols:] = zero_pad
    return _pack_blocks(levels.reshape(rows, n_blocks, BLOCK), scales, zps, cols)


@dataclass
class ChannelQuantized:
    """Symmetric int4 per-output-channel quantization of a MatMul weight stored [in, out]."""

    q: np.ndarray  # int8 values in [-8, 7], shape [in, out]
    scales: np.ndarray  # float32 [out]

    def dequantize(self) -> np.ndarray:
        """Back to float32 [in, out]."""
        return self.q.astype(np.float32) * self.scales[None, :]

    def tensor_protos(self, name: str) -> tuple[TensorProto, TensorProto, TensorProto]:
        """int4 weight, float scale and an explicit int4 zero point of zeros (QNN misreads an implicit one)."""
        w = helper.make_tensor(name, TensorProto.INT4, list(self.q.shape), self.q.flatten().tolist())
        s = helper.make_tensor(name + "_scale", TensorProto.FLOAT, [self.scales.size], self.scales.tolist())
        z = helper.make_tensor(name + "_zero_point", TensorProto.INT4, [self.scales.size],
                               [0] * self.scales.size)
        return w, s, z


CHANNEL_SHRINK_GRID = tuple(np.round(np.linspace(1.0, 0.5, 11), 3))


def channel_scales(w_in_out: np.ndarray, shrink: tuple[float, ...] = CHANNEL_SHRINK_GRID) -> np.ndarray:
    """Per-output-channel symmetric scales: max |w| maps to 7, shrunk by the factor with the least squared error."""
    w = np.asarray(w_in_out, np.float32)
    amax = np.abs(w).max(axis=0)
    amax = np.where(amax == 0, 1.0, amax)
    best_err = best = None
    for a in shrink:
        s = (amax * a / 7.0).astype(np.float32)
        err = np.square(np.clip(np.round(w / s), -8, 7) * s - w).sum(axis=0)
        if best is None:
            best_err, best = err, s
        else:
            better = err < best_err
            best_err, best = np.where(better, err, best_err), np.where(better, s, best)
    return best.astype(np.float32)


def quantize_rtn(w_in_out: np.ndarray) -> ChannelQuantized:
    """Round-to-nearest int4 per output channel."""
    s = channel_scales(w_in_out)
    q = np.clip(np.round(w_in_out / s[None, :]), -8, 7).astype(np.int8)
    return ChannelQuantized(q, s)


def quantize_gptq(w_in_out: np.ndarray, hessian: np.ndarray, damp: float = 0.01, block: int = 128,
                  act_order: bool = True) -> ChannelQuantized:
    """GPTQ (Frantar et al. 2022) with per-output-channel int4 scales, inputs rounded in act order.

    `hessian` is X^T X [in, in] accumulated from calibration activations entering this linear.
    """
    W = np.array(w_in_out.T, dtype=np.float64)  # [out, in], columns are inputs
    n_in = W.shape[1]
    s = channel_scales(W.T).astype(np.float64)
    H = np.array(hessian, dtype=np.float64)
    perm = np.argsort(-np.diag(H), kind="stable") if act_order else np.arange(n_in)
    W = W[:, perm]
    Hinv = _gptq_inverse(H[np.ix_(perm, perm)], W, damp)

    def round_column(j: int, col: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q = np.clip(np.round(col / s), -8, 7)
        return q, q * s

    Q = _gptq_sweep(W, Hinv, block, round_column)
    out = np.zeros_like(Q)
    out[:, perm] = Q
    return ChannelQuantized(out.T.astype(np.int8), s.astype(np.float32))
