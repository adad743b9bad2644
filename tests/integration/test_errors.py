"""Each error the server answers: the gRPC code and a fragment of the message. Never UNKNOWN,
never an exception text or a server path in the details."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from _models import add_fail_model, build_mini_repository, build_wide_repository
from _server import ServerProcess, start_server
from tritonclient.grpc import service_pb2
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.integration

MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"


def _x(shape: tuple[int, ...] = (1, 4), datatype: str = "FP32", name: str = "x",
       ) -> grpcclient.InferInput:
    dtype = {"FP32": np.float32, "INT32": np.int32, "FP64": np.float64}[datatype]
    i = grpcclient.InferInput(name, list(shape), datatype)
    i.set_data_from_numpy(np.ones(shape, dtype=dtype))
    return i


def _error(fn: object, *args: object, **kwargs: object) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as info:
        fn(*args, **kwargs)  # type: ignore[operator]
    return info.value


def _raw_call(server: ServerProcess, method: str, body: bytes) -> grpc.RpcError:
    with grpc.insecure_channel(server.url) as channel:
        call = channel.unary_unary(method)
        with pytest.raises(grpc.RpcError) as info:
            call(body, timeout=10)
    return info.value


def test_unknown_model_and_version(client: grpcclient.InferenceServerClient) -> None:
    e = _error(client.infer, "no_such_model", [_x()])
    assert e.status() == "StatusCode.NOT_FOUND" and "unknown model 'no_such_model'" in e.message()
    e = _error(client.infer, "add", [_x()], model_version="7")
    assert e.status() == "StatusCode.NOT_FOUND" and "unknown version 7" in e.message()
    e = _error(client.get_model_metadata, "no_such_model")
    assert e.status() == "StatusCode.NOT_FOUND"
    e = _error(client.get_model_config, "add", "9")
    assert e.status() == "StatusCode.NOT_FOUND"
    e = _error(client.get_inference_statistics, "no_such_model")
    assert e.status() == "StatusCode.NOT_FOUND"


@pytest.mark.parametrize("version", ["01", "-1", "abc", "1.0", "99999999999"])
def test_bad_version_text(client: grpcclient.InferenceServerClient, version: str) -> None:
    e = _error(client.infer, "add", [_x()], model_version=version)
    assert e.status() == "StatusCode.INVALID_ARGUMENT" and "invalid model version" in e.message()


TRAVERSAL_NAMES = ["../add", "..", ".", "/etc/passwd", "add/", "add/.", "add/..", "a\\b",
                   "%2e%2e", "%2e%2e%2fadd", "..%2fadd", "a\x00b", ".hidden", "-rf", "", "a b",
                   "x" * 129, "mödel"]


@pytest.mark.parametrize("name", TRAVERSAL_NAMES)
def test_bad_names_are_invalid_in_every_rpc(client: grpcclient.InferenceServerClient,
                                            name: str) -> None:
    calls = [
        lambda: client.infer(name, [_x()]),
        lambda: client.get_model_metadata(name),
        lambda: client.get_model_config(name),
        lambda: client.is_model_ready(name),
        lambda: client.get_inference_statistics(name) if name else client.infer(name, [_x()]),
        lambda: client.load_model(name),
        lambda: client.unload_model(name),
    ]
    for call in calls:
        e = _error(call)
        assert e.status() == "StatusCode.INVALID_ARGUMENT", (name, e)
        assert "invalid model name" in e.message()


def test_wrong_shape_dtype_and_names(client: grpcclient.InferenceServerClient) -> None:
    e = _error(client.infer, "add", [_x((1, 5))])
    assert e.status() == "StatusCode.INVALID_ARGUMENT" and "input 'x'" in e.message()
    e = _error(client.infer, "add", [_x((1, 4), "INT32")])
    assert e.status() == "StatusCode.INVALID_ARGUMENT"
    assert "input 'x': expected datatype FP32, got INT32 (no implicit casts)" in e.message()
    e = _error(client.infer, "add", [_x(name="z")])
    assert e.status() == "StatusCode.INVALID_ARGUMENT" and "'z'" in e.message()
    e = _error(client.infer, "add", [_x(), _x()])
    assert e.status() == "StatusCode.INVALID_ARGUMENT"
    e = _error(client.infer, "add", [])
    assert e.status() == "StatusCode.INVALID_ARGUMENT" and "x" in e.message()
    e = _error(client.infer, "add", [_x()], outputs=[grpcclient.InferRequestedOutput("nope")])
    assert e.status() == "StatusCode.INVALID_ARGUMENT" and "nope" in e.message()


def _request(model: str = "add", shape: tuple[int, ...] = (1, 4), datatype: str = "FP32",
             raws: tuple[bytes, ...] = (b"\0" * 16,)) -> service_pb2.ModelInferRequest:
    r = service_pb2.ModelInferRequest(model_name=model, id="req-raw")
    r.inputs.add(name="x", datatype=datatype, shape=list(shape))
    r.raw_input_contents.extend(raws)
    return r


@pytest.mark.parametrize("request_, fragment", [
    (_request(raws=(b"\0" * 15,)), "raw_input_contents holds 15 bytes"),
    (_request(raws=(b"\0" * 16, b"\0" * 16)), "2 buffers for 1 inputs"),
    (_request(shape=(1, -4)), "negative dimension"),
    (_request(datatype="BF16", raws=(b"\0" * 8,)), "unsupported datatype 'BF16'"),
    (_request("id_bytes", (1, 3), "BYTES", (struct.pack("<I", 5) + b"ab",)), "declares 5 bytes"),
    (_request("id_bytes", (1, 3), "BYTES", (struct.pack("<I", 1) + b"a" + b"\1\0",)),
     "ends inside the length prefix"),
    (_request("id_bytes", (1, 1), "BYTES", (struct.pack("<I", 1) + b"ab",)), "bytes left after"),
], ids=["size-mismatch", "extra-raw-buffer", "negative-dim", "bf16", "bytes-overrun", "bytes-truncated",
        "bytes-trailing"])
def test_bad_raw_contents(server: ServerProcess, request_: service_pb2.ModelInferRequest,
                          fragment: str) -> None:
    e = _raw_call(server, MODEL_INFER, request_.SerializeToString())
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in e.details()


def test_inputs_are_checked_against_the_model_before_decoding(server: ServerProcess) -> None:
    # Broken BYTES framing, sent where the model wants FP32 or has no such input: the model's
    # signature answers first, so no string is built for a request that cannot run.
    broken = (struct.pack("<I", 99),)
    e = _raw_call(server, MODEL_INFER, _request("add", (1, 4), "BYTES", broken).SerializeToString())
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "input 'x': expected datatype FP32, got BYTES" in e.details()
    r = _request("add", (1, 4), "BYTES", broken)
    r.inputs[0].name = "z"
    e = _raw_call(server, MODEL_INFER, r.SerializeToString())
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "unknown input 'z'; the model's inputs are 'x'" in e.details()


def test_bytes_elements_are_bounded(server: ServerProcess) -> None:
    # 2^20 + 1 empty strings in a 4 MB message: refused on the count, before any is built.
    count = (1 << 20) + 1
    body = _request("id_bytes", (count, 1), "BYTES", (b"\0\0\0\0" * count,)).SerializeToString()
    e = _raw_call(server, MODEL_INFER, body)
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "BYTES elements; the limit is 1048576" in e.details()


@pytest.mark.parametrize("body", [b"\xff\xff\xff\xff", b"\x0a\x05ab", b"\x2a\x80",
                                  b"\x0a\x02\xc3\x28"],
                         ids=["bad-tag", "truncated-string", "truncated-varint", "bad-utf8"])
@pytest.mark.parametrize("method", ["ModelInfer", "ModelMetadata", "RepositoryModelLoad"])
def test_malformed_protobuf(server: ServerProcess, body: bytes, method: str) -> None:
    e = _raw_call(server, f"/inference.GRPCInferenceService/{method}", body)
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed request" in e.details()


def _field(tag: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field: tag byte, varint length, payload."""
    length, size = b"", len(payload)
    while size >= 0x80:
        length += bytes([size & 0x7F | 0x80])
        size >>= 7
    return bytes([tag]) + length + bytes([size]) + payload


