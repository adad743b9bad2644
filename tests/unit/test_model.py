"""engine.load / Model.predict: parity with onnxruntime's own API, validation, threads, memory."""

from __future__ import annotations

import asyncio
import gc
import threading
from pathlib import Path

import factories
import numpy as np
import onnxruntime as ort
import psutil
import pytest
from onnx import TensorProto

import engine
from engine.errors import (
    InvalidConfigError,
    InvalidInputError,
    ModelLoadError,
    UnavailableError,
    UnsupportedError,
)


def ort_session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def assert_parity(model: engine.Model, path: Path, feeds: dict[str, np.ndarray]) -> None:
    expected = ort_session(path).run(None, feeds)
    got = model.predict(feeds)
    assert list(got) == [o.name for o in model.outputs]
    for want, (name, have) in zip(expected, got.items()):
        assert have.dtype == want.dtype, name
        assert have.shape == want.shape, name
        if have.dtype.kind == "f":
            np.testing.assert_allclose(have, want, rtol=1e-6, atol=0, err_msg=name)
        else:
            np.testing.assert_array_equal(have, want, err_msg=name)


@pytest.mark.parametrize("rows", [1, 7, 1024])
def test_mlp_parity_at_batch_sizes(mlp_path: Path, rows: int) -> None:
    x = np.random.default_rng(rows).standard_normal((rows, 32)).astype(np.float32)
    with engine.load(mlp_path, config=engine.ModelConfig(max_batch_size=1024)) as model:
        assert_parity(model, mlp_path, {"x": x})
        np.testing.assert_allclose(model.predict(x)["y"], factories.reference_mlp(x, mlp_path),
                                   rtol=1e-4, atol=1e-5)


def test_signature_reports_dynamic_dims_as_minus_one(mlp_path: Path) -> None:
    with engine.load(mlp_path) as model:
        assert model.inputs == (engine.TensorSpec("x", "float32", (-1, 32)),)
        assert model.outputs == (engine.TensorSpec("y", "float32", (-1, 1)),)
        assert model.batching


def test_multiple_inputs_and_outputs(multi_io_path: Path) -> None:
    rng = np.random.default_rng(1)
    feeds = {"a": rng.standard_normal((5, 4)).astype(np.float32),
             "b": rng.standard_normal((5, 4)).astype(np.float32),
             "k": rng.integers(-9, 9, (5, 1)).astype(np.int64)}
    with engine.load(multi_io_path) as model:
        assert_parity(model, multi_io_path, feeds)
        subset = model.predict(feeds, outputs=["k2"])
        assert list(subset) == ["k2"]
        np.testing.assert_array_equal(subset["k2"], feeds["k"] * 2)


@pytest.mark.parametrize(
    ("elem_type", "dtype", "op"),
    [
        (TensorProto.DOUBLE, np.float64, "Neg"),
        (TensorProto.FLOAT16, np.float16, "Neg"),
        (TensorProto.INT64, np.int64, "Neg"),
        (TensorProto.INT32, np.int32, "Abs"),
        (TensorProto.INT8, np.int8, "Identity"),
        (TensorProto.INT16, np.int16, "Identity"),
        (TensorProto.UINT8, np.uint8, "Identity"),
        (TensorProto.UINT16, np.uint16, "Identity"),
        (TensorProto.UINT32, np.uint32, "Identity"),
        (TensorProto.UINT64, np.uint64, "Identity"),
        (TensorProto.BOOL, np.bool_, "Not"),
    ],
)
def test_element_types(tmp_path: Path, elem_type: int, dtype: type, op: str) -> None:
    path = factories.elementwise(tmp_path / "m.onnx", elem_type, op)
    rng = np.random.default_rng(3)
    x = (rng.integers(0, 2, (6, 3)) if dtype is np.bool_ else rng.integers(0, 100, (6, 3)))
    x = x.astype(dtype)
    with engine.load(path) as model:
        assert model.inputs[0].dtype == np.dtype(dtype).name
        assert_parity(model, path, {"x": x})


