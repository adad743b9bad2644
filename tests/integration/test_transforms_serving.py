"""A model registered with a transform spec, served over gRPC: clients send one tensor per raw
column (strings as BYTES) and get what the numpy reference of the spec computes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import tritonclient.grpc as grpcclient
from _server import start_server
from onnx import TensorProto, helper
from tritonclient.utils import InferenceServerException

import engine
from engine.transforms import apply_reference, fit

pytestmark = pytest.mark.integration


def test_raw_columns_over_grpc(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    train = {"age": rng.normal(40, 12, 400),
             "city": rng.choice(["paris", "rome", "oslo"], 400).astype(object)}
    spec = fit(train, {"age": [{"op": "impute", "strategy": "median"}, {"op": "standardize"}],
                       "city": [{"op": "vocabulary", "num_oov_buckets": 1,
                                 "encoding": "onehot"}]})
    graph = helper.make_graph(
        [helper.make_node("Identity", ["features"], ["y"])], "identity",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", spec.width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", spec.width])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    path = tmp_path / "identity.onnx"
    onnx.save(model, str(path))
    home = tmp_path / "engine-home"
    with engine.Registry(home=home) as registry:
        registry.register("features", path, alias="production",
                          config=engine.ModelConfig(transforms=spec.to_dict()))

    server = start_server(["--registry"], tmp_path)
    try:
        client = grpcclient.InferenceServerClient(server.url)
        metadata = client.get_model_metadata("features", as_json=True)
        assert [(i["name"], i["datatype"], i["shape"]) for i in metadata["inputs"]] == [
            ("age", "FP64", ["-1"]), ("city", "BYTES", ["-1"])]
        age = np.array([30.0, np.nan, 55.0], np.float64)
        city = np.array(["rome", "atlantis", ""], dtype=object)
        inputs = [grpcclient.InferInput("age", [3], "FP64"),
                  grpcclient.InferInput("city", [3], "BYTES")]
        inputs[0].set_data_from_numpy(age)
        inputs[1].set_data_from_numpy(city)
        got = client.infer("features", inputs).as_numpy("y")
        # String columns are UTF-8 text here as offline: other bytes are refused, named.
        inputs[1].set_data_from_numpy(np.array([b"rome", b"\xff\xfe", b""], dtype=object))
        with pytest.raises(InferenceServerException) as bad:
            client.infer("features", inputs)
        assert bad.value.status() == "StatusCode.INVALID_ARGUMENT"
        assert "column 'city' holds bytes that are not valid UTF-8" in (bad.value.message() or "")
    finally:
        assert server.terminate() == 0
    np.testing.assert_array_equal(got, apply_reference(spec, {"age": age, "city": city}))