# Small messages that ask for a large parse: each is refused by counting, before parsing.
# Before that check a 60 MB message of empty inputs took the server 2.2 GB and 5 s.
_COUNTS = {
    "inputs": (_field(0x0A, b"add") + _field(0x2A, b"") * 1_000_000,
               "request has 1000000 inputs; the limit is 64"),
    "dims": (_field(0x0A, b"add") + _field(0x2A, _field(0x1A, b"\x01" * 1_000_000)),
             "input 0 has a shape of 1000000 dimensions; the limit is 64"),
    "parameters": (_field(0x0A, b"add") + _field(0x22, b"") * 1_000_000,
                   "request has 1000000 parameters; the limit is 64"),
}


@pytest.mark.parametrize("case", sorted(_COUNTS))
def test_field_counts_are_bounded_before_parsing(server: ServerProcess, case: str) -> None:
    body, fragment = _COUNTS[case]
    e = _raw_call(server, MODEL_INFER, body)
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in e.details()


def test_stream_answers_bad_bytes_and_bounds_in_band(server: ServerProcess) -> None:
    bodies = [b"\x2a\x80", _COUNTS["inputs"][0]]
    with grpc.insecure_channel(server.url) as channel:
        stream = channel.stream_stream("/inference.GRPCInferenceService/ModelStreamInfer")
        answers = [service_pb2.ModelStreamInferResponse.FromString(raw)
                   for raw in stream(iter(bodies), timeout=30)]
    assert len(answers) == 2
    assert "malformed request" in answers[0].error_message
    assert "request has 1000000 inputs" in answers[1].error_message