def test_string_inputs_and_outputs(string_path: Path) -> None:
    words = np.array([["cat"], ["dog"], ["ému"], [""], ["unseen"]], dtype=object)
    with engine.load(string_path) as model:
        assert model.inputs[0].dtype == "string"
        out = model.predict(words)
        np.testing.assert_array_equal(out["id"], [[1], [2], [3], [4], [-1]])
        assert out["echo"].dtype == object
        assert out["echo"].tolist() == words.tolist()
        # Fixed-width unicode arrays and bytes convert too.
        as_unicode = model.predict(words.astype(str))
        np.testing.assert_array_equal(as_unicode["id"], out["id"])
        as_bytes = model.predict(np.array([[b"cat"], [b"dog"]], dtype=object))
        np.testing.assert_array_equal(as_bytes["id"], [[1], [2]])
        # Embedded NUL bytes survive the trip through ORT (strings carry their length).
        nul = model.predict(np.array([["a\x00b"], ["cat"]], dtype=object))
        assert nul["echo"].tolist() == [["a\x00b"], ["cat"]]
        np.testing.assert_array_equal(nul["id"], [[-1], [1]])


def test_string_elements_must_be_text(string_path: Path) -> None:
    with (engine.load(string_path) as model,
          pytest.raises(InvalidInputError, match="'word'.*an element is int, not str or bytes")):
        model.predict(np.array([[1], [2]], dtype=object))


def test_sklearn_tree_ensemble_parity(tmp_path: Path) -> None:
    from skl2onnx import to_onnx
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    x, y = make_classification(n_samples=300, n_features=8, random_state=0)
    x = x.astype(np.float32)
    forest = RandomForestClassifier(n_estimators=10, max_depth=5, random_state=0).fit(x, y)
    onx = to_onnx(forest, x[:1], options={id(forest): {"zipmap": False}})
    path = tmp_path / "forest.onnx"
    path.write_bytes(onx.SerializeToString())
    with engine.load(path) as model:
        assert_parity(model, path, {model.inputs[0].name: x[:50]})
        labels = model.predict(x[:50])[model.outputs[0].name]
        np.testing.assert_array_equal(labels, forest.predict(x[:50]))


def test_every_input_form_of_a_single_input_model(mlp_path: Path) -> None:
    # predict's fast path hands dicts and arrays to the core as they are; any other Mapping
    # must give the same answer (it once risked being read as one array).
    import types

    x = np.random.default_rng(3).standard_normal((2, 32)).astype(np.float32)
    with engine.load(mlp_path) as model:
        want = model.predict({"x": x})["y"]
        for form in (x, types.MappingProxyType({"x": x})):
            np.testing.assert_array_equal(model.predict(form)["y"], want)
        np.testing.assert_array_equal(model.predict(x, priority=1)["y"], want)


def test_load_from_bytes(mlp_path: Path) -> None:
    with engine.load(mlp_path.read_bytes()) as model:
        assert model.predict(np.zeros((2, 32), np.float32))["y"].shape == (2, 1)


@pytest.mark.parametrize(
    ("feeds", "match"),
    [
        ({"x": np.zeros((2, 32), np.float64)}, r"input 'x': expected dtype float32, got float64"),
        ({"x": np.zeros((2, 31), np.float32)}, r"input 'x': expected shape \[-1, 32\], got \[2, 31\]"),
        ({"x": np.zeros((32,), np.float32)}, r"input 'x': expected rank 2 .* got rank 1"),
        ({"x": np.zeros((1, 2, 32), np.float32)}, r"expected rank 2"),
        ({"x": np.zeros((2, 32), np.float32), "z": np.zeros(1)}, r"unknown input 'z'.*'x'"),
        ({}, r"missing input\(s\) 'x'"),
        ({"x": np.zeros((2, 32), np.complex64)}, r"input 'x': numpy dtype complex64 is not supported"),
        ({"x": "not an array"}, r"input 'x': expected dtype float32, got string"),
        ({"x": [[1.0] * 32]}, r"expected dtype float32, got float64"),
        ({1: np.zeros((2, 32), np.float32)}, r"input names must be str"),
    ],
)
def test_validation_errors_name_the_input(mlp_path: Path, feeds: dict, match: str) -> None:
    with engine.load(mlp_path) as model, pytest.raises(InvalidInputError, match=match):
        model.predict(feeds)


