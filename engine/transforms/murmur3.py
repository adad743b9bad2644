"""MurmurHash3 x86 32-bit, vectorised over many keys with numpy.

The algorithm is Austin Appleby's public-domain MurmurHash3_x86_32: 4-byte little-endian blocks
mixed into the state, a 1-3 byte tail, then the final avalanche with the key length. Written
here from the algorithm's description so the spec's hashing has one numpy definition; it equals
ONNX Runtime's ``com.microsoft.MurmurHash3`` (positive=1) and the C++ core's ``Murmur3X86_32``.

Strings are hashed over their UTF-8 bytes given as an Arrow-style (offsets, data) pair. The
loop runs over block positions (at most the longest key / 4), never over keys: keys are sorted
by block count so the keys still having block ``b`` are a prefix of the order.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["murmur3_bytes", "murmur3_uint64"]

_C1 = np.uint32(0xCC9E2D51)
_C2 = np.uint32(0x1B873593)
_M = np.uint32(5)
_N = np.uint32(0xE6546B64)
_F1 = np.uint32(0x85EBCA6B)
_F2 = np.uint32(0xC2B2AE35)

U32 = npt.NDArray[np.uint32]


def _rotl(x: U32, r: int) -> U32:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def _mix_k(k: U32) -> U32:
    k = k * _C1
    k = _rotl(k, 15)
    return k * _C2


def _mix_h(h: U32, k: U32) -> U32:
    h = h ^ _mix_k(k)
    h = _rotl(h, 13)
    return h * _M + _N


def _fmix(h: U32, length: U32) -> U32:
    h = h ^ length
    h = h ^ (h >> np.uint32(16))
    h = h * _F1
    h = h ^ (h >> np.uint32(13))
    h = h * _F2
    return h ^ (h >> np.uint32(16))


def murmur3_bytes(offsets: npt.NDArray[np.int64], data: npt.NDArray[np.uint8], seed: int) -> U32:
    """Hash each key ``data[offsets[i]:offsets[i+1]]``; returns uint32 per key."""
    starts = offsets[:-1].astype(np.int64)
    lengths = (offsets[1:] - offsets[:-1]).astype(np.int64)
    n = lengths.shape[0]
    data32 = data.astype(np.uint32)
    h = np.full(n, seed, dtype=np.uint32)
    nblocks = lengths // 4
    order = np.argsort(-nblocks, kind="stable")
    sorted_blocks = nblocks[order]
    # keys with more than b blocks = the first count_b entries of `order`.
    max_blocks = int(sorted_blocks[0]) if n else 0
    for b in range(max_blocks):
        count = int(np.searchsorted(-sorted_blocks, -b, side="left"))
        rows = order[:count]
        pos = starts[rows] + 4 * b
        k = (
            data32[pos]
            | (data32[pos + 1] << np.uint32(8))
            | (data32[pos + 2] << np.uint32(16))
            | (data32[pos + 3] << np.uint32(24))
        )
        h[rows] = _mix_h(h[rows], k)
    tail_len = lengths & 3
    tail_start = starts + nblocks * 4
    k1 = np.zeros(n, dtype=np.uint32)
    for byte in (2, 1, 0):  # tail bytes in the reference's fall-through order
        has = tail_len > byte
        k1[has] ^= data32[tail_start[has] + byte] << np.uint32(8 * byte)
    has_tail = tail_len > 0
    h[has_tail] ^= _mix_k(k1[has_tail])
    return _fmix(h, lengths.astype(np.uint32))


def murmur3_uint64(keys: npt.NDArray[np.uint64], seed: int) -> U32:
    """Hash each uint64 as its 8 little-endian bytes (two blocks, no tail)."""
    keys = keys.astype(np.uint64)
    lo = (keys & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    hi = (keys >> np.uint64(32)).astype(np.uint32)
    h = np.full(keys.shape, seed, dtype=np.uint32)
    h = _mix_h(h, lo)
    h = _mix_h(h, hi)
    return _fmix(h, np.full(keys.shape, 8, dtype=np.uint32))