def test_deadline_passes_in_queue(server: ServerProcess,
                                  client: grpcclient.InferenceServerClient) -> None:
    # `deep` runs one 64-row batch at a time (3 ms or more each); behind 48 or more of them, a
    # 1-row request with a 2 ms timeout expires while they run, at its deadline: never executed.
    from test_metrics import _scrape, _value

    def queued() -> float:
        return _value(_scrape(server), "engine_queue_depth", "engine_queue_depth", model="deep",
                      version="1")

    sent = 96
    answered: list[object] = []
    for _ in range(sent):
        client.async_infer("deep", [_x((64, 512))],
                           callback=lambda result, error: answered.append(error))
    deadline = time.monotonic() + 10
    # Wait for many queued, not a few: this process can be descheduled between the scrape
    # and the 1-row request, and the queue must not drain meanwhile (a few queued did, in CI).
    while (depth := queued()) < sent // 2 and time.monotonic() < deadline:
        time.sleep(0.002)
    assert depth >= sent // 2, f"only {depth} of {sent} requests queued after 10 s"
    e = _error(client.infer, "deep", [_x((1, 512))], timeout=2000)
    assert e.status() == "StatusCode.DEADLINE_EXCEEDED"
    assert "not run" in e.message()
    while len(answered) < sent and time.monotonic() < deadline + 30:
        time.sleep(0.01)
    assert answered == [None] * sent
    stats = client.get_inference_statistics("deep", as_json=True)["model_stats"][0]
    assert int(stats["inference_stats"]["fail"]["count"]) >= 1


def test_a_queue_delay_longer_than_the_timeout_still_runs(
        client: grpcclient.InferenceServerClient) -> None:
    # `slow` waits 300 ms to fill a batch; a request with a 50 ms timeout is not held until it
    # expires: its batch starts a fifth of the timeout before the deadline.
    result = client.infer("slow", [_x()], timeout=50_000)
    np.testing.assert_array_equal(result.as_numpy("y"), np.full((1, 4), 2.0, np.float32))


def _executions(client: grpcclient.InferenceServerClient, model: str) -> tuple[int, int]:
    """ModelStatistics' execution_count, and the executions its batch_stats add up to."""
    stats = client.get_inference_statistics(model, as_json=True)["model_stats"][0]
    per_size = sum(int(b["compute_infer"]["count"]) for b in stats.get("batch_stats", []))
    return int(stats.get("execution_count", 0)), per_size


def test_run_failure_is_internal_and_generic(client: grpcclient.InferenceServerClient,
                                             server: ServerProcess) -> None:
    before = _executions(client, "fail")
    idx = grpcclient.InferInput("idx", [2], "INT64")
    idx.set_data_from_numpy(np.array([1, 99], dtype=np.int64))
    e = _error(client.infer, "fail", [idx], request_id="req-77")
    assert e.status() == "StatusCode.INTERNAL"
    assert "req-77" in e.message()
    for leak in ("/", "Gather", "onnxruntime", "indices", "Exception"):
        assert leak not in e.message(), e.message()
    # The detail went to the server log under the same id.
    assert "req-77" in server.stderr()
    # The model still serves good requests.
    idx.set_data_from_numpy(np.array([1, 2], dtype=np.int64))
    assert client.infer("fail", [idx]).as_numpy("y").tolist() == [1.0, 2.0]
    # Statistics count successful executions only, as Triton's do, in both places.
    after = _executions(client, "fail")
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)
    assert after[0] == after[1]