UNCONVERTIBLE = [
    (None, r"input 'x' is None; expected an array"),
    ({"x": None}, r"input 'x' is None; expected an array"),
    (np.array([[object()] * 32], dtype=object),
     (r"input 'x': an object array is read as strings, and an element is object, not str or "
      r"bytes; a numeric input takes a numeric array")),
    (np.array([[1.5] * 32], dtype=object), r"input 'x': .* an element is float, not str"),
    (np.ones((1, 32), np.complex64), r"input 'x': numpy dtype complex64 is not supported"),
    (np.ones((1, 32), "datetime64[s]"), r"input 'x': numpy dtype datetime64\[s\] is not supported"),
    ({0: np.ones((1, 32), np.float32)}, r"input names must be str; was int 0"),
]


def test_an_input_numpy_cannot_convert_is_named_without_a_traceback(mlp_path: Path) -> None:
    ragged = {"x": [[1.0] * 32, [1.0] * 31]}
    with engine.load(mlp_path) as model, pytest.raises(InvalidInputError) as info:
        model.predict(ragged)  # type: ignore[arg-type]
    message = str(info.value)
    assert message.startswith("input 'x': cannot be converted to an array: ValueError: ")
    assert "At:" not in message and "\n" not in message, message


def run_request(model: engine.Model, call: str, inputs: object) -> None:
    """Send ``inputs`` the way ``call`` names; the error surfaces from the result."""
    if call == "submit":
        future = model.submit(inputs)  # type: ignore[arg-type]  # must not raise: it queues
        future.result(timeout=10)
    elif call == "predict_async":
        asyncio.run(model.predict_async(inputs))  # type: ignore[arg-type]
    elif call == "predict_with_options":
        model.predict(inputs, priority=1)  # type: ignore[arg-type]  # the core's infer()
    else:
        model.predict(inputs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("inputs", "match"), UNCONVERTIBLE)
@pytest.mark.parametrize("call", ["predict", "predict_with_options", "submit", "predict_async"])
def test_inputs_that_do_not_convert_are_invalid_requests(mlp_path: Path, inputs: object,
                                                         match: str, call: str) -> None:
    # The same error the same way as any invalid input (submit: through the future), and
    # counted, so that the outcomes add up to the requests made.
    with engine.load(mlp_path) as model:
        with pytest.raises(InvalidInputError, match=match):
            run_request(model, call, inputs)
        stats = model.stats()
    assert stats.requests["invalid"] == 1
    assert sum(stats.requests.values()) == 1


@pytest.mark.parametrize("call", ["predict", "submit", "predict_async"])
def test_a_lone_array_for_a_multi_input_model_is_an_invalid_request(multi_io_path: Path,
                                                                     call: str) -> None:
    with engine.load(multi_io_path) as model:
        with pytest.raises(InvalidInputError, match="has 3 inputs .*pass a mapping"):
            run_request(model, call, np.zeros((1, 4), np.float32))
        assert model.stats().requests["invalid"] == 1


def test_submit_raises_at_once_only_for_bad_arguments(mlp_path: Path) -> None:
    model = engine.load(mlp_path)
    with pytest.raises(TypeError, match="priority must be an int"):
        model.submit(np.zeros((1, 32), np.float32), priority=1.5)  # type: ignore[arg-type]
    model.close()
    with pytest.raises(UnavailableError, match="closed"):
        model.submit(None)  # type: ignore[arg-type]


def test_fixed_dims_are_enforced_and_batching_is_off(fixed_path: Path) -> None:
    with engine.load(fixed_path) as model:
        assert not model.batching
        np.testing.assert_array_equal(model.predict(np.zeros((2, 3), np.float32))["y"],
                                      np.ones((2, 3), np.float32))
        with pytest.raises(InvalidInputError, match=r"expected shape \[2, 3\], got \[3, 3\]"):
            model.predict(np.zeros((3, 3), np.float32))


