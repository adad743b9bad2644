"""Every RPC of GRPCInferenceService through the stock tritonclient.grpc (sync), plus health
and reflection through plain grpcio."""

from __future__ import annotations

import json

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from _server import ServerProcess
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.integration


def _add_input(x: np.ndarray) -> grpcclient.InferInput:
    i = grpcclient.InferInput("x", list(x.shape), "FP32")
    i.set_data_from_numpy(x)
    return i


def test_live_and_ready(client: grpcclient.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("add")
    assert client.is_model_ready("add", "2")
    assert not client.is_model_ready("no_such_model")


def test_server_metadata_lists_extensions(client: grpcclient.InferenceServerClient) -> None:
    meta = client.get_server_metadata(as_json=True)
    assert meta["name"] == "engine"
    assert meta["version"]
    assert {"classification", "model_configuration", "model_repository",
            "statistics"} <= set(meta["extensions"])


def test_model_metadata_has_dynamic_dims(client: grpcclient.InferenceServerClient) -> None:
    meta = client.get_model_metadata("add", as_json=True)
    assert meta["name"] == "add"
    assert meta["versions"] == ["1", "2"]
    assert meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": ["-1", "4"]}]
    assert meta["outputs"] == [{"name": "y", "datatype": "FP32", "shape": ["-1", "4"]}]


def test_model_config_for_perf_tools(client: grpcclient.InferenceServerClient) -> None:
    config = client.get_model_config("slow", as_json=True)["config"]
    assert config["name"] == "slow"
    assert config["max_batch_size"] == 64
    assert config["input"] == [{"name": "x", "data_type": "TYPE_FP32", "dims": ["4"]}]
    assert config["output"] == [{"name": "y", "data_type": "TYPE_FP32", "dims": ["4"]}]
    batching = config["dynamic_batching"]
    assert batching["preferred_batch_size"] == [64]
    assert batching["max_queue_delay_microseconds"] == "300000"
    assert config["parameters"] == {  # what config.pbtxt may set, as in force (defaults here)
        "intra_op_thread_count": {"string_value": "1"},
        "inter_op_thread_count": {"string_value": "1"},
        "completion_spin": {"string_value": "true"},
    }
    unbatched = client.get_model_config("fail", as_json=True)["config"]
    assert unbatched.get("max_batch_size", 0) == 0
    assert unbatched["input"][0]["dims"] == ["-1"]
    assert "dynamic_batching" not in unbatched


@pytest.mark.parametrize("rows", [1, 3, 8, 64])
def test_infer_batch_sizes(client: grpcclient.InferenceServerClient, rows: int) -> None:
    x = np.arange(rows * 4, dtype=np.float32).reshape(rows, 4)
    result = client.infer("add", [_add_input(x)], request_id=f"rows-{rows}")
    np.testing.assert_array_equal(result.as_numpy("y"), x + 2)  # default: highest version
    response = result.get_response()
    assert response.id == f"rows-{rows}"
    assert (response.model_name, response.model_version) == ("add", "2")


def test_infer_explicit_version(client: grpcclient.InferenceServerClient) -> None:
    x = np.ones((2, 4), dtype=np.float32)
    result = client.infer("add", [_add_input(x)], model_version="1")
    np.testing.assert_array_equal(result.as_numpy("y"), x + 1)
    assert result.get_response().model_version == "1"


def test_output_subset(client: grpcclient.InferenceServerClient) -> None:
    from _models import DATATYPES

    inputs = []
    for name, (_, dtype, _) in DATATYPES.items():
        i = grpcclient.InferInput(f"in_{name.lower()}", [1, 3], name)
        data = np.array([[b"a", b"b", b"c"]], dtype=np.object_) if name == "BYTES" else (
            np.ones((1, 3), dtype=dtype))  # type: ignore[call-overload]
        i.set_data_from_numpy(data)
        inputs.append(i)
    wanted = [grpcclient.InferRequestedOutput("out_int32"), grpcclient.InferRequestedOutput("out_fp16")]
    result = client.infer("types", inputs, outputs=wanted)
    names = [o.name for o in result.get_response().outputs]
    assert names == ["out_int32", "out_fp16"]
    assert result.as_numpy("out_fp16").dtype == np.float16


def test_statistics_count_requests(client: grpcclient.InferenceServerClient) -> None:
    def successes() -> int:
        stats = client.get_inference_statistics("add", "1", as_json=True)["model_stats"]
        return int(stats[0]["inference_stats"]["success"].get("count", 0))

    before = successes()
    for _ in range(3):
        client.infer("add", [_add_input(np.zeros((2, 4), np.float32))], model_version="1")
    stats = client.get_inference_statistics("add", "1", as_json=True)["model_stats"][0]
    assert successes() == before + 3
    assert int(stats["inference_count"]) >= 6
    assert int(stats["execution_count"]) >= 3
    assert int(stats["last_inference"]) > 0
    assert any(int(b["batch_size"]) == 2 for b in stats["batch_stats"])
    # Triton's split of compute time: every phase is measured, and each phase is counted once
    # per successful request (per batch in batch_stats).
    infer = stats["inference_stats"]
    for phase in ("compute_input", "compute_infer", "compute_output"):
        assert int(infer[phase]["count"]) == successes(), phase
        assert int(infer[phase]["ns"]) > 0, phase
    two = next(b for b in stats["batch_stats"] if int(b["batch_size"]) == 2)
    assert int(two["compute_infer"]["ns"]) > 0 and int(two["compute_output"]["ns"]) > 0
    every = client.get_inference_statistics(as_json=True)["model_stats"]
    assert {(s["name"], s["version"]) for s in every} >= {("add", "1"), ("add", "2"), ("types", "1")}


def test_repository_index_unload_and_load(client: grpcclient.InferenceServerClient) -> None:
    index = client.get_model_repository_index(as_json=True)["models"]
    assert {"name": "add", "version": "1", "state": "READY"} in index
    client.unload_model("slow")
    assert not client.is_model_ready("slow")
    index = {m["name"]: m for m in client.get_model_repository_index(as_json=True)["models"]}
    assert index["slow"]["state"] == "UNAVAILABLE"
    with pytest.raises(InferenceServerException) as info:
        client.infer("slow", [_add_input(np.zeros((1, 4), np.float32))])
    assert info.value.status() == "StatusCode.NOT_FOUND"
    client.load_model("slow")
    assert client.is_model_ready("slow")
    ready_only = client.get_model_repository_index(as_json=True)
    assert any(m["name"] == "slow" and m.get("state") == "READY" for m in ready_only["models"])


def test_load_unknown_model_is_not_found(client: grpcclient.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException) as info:
        client.load_model("not_in_repository")
    assert info.value.status() == "StatusCode.NOT_FOUND"


def test_health_service(server: ServerProcess) -> None:
    with grpc.insecure_channel(server.url) as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check")
        # HealthCheckRequest{service: ""} is empty; HealthCheckResponse{status: SERVING=1}.
        assert check(b"", timeout=5) == b"\x08\x01"
        service = b"inference.GRPCInferenceService"
        assert check(b"\x0a" + bytes([len(service)]) + service, timeout=5) == b"\x08\x01"


def test_reflection_lists_the_service(server: ServerProcess) -> None:
    with grpc.insecure_channel(server.url) as channel:
        info = channel.stream_stream("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
        # ServerReflectionRequest{list_services: ""} (field 7).
        (response,) = list(info(iter([b"\x3a\x00"]), timeout=5))
    assert b"inference.GRPCInferenceService" in response
    assert b"grpc.health.v1.Health" in response


def test_model_config_json_round_trip(client: grpcclient.InferenceServerClient) -> None:
    config = client.get_model_config("add", "1", as_json=True)["config"]
    assert json.loads(json.dumps(config))["instance_group"][0]["kind"] == "KIND_CPU"