def test_run_failure_logs_one_escaped_line_per_failure(client: grpcclient.InferenceServerClient,
                                                       server: ServerProcess) -> None:
    # The request id is the client's: a line break in it must not start a forged log line.
    idx = grpcclient.InferInput("idx", [1], "INT64")
    idx.set_data_from_numpy(np.array([50], dtype=np.int64))
    _error(client.infer, "fail", [idx], request_id="evil\nERROR forged line")
    lines = server.stderr().splitlines()
    assert not any(line.startswith("ERROR forged line") for line in lines)
    assert any("engine.server.core [evil\\x0aERROR forged line]" in line for line in lines)


def test_log_json_lines_all_parse(tmp_path: Path) -> None:
    # With --log-json every stderr line is one JSON object: the C++ server's and ONNX
    # Runtime's lines included, whatever the client put in its request id.
    repo = build_mini_repository(tmp_path / "repo")
    add_fail_model(repo)
    srv = start_server(["--model-repository", str(repo), "--log-json"], tmp_path)
    try:
        c = grpcclient.InferenceServerClient(srv.url)
        idx = grpcclient.InferInput("idx", [1], "INT64")
        idx.set_data_from_numpy(np.array([50], dtype=np.int64))
        _error(c.infer, "fail", [idx], request_id="id\n{\"forged\": 1}\xff")
        c.close()
        # A string field that is not UTF-8 makes protobuf log a line of its own.
        request = service_pb2.ModelInferRequest(model_name="add", id="utf8")
        request.inputs.add(name="QQQQ", datatype="FP32", shape=[1, 4])
        request.raw_input_contents.append(np.ones((1, 4), np.float32).tobytes())
        wire = request.SerializeToString().replace(b"QQQQ", b"\xff\xfe\xff\xfe")
        with grpc.insecure_channel(srv.url) as channel:
            try:
                channel.unary_unary(MODEL_INFER)(wire, timeout=10)
            except grpc.RpcError:
                pass  # refused or not: the log is what this checks
    finally:
        assert srv.terminate() == 0
    records = [json.loads(line) for line in srv.stderr().splitlines() if line.strip()]
    assert any(r["logger"] == "protobuf" and "UTF-8" in r["message"] for r in records), records
    failed = [r for r in records if r["logger"] == "engine.server.core"]
    assert len(failed) == 1 and failed[0]["level"] == "ERROR"
    assert failed[0]["request_id"] == "id\n{\"forged\": 1}\xff"
    assert "request failed (EXECUTION_FAILED)" in failed[0]["message"]
    assert any(r["logger"].startswith("onnxruntime") for r in records)  # ORT's own line


def test_unimplemented_rpc_is_not_unknown(server: ServerProcess) -> None:
    e = _raw_call(server, "/inference.GRPCInferenceService/SystemSharedMemoryStatus", b"")
    assert e.code() == grpc.StatusCode.UNIMPLEMENTED


def test_unsupported_rpcs_say_what_to_do_instead(
        server: ServerProcess, client: grpcclient.InferenceServerClient) -> None:
    """grpc++ answered them UNIMPLEMENTED with an empty message."""
    cases = [
        (client.get_system_shared_memory_status,
         ("SystemSharedMemoryStatus: shared memory is not supported by this server; send the "
          "tensors in the request")),
        (lambda: client.register_cuda_shared_memory("r", b"", 0, 16),
         "CudaSharedMemoryRegister: shared memory is not supported"),
        (client.get_trace_settings, "TraceSetting: tracing is not supported by this server"),
        (client.get_log_settings, "LogSettings: log settings are not changed over gRPC"),
    ]
    for call, message in cases:
        with pytest.raises(InferenceServerException) as info:
            call()
        assert info.value.status() == "StatusCode.UNIMPLEMENTED", info.value
        assert message in info.value.message(), info.value
    e = _raw_call(server, "/nosuch.Service/Method", b"")
    assert e.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "method '/nosuch.Service/Method' is not served here" in e.details()
    # The services that are served still are.
    assert client.is_server_live()


def test_client_cancel_removes_the_queued_request(server: ServerProcess,
                                                  client: grpcclient.InferenceServerClient
                                                  ) -> None:
    # `slow` holds a lone request 300 ms for company; the client cancels well before that.
    # The server's OnCancel (run inline on gRPC's thread) takes it out of the queue: it is
    # counted as cancelled and never executed, and the server keeps serving.
    from test_metrics import _scrape, _value

    def cancelled() -> float:
        return _value(_scrape(server), "engine_requests", "engine_requests_total", model="slow",
                      outcome="cancelled")

    before = cancelled()
    request = service_pb2.ModelInferRequest(model_name="slow", id="to-cancel")
    request.inputs.add(name="x", datatype="FP32", shape=[1, 4])
    request.raw_input_contents.append(np.ones((1, 4), np.float32).tobytes())
    with grpc.insecure_channel(server.url) as channel:
        future = channel.unary_unary(MODEL_INFER).future(request.SerializeToString(), timeout=10)
        time.sleep(0.05)
        assert future.cancel()
    deadline = time.monotonic() + 5
    while cancelled() < before + 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert cancelled() == before + 1
    assert client.infer("add", [_x()]).as_numpy("y") is not None