def test_single_array_needs_a_single_input_model(multi_io_path: Path) -> None:
    with (engine.load(multi_io_path) as model,
          pytest.raises(InvalidInputError, match="has 3 inputs .*pass a mapping")):
        model.predict(np.zeros((1, 4), np.float32))


def test_non_contiguous_and_byteswapped_inputs_are_accepted(mlp_path: Path) -> None:
    base = np.random.default_rng(5).standard_normal((8, 64)).astype(np.float32)
    strided = base[:, ::2]
    assert not strided.flags["C_CONTIGUOUS"]
    with engine.load(mlp_path) as model:
        want = model.predict(np.ascontiguousarray(strided))["y"]
        np.testing.assert_array_equal(model.predict(strided)["y"], want)
        swapped = np.ascontiguousarray(strided).astype(">f4")
        np.testing.assert_array_equal(model.predict(swapped)["y"], want)


def test_load_errors(tmp_path: Path, mlp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        engine.load(tmp_path / "missing.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00not a model" * 10)
    with pytest.raises(ModelLoadError, match="cannot load model"):
        engine.load(garbage)
    with pytest.raises(ModelLoadError, match="cannot load model from bytes"):
        engine.load(b"garbage")
    with pytest.raises(InvalidConfigError, match="intra_op_threads must be an int >= 0; was -1"):
        engine.load(mlp_path, intra_op_threads=-1)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"config": {"max_batch_size": 4}},
         r"config must be an engine.ModelConfig or None; was dict .*ModelConfig.from_dict"),
        ({"config": "cfg"}, r"config must be an engine.ModelConfig or None; was str"),
        ({"providers": "cpu"}, r"providers must be a sequence \(list or tuple\); was 'cpu'"),
        ({"providers": 5}, r"providers must be a sequence \(list or tuple\); was 5"),
        ({"intra_op_threads": "4"}, r"intra_op_threads must be an int in \[0, 256\]; was '4'"),
    ],
)
def test_load_arguments_of_the_wrong_type_are_config_errors(mlp_path: Path, options: dict,
                                                            match: str) -> None:
    # The registry refuses a config that is not a ModelConfig the same way (registry.resolve).
    with pytest.raises(InvalidConfigError, match=match):
        engine.load(mlp_path, **options)


def test_load_checks_the_config_before_looking_up_a_reference(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfigError, match="config must be an engine.ModelConfig"):
        engine.load("no-such-model", config={"max_batch_size": 4},  # type: ignore[arg-type]
                    registry_home=tmp_path)


def test_load_takes_bytes_like_contents_and_names_a_directory(tmp_path: Path,
                                                              mlp_path: Path) -> None:
    data = mlp_path.read_bytes()
    for contents in (bytearray(data), memoryview(data)):
        with engine.load(contents) as model:
            assert model.predict(np.zeros((1, 32), np.float32))["y"].shape == (1, 1)
    with pytest.raises(ModelLoadError, match="model path '.*' is a directory, not an ONNX file"):
        engine.load(tmp_path)
    with pytest.raises(ModelLoadError, match="is a directory"):
        engine.load(str(tmp_path))
    with pytest.raises(TypeError, match="source must be a model path, .*; was NoneType"):
        engine.load(None)  # type: ignore[arg-type]


