"""RepositoryModelLoad against a real server: config.pbtxt checked against the model, a failed
reload leaves the served version READY, a deleted folder unloads, max_batch_size without
dynamic_batching is a batch dimension, and a live reload fails no request."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import factories
import grpc
import numpy as np
import onnx
import pytest
import tritonclient.grpc as grpcclient
from _server import ServerProcess, start_server
from tritonclient.grpc import service_pb2
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.integration

_NO_DYNAMIC = (
    'max_batch_size: 4\ninput [ { name: "x", data_type: TYPE_FP32, dims: [ 4 ] } ]\n'
    'output [ { name: "y", data_type: TYPE_FP32, dims: [ 4 ] } ]\n')


def _model(repo: Path, name: str, config: str | None = None) -> None:
    (repo / name / "1").mkdir(parents=True, exist_ok=True)
    factories.mlp(repo / name / "1" / "model.onnx", sizes=(4, 4))  # x [N, 4] -> y [N, 4]
    if config is not None:
        (repo / name / "config.pbtxt").write_text(config)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("control") / "repo"
    _model(root, "m")
    _model(root, "m4", _NO_DYNAMIC)
    return root


# Overrides conftest's shared server for this module; conftest's `client` then talks to it.
@pytest.fixture(scope="module")
def server(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = start_server(["--model-repository", str(repo)], tmp_path_factory.mktemp("srv"))
    yield srv
    assert srv.terminate() == 0, srv.stderr()


def _error(fn: object, *args: object) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as info:
        fn(*args)  # type: ignore[operator]
    return info.value


def _infer(client: grpcclient.InferenceServerClient, name: str, rows: int = 1) -> np.ndarray:
    x = grpcclient.InferInput("x", [rows, 4], "FP32")
    x.set_data_from_numpy(np.ones((rows, 4), np.float32))
    return client.infer(name, [x]).as_numpy("y")


def _index(client: grpcclient.InferenceServerClient, name: str) -> list[dict[str, str]]:
    models = client.get_model_repository_index(as_json=True).get("models", [])
    return [m for m in models if m["name"] == name]


@pytest.mark.parametrize(
    ("name", "tensor", "fragment"),
    [
        ("wrongtype", '{ name: "x", data_type: TYPE_INT64, dims: [ 4 ] }',
         "config declares input 'x' as int64 but the model has float32"),
        ("wrongdims", '{ name: "x", data_type: TYPE_FP32, dims: [ 5 ] }',
         "config declares input 'x' with shape [-1, 5] but the model has [-1, 4]"),
        ("wrongname", '{ name: "q", data_type: TYPE_FP32, dims: [ 4 ] }',
         "config declares input 'q' but the model's inputs are ['x']"),
    ],
)
def test_load_refuses_a_config_that_contradicts_the_model(
    client: grpcclient.InferenceServerClient, repo: Path, name: str, tensor: str, fragment: str
) -> None:
    _model(repo, name, f"max_batch_size: 4\ninput [ {tensor} ]\n")
    error = _error(client.load_model, name)
    assert error.status() == "StatusCode.FAILED_PRECONDITION"
    message = error.message() or ""
    assert message.startswith(f"load of model '{name}' failed: ") and fragment in message
    assert str(repo.parent) not in message  # the problem, never a server path
    assert not client.is_model_ready(name)
    (row,) = _index(client, name)
    assert row["state"] == "UNAVAILABLE" and fragment in row["reason"]


def test_failed_reload_keeps_the_served_version_and_a_deleted_folder_unloads(
    client: grpcclient.InferenceServerClient, repo: Path
) -> None:
    _model(repo, "r")
    client.load_model("r")
    (repo / "r" / "config.pbtxt").write_text("max_batch_size: 99999999999999999999999\n")
    error = _error(client.load_model, "r")
    assert error.status() == "StatusCode.FAILED_PRECONDITION"
    assert "r/config.pbtxt: max_batch_size must be an int <= 2147483647" in (error.message() or "")
    assert _infer(client, "r").shape == (1, 4)  # still served
    assert _index(client, "r") == [{"name": "r", "version": "1", "state": "READY"}]
    shutil.rmtree(repo / "r")
    error = _error(client.load_model, "r")
    assert error.status() == "StatusCode.NOT_FOUND"
    assert "its folder is gone; it was unloaded" in (error.message() or "")
    assert _error(_infer, client, "r").status() == "StatusCode.NOT_FOUND"
    assert _index(client, "r") == []


def test_max_batch_size_without_dynamic_batching_is_a_batch_dimension(
    client: grpcclient.InferenceServerClient,
) -> None:
    config = client.get_model_config("m4", as_json=True)["config"]
    assert config["max_batch_size"] == 4
    assert config["input"][0]["dims"] == ["4"]
    assert "dynamic_batching" not in config
    assert _infer(client, "m4", rows=4).shape == (4, 4)


def test_rows_over_max_batch_size_are_refused_without_dynamic_batching(
    client: grpcclient.InferenceServerClient,
) -> None:
    error = _error(_infer, client, "m4", 10)
    assert error.status() == "StatusCode.INVALID_ARGUMENT"
    assert "input 'x' has 10 rows; max_batch_size is 4" in (error.message() or "")


def test_declared_dims_are_checked_on_every_request(
    repo: Path, client: grpcclient.InferenceServerClient,
) -> None:
    # The model takes x [N, M] for any M; the config says [4]: a [2, 7] request is refused.
    (repo / "wide" / "1").mkdir(parents=True)
    factories.mlp(repo / "wide" / "1" / "model.onnx", sizes=(4, 4))
    model = onnx.load(str(repo / "wide" / "1" / "model.onnx"))
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "M"
    onnx.save(model, str(repo / "wide" / "1" / "model.onnx"))
    (repo / "wide" / "config.pbtxt").write_text(
        'max_batch_size: 8\ninput [ { name: "x", data_type: TYPE_FP32, dims: [ 4 ] } ]\n'
        "dynamic_batching { }\n")
    client.load_model("wide")
    meta = client.get_model_metadata("wide", as_json=True)
    assert meta["inputs"][0]["shape"] == ["-1", "4"]
    assert _infer(client, "wide", rows=2).shape == (2, 4)
    x = grpcclient.InferInput("x", [2, 7], "FP32")
    x.set_data_from_numpy(np.zeros((2, 7), np.float32))
    error = _error(client.infer, "wide", [x])
    assert error.status() == "StatusCode.INVALID_ARGUMENT"
    assert "expected shape [-1, 4], got [2, 7]" in (error.message() or "")


def test_warm_up_is_not_counted(client: grpcclient.InferenceServerClient) -> None:
    # The start-up warm-up ran every model once; no statistics or metric shows it.
    stats = client.get_inference_statistics("m", as_json=True)["model_stats"][0]
    assert int(stats.get("inference_count", 0)) == 0
    assert int(stats.get("execution_count", 0)) == 0


def test_reloading_a_served_model_fails_no_request(server: ServerProcess) -> None:
    # RepositoryModelLoad of a model that is served replaces it live: the new instance is
    # published, then the old one is closed (drained). A request that found the old one just
    # before the swap must run on either, never fail as "model is closed". Unary and stream
    # clients keep `m` busy through a bounded number of reloads; every answer must be good.
    infer = "/inference.GRPCInferenceService/ModelInfer"
    stream = "/inference.GRPCInferenceService/ModelStreamInfer"
    body = service_pb2.ModelInferRequest(model_name="m")
    body.inputs.add(name="x", datatype="FP32", shape=[1, 4])
    body.raw_input_contents.append(np.ones((1, 4), np.float32).tobytes())
    raw = body.SerializeToString()
    stop = threading.Event()
    failures: list[str] = []
    answered = [0]

    def unary() -> None:
        with grpc.insecure_channel(server.url) as channel:
            call = channel.unary_unary(infer)
            while not stop.is_set():
                try:
                    call(raw, timeout=20)
                    answered[0] += 1
                except grpc.RpcError as e:
                    failures.append(f"{e.code()}: {e.details()}")

    def streaming() -> None:
        with grpc.insecure_channel(server.url) as channel:
            while not stop.is_set():
                try:
                    for out in channel.stream_stream(stream)(iter([raw] * 50), timeout=20):
                        reply = service_pb2.ModelStreamInferResponse.FromString(out)
                        if reply.error_message:
                            failures.append(reply.error_message)
                        answered[0] += 1
                except grpc.RpcError as e:  # a failed stream is a failure too, not a lost thread
                    failures.append(f"stream {e.code()}: {e.details()}")

    threads = [threading.Thread(target=unary) for _ in range(4)]
    threads += [threading.Thread(target=streaming) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        with grpcclient.InferenceServerClient(server.url) as client:
            for _ in range(250):
                client.load_model("m")
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert answered[0] > 0
    assert failures == [], failures[:5]


def _ok_total(server: ServerProcess, name: str) -> float:
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (sample.name == "engine_requests_total" and sample.labels.get("model") == name
                    and sample.labels.get("outcome") == "ok"):
                return float(sample.value)
    return 0.0


def test_counters_keep_what_a_version_answered_between_two_scrapes(
    server: ServerProcess, client: grpcclient.InferenceServerClient
) -> None:
    """A version reloaded twice, or loaded and unloaded, between two scrapes: the model
    object in between was never listed at a scrape, and its answers were lost from the
    counters (which must never lose or undo an increment)."""
    client.load_model("m")
    before = _ok_total(server, "m")
    for _ in range(10):
        _infer(client, "m")
    client.load_model("m")  # the model that answered those 10 is replaced ...
    for _ in range(10):
        _infer(client, "m")
    client.load_model("m")  # ... and so is the next one, before any scrape saw it
    assert _ok_total(server, "m") == before + 20
    client.unload_model("m")
    client.load_model("m")
    for _ in range(7):
        _infer(client, "m")
    client.unload_model("m")
    client.load_model("m")
    assert _ok_total(server, "m") == before + 27