def test_stream_cancel_removes_its_queued_requests(server: ServerProcess) -> None:
    # A stream pipelines 64-row requests to `deep` (one 64-row batch at a time): one runs, the
    # others queue behind it. The client then cancels the stream: its requests still queued
    # must not run for nobody (as a cancelled ModelInfer's would not). Once nothing of the
    # stream is left in the engine, at least one of them was cancelled, and none failed.
    from test_metrics import _scrape, _value

    def gauge(family: str) -> float:
        return _value(_scrape(server), family, family, model="deep", version="1")

    def count(outcome: str) -> float:
        return _value(_scrape(server), "engine_requests", "engine_requests_total", model="deep",
                      version="1", outcome=outcome)

    before = {o: count(o) for o in ("ok", "cancelled", "failed", "unavailable")}
    bodies = []
    for k in range(100):
        request = service_pb2.ModelInferRequest(model_name="deep", id=f"c{k}")
        request.inputs.add(name="x", datatype="FP32", shape=[64, 512])
        request.raw_input_contents.append(np.full((64, 512), k, np.float32).tobytes())
        bodies.append(request.SerializeToString())
    with grpc.insecure_channel(server.url) as channel:
        responses = channel.stream_stream("/inference.GRPCInferenceService/ModelStreamInfer")(
            iter(bodies), timeout=60)
        deadline = time.monotonic() + 20
        while (depth := gauge("engine_queue_depth")) < 10 and time.monotonic() < deadline:
            time.sleep(0.002)
        assert depth >= 10  # the value seen: a second scrape could find the queue drained
        responses.cancel()
    deadline = time.monotonic() + 30
    while gauge("engine_requests_in_flight") > 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    after = {o: count(o) - before[o] for o in before}
    assert gauge("engine_requests_in_flight") == 0, after
    assert after["cancelled"] >= 1 and after["failed"] == after["unavailable"] == 0, after


def test_a_response_over_the_message_limit_is_refused_and_a_stream_goes_on(
        tmp_path: Path) -> None:
    # 32 rows of `wide` answer 8 KB, over a 4 KB --max-message-bytes; one row answers 256 B.
    repo = build_wide_repository(tmp_path / "repo")
    srv = start_server(["--model-repository", str(repo), "--max-message-bytes", "4096"], tmp_path)
    try:
        def request(rows: int, request_id: str) -> service_pb2.ModelInferRequest:
            r = service_pb2.ModelInferRequest(model_name="wide", id=request_id)
            r.inputs.add(name="x", datatype="FP32", shape=[rows, 4])
            r.raw_input_contents.append(np.ones((rows, 4), np.float32).tobytes())
            return r

        refused = "more than the server's limit of 4096 bytes (--max-message-bytes)"
        client = grpcclient.InferenceServerClient(srv.url)
        big = grpcclient.InferInput("x", [32, 4], "FP32")
        big.set_data_from_numpy(np.ones((32, 4), np.float32))
        e = _error(client.infer, "wide", [big])
        assert e.status() == "StatusCode.RESOURCE_EXHAUSTED"
        assert refused in e.message() and "the response would be" in e.message()
        client.close()

        # In a stream the oversized answer is an in-band error; the stream stays open and the
        # request behind it is answered (gRPC used to end the stream on the oversized write).
        with grpc.insecure_channel(srv.url) as channel:
            stream = channel.stream_stream("/inference.GRPCInferenceService/ModelStreamInfer")
            bodies = [request(1, "before"), request(32, "big"), request(1, "after")]
            answers = [service_pb2.ModelStreamInferResponse.FromString(raw) for raw in
                       stream(iter(b.SerializeToString() for b in bodies), timeout=30)]
        by_id = {a.infer_response.id: a for a in answers}
        assert sorted(by_id) == ["after", "before", "big"]
        assert refused in by_id["big"].error_message
        for ok in ("before", "after"):
            assert by_id[ok].error_message == ""
            assert by_id[ok].infer_response.outputs[0].shape == [1, 64]
    finally:
        assert srv.terminate() == 0, srv.stderr()
