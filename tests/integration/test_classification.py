"""The classification extension through the stock tritonclient (`class_count`), and shared
memory parameters refused by name (this server has no shared memory)."""

from __future__ import annotations

import queue

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from _server import ServerProcess
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.integration


def _input(name: str, values: np.ndarray, datatype: str) -> grpcclient.InferInput:
    i = grpcclient.InferInput(name, list(values.shape), datatype)
    i.set_data_from_numpy(values)
    return i


def _top(row: np.ndarray, k: int) -> list[bytes]:
    """Triton's strings for the k largest of ``row``: value as C's %f, then the index."""
    order = sorted(range(len(row)), key=lambda i: (-row[i], i))[:k]
    return [f"{row[i]:f}:{i}".encode() if row.dtype.kind == "f" else f"{row[i]}:{i}".encode()
            for i in order]


def test_class_count_ranks_each_row_of_a_batched_model(
        client: grpcclient.InferenceServerClient) -> None:
    x = np.array([[0.25, -1.5, 0.75], [3.0, 9.0, 3.0]], np.float32)  # id_fp32: y = x
    out = grpcclient.InferRequestedOutput("y", class_count=2)
    result = client.infer("id_fp32", [_input("x", x, "FP32")], outputs=[out])
    assert result.get_output("y").datatype == "BYTES"
    got = result.as_numpy("y")
    assert got.shape == (2, 2)
    assert [list(r) for r in got] == [_top(x[0], 2), _top(x[1], 2)]
    assert [list(r) for r in got] == [[b"0.750000:2", b"0.250000:0"],
                                      [b"9.000000:1", b"3.000000:0"]]


def test_class_count_ranks_the_whole_output_without_a_batch_dimension(
        client: grpcclient.InferenceServerClient) -> None:
    # `fail` (max_batch_size 0): y = arange(10.0)[idx]; k above the 4 elements is clamped.
    idx = np.array([3, 1, 7, 0], np.int64)
    out = grpcclient.InferRequestedOutput("y", class_count=9)
    got = client.infer("fail", [_input("idx", idx, "INT64")], outputs=[out]).as_numpy("y")
    assert list(got) == [b"7.000000:2", b"3.000000:0", b"1.000000:1", b"0.000000:3"]


def test_class_count_of_a_bytes_output_is_refused(
        client: grpcclient.InferenceServerClient) -> None:
    x = np.array([[b"a", b"b", b"c"]], np.object_)
    out = grpcclient.InferRequestedOutput("y", class_count=1)
    with pytest.raises(InferenceServerException) as info:
        client.infer("id_bytes", [_input("x", x, "BYTES")], outputs=[out])
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "requested output 'y': classification needs a numeric output" in info.value.message()


def test_class_count_in_a_stream(server: ServerProcess) -> None:
    answers: queue.Queue[tuple[object, object]] = queue.Queue()
    c = grpcclient.InferenceServerClient(server.url)
    c.start_stream(callback=lambda result, error: answers.put((result, error)))
    try:
        x = np.array([[1.0, 5.0, 2.0]], np.float64)
        c.async_stream_infer("id_fp64", [_input("x", x, "FP64")],
                             outputs=[grpcclient.InferRequestedOutput("y", class_count=1)])
        result, error = answers.get(timeout=30)
        assert error is None, error
        assert list(result.as_numpy("y")[0]) == [b"5.000000:1"]  # type: ignore[attr-defined]
    finally:
        c.stop_stream()
        c.close()


def test_shared_memory_is_refused_by_name(client: grpcclient.InferenceServerClient) -> None:
    x = grpcclient.InferInput("x", [1, 3], "FP32")
    x.set_shared_memory("region", 12)
    with pytest.raises(InferenceServerException) as info:
        client.infer("id_fp32", [x])
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "input 'x': parameter 'shared_memory_" in info.value.message()
    assert "shared memory is not supported by this server" in info.value.message()