MULTI_IO_FEEDS = {"a": np.ones((2, 4), np.float32), "b": np.ones((2, 4), np.float32),
                  "k": np.ones((2, 1), np.int64)}


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"outputs": [1]}, TypeError, r"outputs must be output names \(str\); outputs\[0\] was int 1"),
        ({"outputs": 5}, TypeError, "outputs must be an output name or a sequence of them; was int"),
        ({"outputs": b"sum"}, TypeError, "outputs must be output names"),
        ({"priority": 1.5}, TypeError, "priority must be an int; was float 1.5"),
        ({"priority": True}, TypeError, "priority must be an int; was bool True"),
        ({"priority": 2**31}, InvalidConfigError, r"priority must be in \[-2147483648, 2147483647\]"),
        ({"timeout_us": True}, TypeError, "timeout_us must be an int; was bool True"),
        ({"timeout_us": 1.0}, TypeError, "timeout_us must be an int; was float"),
        ({"timeout_us": -1}, InvalidConfigError, "timeout_us must be in .*; was -1"),
        ({"timeout_us": 2**63}, InvalidConfigError, "timeout_us must be in .*; was 9223372036854775808"),
    ],
)
@pytest.mark.parametrize("call", ["predict", "submit", "predict_async"])
def test_request_arguments_are_checked(multi_io_path: Path, options: dict, error: type,
                                       match: str, call: str) -> None:
    with engine.load(multi_io_path) as model:
        with pytest.raises(error, match=match):
            if call == "predict_async":
                asyncio.run(model.predict_async(MULTI_IO_FEEDS, **options))
            else:
                getattr(model, call)(MULTI_IO_FEEDS, **options)
        assert model.stats().requests["invalid"] == 0  # refused before reaching the core


def test_one_output_name_and_numpy_integer_arguments(multi_io_path: Path) -> None:
    with engine.load(multi_io_path) as model:
        assert list(model.predict(MULTI_IO_FEEDS, outputs="sum")) == ["sum"]
        assert list(model.submit(MULTI_IO_FEEDS, outputs="k2").result(10)) == ["k2"]
        out = model.predict(MULTI_IO_FEEDS, priority=np.int32(3), timeout_us=np.int64(10**6))
        assert list(out) == ["sum", "prod", "k2"]


def test_the_largest_timeout_never_expires(multi_io_path: Path) -> None:
    config = engine.ModelConfig(max_queue_delay_us=1000)  # queued, so the deadline is checked
    with engine.load(multi_io_path, config=config) as model:
        assert list(model.predict(MULTI_IO_FEEDS, timeout_us=2**63 - 1)) == ["sum", "prod", "k2"]
        future = model.submit(MULTI_IO_FEEDS, timeout_us=2**63 - 1)
        assert list(future.result(10)) == ["sum", "prod", "k2"]
        assert model.stats().requests["expired"] == 0


def test_cuda_without_a_gpu_build_fails_cleanly(mlp_path: Path) -> None:
    # This machine has no GPU and the CPU wheel: asking for CUDA must say so, not fall back.
    with pytest.raises(UnsupportedError, match="CUDA execution provider"):
        engine.load(mlp_path, providers=["cuda", "cpu"])


def test_closed_model_refuses(mlp_path: Path) -> None:
    model = engine.load(mlp_path)
    model.close()
    model.close()  # idempotent
    with pytest.raises(UnavailableError, match="closed"):
        model.predict(np.zeros((1, 32), np.float32))


def test_sixteen_threads_get_their_own_results(mlp_path: Path) -> None:
    rng = np.random.default_rng(7)
    inputs = [rng.standard_normal((int(rng.integers(1, 9)), 32)).astype(np.float32)
              for _ in range(16 * 40)]
    expected = [factories.reference_mlp(x, mlp_path) for x in inputs]
    failures: list[str] = []
    with engine.load(mlp_path) as model:
        def worker(offset: int) -> None:
            for i in range(offset, len(inputs), 16):
                got = model.predict(inputs[i])["y"]
                if not np.allclose(got, expected[i], rtol=1e-4, atol=1e-5):
                    failures.append(f"request {i}")

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert failures == []


def test_many_predicts_do_not_leak(mlp_path: Path) -> None:
    process = psutil.Process()
    x = np.zeros((1, 32), np.float32)
    with engine.load(mlp_path) as model:
        for _ in range(2000):  # warm up allocator pools before the baseline
            model.predict(x)
        gc.collect()
        before = process.memory_info().rss
        for _ in range(100_000):
            model.predict(x)
        gc.collect()
        grown_mb = (process.memory_info().rss - before) / 2**20
    assert grown_mb < 20, f"RSS grew {grown_mb:.1f} MB over 100,000 predicts"
