"""Every KServe datatype, both encodings: raw_input_contents (what tritonclient sends) and typed
`contents` (sent as a hand-built protobuf through grpcio). Outputs always come back raw."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from _models import DATATYPES
from _server import ServerProcess
from tritonclient.grpc import service_pb2
from tritonclient.utils import deserialize_bytes_tensor

pytestmark = pytest.mark.integration


def _sample(datatype: str, rows: int) -> np.ndarray:
    rng = np.random.default_rng(rows)
    if datatype == "BYTES":
        # Binary bytes survive; an embedded NUL does not yet (the core hands ORT C strings).
        words = [b"", b"a", b"\xff\xfe binary", "ünïcode".encode(), b"x" * 300]
        return np.array([[words[(r + c) % len(words)] for c in range(3)] for r in range(rows)],
                        dtype=np.object_)
    if datatype == "BOOL":
        return rng.integers(0, 2, (rows, 3)).astype(np.bool_)
    dtype = np.dtype(DATATYPES[datatype][1])  # type: ignore[call-overload]
    if dtype.kind == "f":
        return rng.standard_normal((rows, 3)).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, (rows, 3), dtype=dtype, endpoint=True)


@pytest.mark.parametrize("datatype", list(DATATYPES))
@pytest.mark.parametrize("rows", [1, 5])
def test_raw_round_trip(client: grpcclient.InferenceServerClient, datatype: str, rows: int) -> None:
    x = _sample(datatype, rows)
    i = grpcclient.InferInput("x", list(x.shape), datatype)
    i.set_data_from_numpy(x)
    result = client.infer(f"id_{datatype.lower()}", [i])
    out = result.get_response().outputs[0]
    assert (out.datatype, list(out.shape)) == (datatype, [rows, 3])
    y = result.as_numpy("y")
    if datatype == "BYTES":
        assert y.tolist() == x.tolist()
    else:
        assert y.dtype == x.dtype
        np.testing.assert_array_equal(y, x)


_TYPED_FIELD = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents",
    "INT32": "int_contents", "INT64": "int64_contents", "UINT8": "uint_contents",
    "UINT16": "uint_contents", "UINT32": "uint_contents", "UINT64": "uint64_contents",
    "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}


def _model_infer(server: ServerProcess, request: service_pb2.ModelInferRequest,
                 ) -> service_pb2.ModelInferResponse:
    with grpc.insecure_channel(server.url) as channel:
        call = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer",
            request_serializer=service_pb2.ModelInferRequest.SerializeToString,
            response_deserializer=service_pb2.ModelInferResponse.FromString)
        return call(request, timeout=10)


def _raw_to_numpy(datatype: str, raw: bytes, shape: list[int]) -> np.ndarray:
    if datatype == "BYTES":
        return deserialize_bytes_tensor(raw).reshape(shape)
    return np.frombuffer(raw, dtype=DATATYPES[datatype][1]).reshape(shape)  # type: ignore[call-overload]


@pytest.mark.parametrize("datatype", list(_TYPED_FIELD))
def test_typed_contents(server: ServerProcess, datatype: str) -> None:
    x = _sample(datatype, 2)
    request = service_pb2.ModelInferRequest(model_name=f"id_{datatype.lower()}", id="typed")
    tensor = request.inputs.add(name="x", datatype=datatype, shape=[2, 3])
    getattr(tensor.contents, _TYPED_FIELD[datatype]).extend(x.flatten().tolist())
    response = _model_infer(server, request)
    assert response.id == "typed"
    assert len(response.raw_output_contents) == 1 and not response.outputs[0].HasField("contents")
    y = _raw_to_numpy(datatype, response.raw_output_contents[0], [2, 3])
    if datatype == "BYTES":
        assert y.tolist() == x.tolist()
    else:
        np.testing.assert_array_equal(y, x)


def test_fp16_needs_raw(server: ServerProcess) -> None:
    request = service_pb2.ModelInferRequest(model_name="id_fp16")
    request.inputs.add(name="x", datatype="FP16", shape=[1, 3]).contents.fp32_contents.extend(
        [1.0, 2.0, 3.0])
    with pytest.raises(grpc.RpcError) as info:
        _model_infer(server, request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "raw_input_contents" in info.value.details()


def test_typed_value_out_of_range_is_refused(server: ServerProcess) -> None:
    request = service_pb2.ModelInferRequest(model_name="id_int8")
    request.inputs.add(name="x", datatype="INT8", shape=[1, 3]).contents.int_contents.extend(
        [1, 2, 300])
    with pytest.raises(grpc.RpcError) as info:
        _model_infer(server, request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "out of range for INT8" in info.value.details()
