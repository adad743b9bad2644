"""A model registered with a transform spec, served over gRPC: clients send one tensor per raw
column (strings as BYTES) and get what the numpy reference of the spec computes."""

from __future__ import annotations

import re
from pathlib import Path

import factories
import numpy as np
import onnx
import pytest
import tritonclient.grpc as grpcclient
from _server import start_server
from onnx import TensorProto, helper
from tritonclient.utils import InferenceServerException

import engine
from engine.errors import InvalidInputError
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


# --- Raw numeric columns sent in another numeric dtype --------------------------------------
# Over gRPC as in-process (Model.predict): converted to the column's declared dtype when no
# value changes, refused naming the column when one would (csrc/exact_convert.h and
# engine/transforms/columns.py's exact_numeric_column state the one rule).

DATATYPE = {np.dtype(np.float16): "FP16", np.dtype(np.float32): "FP32",
            np.dtype(np.float64): "FP64", np.dtype(np.int32): "INT32",
            np.dtype(np.int64): "INT64", np.dtype(np.uint8): "UINT8",
            np.dtype(np.uint32): "UINT32", np.dtype(np.uint64): "UINT64",
            np.dtype(np.bool_): "BOOL", np.dtype(np.object_): "BYTES"}
# Declared: f float32, n int64, d float64. The defaults are exact in each.
DEFAULTS = {"f": np.array([1.0, 2.5, -3.0], np.float32), "n": np.array([1, 2, 3], np.int64),
            "d": np.array([0.25, 2.0, 7.0], np.float64)}


@pytest.fixture(scope="module")
def typed(tmp_path_factory: pytest.TempPathFactory):
    """(spec, in-process model, gRPC client) for a model with float32, int64 and float64 raw
    columns, registered as 'typed'; 'plain' is the same graph without transforms."""
    tmp = tmp_path_factory.mktemp("typed")
    spec = fit({"f": np.arange(4, dtype=np.float32), "n": np.arange(4, dtype=np.int64),
                "d": np.arange(4, dtype=np.float64)},
               {c: [{"op": "standardize"}] for c in ("f", "n", "d")})
    assert [(c.name, c.dtype) for c in spec.inputs] == [
        ("f", "float32"), ("n", "int64"), ("d", "float64")]
    path = factories.features_identity(tmp / "identity.onnx", spec.width)
    config = engine.ModelConfig(transforms=spec.to_dict())
    with engine.Registry(home=tmp / "engine-home") as registry:
        registry.register("typed", path, alias="production", config=config)
        registry.register("plain", path, alias="production")
    server = start_server(["--registry"], tmp)
    client = grpcclient.InferenceServerClient(server.url)
    try:
        with engine.load(path, config=config) as model:
            yield spec, model, client
    finally:
        client.close()
        assert server.terminate() == 0, server.stderr()


def _infer(client: grpcclient.InferenceServerClient, columns: dict[str, np.ndarray]) -> np.ndarray:
    inputs = []
    for name, values in columns.items():
        i = grpcclient.InferInput(name, list(values.shape), DATATYPE[values.dtype])
        i.set_data_from_numpy(values)
        inputs.append(i)
    return client.infer("typed", inputs).as_numpy("y")


@pytest.mark.parametrize("column, values", [
    ("f", np.array([1, 2, 3], np.int64)),
    ("f", np.array([1, -2, 3], np.int32)),
    ("f", np.array([0.5, 2.0, -(2.0**100)], np.float64)),  # each one a float32 exactly
    ("f", np.array([0.5, np.nan, np.inf], np.float64)),  # missing stays missing
    ("f", np.array([1.5, -2.0, 65504.0], np.float16)),
    ("f", np.array([0, 7, 255], np.uint8)),
    ("f", np.array([2**24, -(2**40), 3], np.int64)),
    ("n", np.array([2.0, -1.0, 5.0], np.float64)),
    ("n", np.array([2.0, 2.0**40, -(2.0**63)], np.float64)),
    ("n", np.array([1.0, 4.0, 9.0], np.float32)),
    ("n", np.array([4294967295, 0, 1], np.uint32)),
    # Integers are taken as themselves, never as the double they round to (2^63 here).
    ("n", np.array([2**63 - 1, 2**53 + 1, 0], np.uint64)),
    ("d", np.array([1, 2, -(2**53)], np.int64)),
    ("d", np.array([2**63, 2**64 - 2**11, 1], np.uint64)),  # 53 significant bits or fewer
    ("f", np.array([-(2**63), 2**60, 3 << 40], np.int64)),  # 24 significant bits or fewer
    ("d", np.array([0.1, 2.0, np.nan], np.float32)),
], ids=lambda v: v if isinstance(v, str) else str(v.dtype))
def test_raw_numeric_columns_convert_exactly_over_grpc(typed, column: str,
                                                       values: np.ndarray) -> None:
    spec, model, client = typed
    columns = {**DEFAULTS, column: values}
    got = _infer(client, columns)
    in_process = model.predict(columns)["y"]
    np.testing.assert_array_equal(got, in_process)
    np.testing.assert_array_equal(got, apply_reference(spec, columns))


