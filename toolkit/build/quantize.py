"""Weight quantizers: int4 block-wise (MatMulNBits, GatherBlockQuantized) and int4 per-channel (RTN, GPTQ)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from onnx import TensorProto, helper

BLOCK = 32


@dataclass
class BlockQuantized:
    """Asymmetric 4-bit block quantization of a [rows, cols] matrix along cols (packed as ORT expects)."""

    packed: np.ndarray  # uint8 [rows, n_blocks, BLOCK // 2]
    scales: np.ndarray  # float32 [rows, n_blocks]
    zero_points: np.ndarray  # uint8 [rows, ceil(n_blocks / 2)]
    cols: int

    def dequantize(self) -> np.ndarray:
        """Back to float32 [rows, cols] (for tests and the reference)."""
        rows, n_blocks, _ = self.packed.shape
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


def quantize_blockwise(w: np.ndarray, rows_per_chunk: int = 8192) -> BlockQuantized:
    """Quantize w [rows, cols] to 4 bits in blocks of 32 along cols, asymmetric (zero point per block)."""
    rows, cols = w.shape
    n_blocks = -(-cols // BLOCK)
    packed = np.empty((rows, n_blocks, BLOCK // 2), np.uint8)
    scales = np.empty((rows, n_blocks), np.float32)
    zps = np.empty((rows, -(-n_blocks // 2)), np.uint8)
    for r0 in range(0, rows, rows_per_chunk):
        chunk = np.asarray(w[r0:r0 + rows_per_chunk], dtype=np.float32)
        if cols % BLOCK:
            chunk = np.pad(chunk, ((0, 0), (0, n_blocks * BLOCK - cols)))
        blocks = chunk.reshape(chunk.shape[0], n_blocks, BLOCK)
        lo = np.minimum(blocks.min(axis=2), 0.0)
        hi = np.maximum(blocks.max(axis=2), 0.0)
        scale = (hi - lo) / 15.0
        scale = np.where(scale == 0, 1.0, scale).astype(np.float32)
        zp = np.clip(np.round(-lo / scale), 0, 15)
        q = np.clip(np.round(blocks / scale[..., None]) + zp[..., None], 0, 15).astype(np.uint8)
        packed[r0:r0 + rows_per_chunk] = _pack_nibbles(q)
        scales[r0:r0 + rows_per_chunk] = scale
        zps[r0:r0 + rows_per_chunk] = _pack_nibbles(zp.astype(np.uint8))
    return BlockQuantized(packed, scales, zps, cols)


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


def channel_scales(w_in_out: np.ndarray) -> np.ndarray:
    """Per-output-channel symmetric scales so that max |w| maps to 7."""
    amax = np.abs(w_in_out).max(axis=0)
    return np.where(amax == 0, 1.0, amax / 7.0).astype(np.float32)


def quantize_rtn(w_in_out: np.ndarray) -> ChannelQuantized:
    """Round-to-nearest int4 per output channel."""
    s = channel_scales(w_in_out)
    q = np.clip(np.round(w_in_out / s[None, :]), -8, 7).astype(np.int8)
    return ChannelQuantized(q, s)


def quantize_gptq(w_in_out: np.ndarray, hessian: np.ndarray, damp: float = 0.01,
                  block: int = 128) -> ChannelQuantized:
    """GPTQ (Frantar et al. 2022): quantize input rows in order, spreading each error over the rest.

    `hessian` is X^T X [in, in] accumulated from calibration activations entering this linear.
    """
    W = np.array(w_in_out.T, dtype=np.float64)  # [out, in], columns are inputs
    n_in = W.shape[1]
    H = np.array(hessian, dtype=np.float64)
    dead = np.diag(H) == 0
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    s = channel_scales(W.T).astype(np.float64)
    H += np.eye(n_in) * damp * np.mean(np.diag(H))
    L = np.linalg.cholesky(np.linalg.inv(H))  # lower; upper factor of H^-1 is L.T
    Hinv = L.T
    Q = np.zeros_like(W)
    for b0 in range(0, n_in, block):
        b1 = min(b0 + block, n_in)
        W1 = W[:, b0:b1].copy()
        Err = np.zeros_like(W1)
        Hinv1 = Hinv[b0:b1, b0:b1]
        for i in range(b1 - b0):
            w = W1[:, i]
            d = Hinv1[i, i]
            q = np.clip(np.round(w / s), -8, 7)
            Q[:, b0 + i] = q
            err = (w - q * s) / d
            W1[:, i:] -= np.outer(err, Hinv1[i, i:])
            Err[:, i] = err
        W[:, b1:] -= Err @ Hinv[b0:b1, b1:]
    return ChannelQuantized(Q.T.astype(np.int8), s.astype(np.float32))
