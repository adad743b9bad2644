"""MurmurHash3 x86 32-bit: published test vectors, and ONNX Runtime's contrib operator."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pytest
from onnx import TensorProto, helper

from engine.transforms.murmur3 import murmur3_bytes, murmur3_uint64

# Widely published vectors for MurmurHash3_x86_32 (key, seed, hash).
VECTORS = [
    (b"", 0, 0),
    (b"", 1, 0x514E28B7),
    (b"", 0xFFFFFFFF, 0x81F16F39),
    (b"\x00\x00\x00\x00", 0, 0x2362F9DE),
    (b"aaaa", 0x9747B28C, 0x5A97808A),
    (b"abc", 0, 0xB3DD93FA),
    (b"Hello, world!", 0x9747B28C, 0x24884CBA),
    (b"The quick brown fox jumps over the lazy dog", 0x9747B28C, 0x2FA826CD),
]


def hash_bytes(keys: list[bytes], seed: int) -> np.ndarray:
    offsets = np.concatenate([[0], np.cumsum([len(k) for k in keys])]).astype(np.int64)
    data = np.frombuffer(b"".join(keys), dtype=np.uint8)
    return murmur3_bytes(offsets, data, seed)


@pytest.mark.parametrize(("key", "seed", "expected"), VECTORS)
def test_published_vectors(key: bytes, seed: int, expected: int) -> None:
    assert int(hash_bytes([key], seed)[0]) == expected


def test_batch_equals_one_by_one() -> None:
    keys = [k for k, _, _ in VECTORS] + [b"x" * n for n in range(20)]
    batch = hash_bytes(keys, 7)
    assert batch.tolist() == [int(hash_bytes([k], 7)[0]) for k in keys]


def _ort_hash(values: np.ndarray, elem: int, seed: int) -> np.ndarray:
    node = helper.make_node("MurmurHash3", ["x"], ["y"], domain="com.microsoft", seed=seed, positive=1)
    graph = helper.make_graph([node], "h", [helper.make_tensor_value_info("x", elem, [None])],
                              [helper.make_tensor_value_info("y", TensorProto.UINT32, [None])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.microsoft", 1)])
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": values})[0]


@pytest.mark.parametrize("seed", [0, 1, 0x9747B28C, 2**32 - 1])
def test_equals_onnxruntime_contrib_op(seed: int) -> None:
    rng = np.random.default_rng(seed % 1000)
    alphabet = np.array(list("abcé日 \x00z"), dtype=object)
    strings = np.array(["".join(rng.choice(alphabet, rng.integers(0, 30))) for _ in range(300)],
                       dtype=object)
    arr = pa.array(strings, type=pa.large_string())
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)
    np.testing.assert_array_equal(murmur3_bytes(offsets, data, seed),
                                  _ort_hash(strings, TensorProto.STRING, seed))
    keys = rng.integers(0, 2**63, 300, dtype=np.uint64) * np.uint64(2)
    np.testing.assert_array_equal(murmur3_uint64(keys, seed),
                                  _ort_hash(keys, TensorProto.UINT64, seed))