def _inexact(column: str, sent: str, target: str) -> str:
    return f"column {column!r}: {sent} does not convert exactly to {target}"


@pytest.mark.parametrize("column, values, said, reason", [
    ("n", np.array([1.0, 2.5]), _inexact("n", "float64 value 2.5", "int64"),
     "(row 1: not a whole number)"),
    ("n", np.array([1.0, np.nan]), _inexact("n", "float64 value nan", "int64"),
     "(row 1: NaN has no int64 value)"),
    ("n", np.array([2.0**63]), _inexact("n", "float64 value 9.223372036854776e+18", "int64"),
     "outside int64's range"),
    ("n", np.array([-np.inf], np.float32), _inexact("n", "float32 value -inf", "int64"),
     "infinity has no int64 value"),
    ("n", np.array([2**64 - 1], np.uint64),
     _inexact("n", "uint64 value 18446744073709551615", "int64"), "outside int64's range"),
    ("n", np.array([1, 2**63], np.uint64),
     _inexact("n", "uint64 value 9223372036854775808", "int64"), "(row 1: outside int64's range)"),
    ("n", np.array([1.5], np.float16), _inexact("n", "float16 value 1.5", "int64"),
     "(row 0: not a whole number)"),
    ("f", np.array([0.1, 2.0]), _inexact("f", "float64 value 0.1", "float32"),
     "float32 would round it"),
    ("f", np.array([2**24 + 1], np.int64), _inexact("f", "int64 value 16777217", "float32"),
     "float32 would round it"),
    ("f", np.array([1e39]), _inexact("f", "float64 value 1e+39", "float32"),
     "outside float32's range"),
    ("f", np.array([2, 2**24 + 1], np.int32), _inexact("f", "int32 value 16777217", "float32"),
     "(row 1: float32 would round it)"),
    ("f", np.array([2**24 + 1], np.uint32), _inexact("f", "uint32 value 16777217", "float32"),
     "float32 would round it"),
    # 2^60 + 1 rounds to the double 2^60, which float32 holds: the value still changes.
    ("f", np.array([2**60 + 1], np.int64),
     _inexact("f", "int64 value 1152921504606846977", "float32"), "float32 would round it"),
    ("d", np.array([1, 2**53 + 1], np.int64),
     _inexact("d", "int64 value 9007199254740993", "float64"), "(row 1: float64 would round it)"),
    ("d", np.array([2**53 + 1], np.uint64),
     _inexact("d", "uint64 value 9007199254740993", "float64"), "float64 would round it"),
    # 2^63 - 1 rounds to 2^63, which has no int64 to compare back with.
    ("d", np.array([2**63 - 1], np.int64),
     _inexact("d", "int64 value 9223372036854775807", "float64"), "float64 would round it"),
    ("f", np.array([True, False]), "column 'f' must be numeric; got bool", "got bool"),
    ("d", np.array([b"1.5", b"2"], dtype=object), "column 'd' must be numeric", "got string"),
], ids=["2.5-int", "nan-int", "2^63-int", "inf-int", "uint64max-int", "uint64-2^63-int",
        "float16-1.5-int", "0.1-float32", "2^24+1-float32", "1e39-float32",
        "int32-2^24+1-float32", "uint32-2^24+1-float32", "2^60+1-float32", "2^53+1-float64",
        "uint64-2^53+1-float64", "2^63-1-float64", "bool", "bytes"])
def test_inexact_raw_columns_are_refused_naming_the_column(typed, column: str, values: np.ndarray,
                                                           said: str, reason: str) -> None:
    _, model, client = typed
    rows = len(values)
    columns = {name: v[:rows] for name, v in DEFAULTS.items()}
    columns[column] = values
    with pytest.raises(InferenceServerException) as served:
        _infer(client, columns)
    assert served.value.status() == "StatusCode.INVALID_ARGUMENT"
    message = served.value.message() or ""
    assert said in message and reason in message, message
    # The in-process call refuses the same columns; a value that would change, word for word
    # as the core says it (the type sent, the value, the row and why).
    with pytest.raises(InvalidInputError, match=re.escape(said)) as in_process:
        model.predict(columns)
    if values.dtype != object:  # Python reads an object array of bytes as "object values"
        assert str(in_process.value) in message, (str(in_process.value), message)
    # The refusal costs nothing: the same server still answers a good request.
    assert _infer(client, DEFAULTS).shape == (3, 3)


def test_a_model_without_transforms_keeps_exact_dtypes(typed) -> None:
    _, _, client = typed
    x = grpcclient.InferInput("features", [1, 3], "INT64")
    x.set_data_from_numpy(np.ones((1, 3), np.int64))
    with pytest.raises(InferenceServerException) as e:
        client.infer("plain", [x])
    assert e.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "input 'features': expected datatype FP32, got INT64 (no implicit casts)" in (
        e.value.message() or "")
