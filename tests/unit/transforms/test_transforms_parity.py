"""Three-way parity: C++ core == numpy reference == exported ONNX graph in ONNX Runtime."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import transforms_gen as gen

from engine.transforms.fit import fit
from engine.transforms.native import apply as apply_native
from engine.transforms.onnx_export import to_onnx
from engine.transforms.reference import apply_reference
from engine.transforms.spec import TransformSpec


def run_onnx(spec: TransformSpec, columns: dict[str, Any]) -> np.ndarray:
    sess = ort.InferenceSession(to_onnx(spec).SerializeToString(),
                                providers=["CPUExecutionProvider"])
    feeds = {}
    for col in spec.inputs:
        values = columns[col.name]
        if col.is_string:  # ONNX strings cannot be null: missing is "" (as in the spec)
            values = np.array(["" if v is None else v for v in values], dtype=object)
        feeds[col.name] = values
    return sess.run(None, feeds)[0]


def assert_three_way(spec: TransformSpec, columns: dict[str, Any]) -> np.ndarray:
    expected = apply_reference(spec, columns)
    # The core computes the same double operations in the same order as numpy: bit-identical.
    native = apply_native(spec, columns)
    assert native.dtype == np.float32 and native.shape == expected.shape
    np.testing.assert_array_equal(native, expected)
    assert_parity(spec, expected, run_onnx(spec, columns))
    return expected


def assert_parity(spec: TransformSpec, expected: np.ndarray, actual: np.ndarray) -> None:
    assert actual.dtype == np.float32 and actual.shape == expected.shape
    numeric = gen.numeric_columns(spec)
    # Indices, one-hot and hashes agree exactly; scaled numbers within float32 rounding.
    np.testing.assert_array_equal(actual[:, ~numeric], expected[:, ~numeric])
    np.testing.assert_allclose(actual[:, numeric], expected[:, numeric], rtol=1e-6, atol=0,
                               equal_nan=True)


@pytest.mark.parametrize("seed", range(12))
def test_reference_equals_onnx_on_random_specs_and_data(seed: int) -> None:
    rng = np.random.default_rng(seed)
    train = gen.frame(rng, 400, gen.INPUTS, unseen=False)
    spec = fit(train, gen.template(rng))
    serve = gen.frame(rng, int(rng.integers(1, 600)), gen.INPUTS, unseen=True)
    expected = assert_three_way(spec, serve)
    assert expected.shape == (len(serve["a"]), spec.width)


def test_extreme_values_every_numeric_step() -> None:
    x = np.concatenate([gen.EXTREMES, -gen.EXTREMES, np.linspace(-2, 2, 41),
                        [1e-17, -1e-17, 1e-9, 2.0**53, 1.7e308]])
    template = {
        f"f{i}": {"column": "x", "steps": steps}
        for i, steps in enumerate([
            [{"op": "log1p"}],
            [{"op": "standardize", "mean": 1.5, "std": 1e-3}],
            [{"op": "min_max_scale", "min": -3.0, "max": 1e10}],
            [{"op": "robust_scale", "median": -2.0, "iqr": 7.0}],
            [{"op": "clip", "min": -0.5, "max": 0.5}],
            [{"op": "clip", "max": 0.25}],
            [{"op": "impute", "strategy": "constant", "value": -7.0, "replace_inf": True}],
            [{"op": "impute", "strategy": "constant", "value": 3.0}, {"op": "log1p"}],
            [{"op": "bucketize", "boundaries": [-1e300, -1.0, 0.0, 1e-300, 1.0], "encoding": "onehot"}],
        ])
    }
    spec = fit({"x": x}, template)
    assert_three_way(spec, {"x": x})


def test_log1p_matches_numpy_for_tiny_values() -> None:
    x = np.array([1e-20, -1e-20, 1e-10, 3e-8, -3e-8, 1e-5, 0.5, -0.999999, 1e20])
    spec = fit({"x": x}, {"x": [{"op": "log1p"}]})
    np.testing.assert_array_equal(run_onnx(spec, {"x": x})[:, 0],
                                  np.log1p(x).astype(np.float32))


def test_every_row_unseen_and_empty_strings() -> None:
    train = {"s": np.array(["a", "b", "b", ""], dtype=object)}
    spec = fit(train, {
        "v0": {"column": "s", "steps": [{"op": "vocabulary", "num_oov_buckets": 0}]},
        "v3": {"column": "s", "steps": [{"op": "vocabulary", "num_oov_buckets": 3}]},
        "imp": {"column": "s", "steps": [{"op": "impute", "strategy": "constant", "value": "a"},
                                         {"op": "vocabulary", "encoding": "index"}]},
    })
    assert spec.features[0].steps[0].vocabulary == ("b", "a")  # "" is never a token
    serve = {"s": np.array(["", "zz", None, "b", "A"], dtype=object)}
    expected = assert_three_way(spec, serve)
    np.testing.assert_array_equal(expected[:, :2], [[0, 0], [0, 0], [0, 0], [1, 0], [0, 0]])
    # fitted after imputation: a, b, b, a -> tie broken by string order; "" and None become "a"
    np.testing.assert_array_equal(expected[:, -1], [0, 2, 0, 1, 2])


def test_zero_rows() -> None:
    rng = np.random.default_rng(5)
    spec = fit(gen.frame(rng, 50, gen.INPUTS, unseen=False), gen.template(rng))
    empty = gen.frame(rng, 0, gen.INPUTS, unseen=True)
    assert apply_reference(spec, empty).shape == (0, spec.width)
    assert apply_native(spec, empty).shape == (0, spec.width)
    assert run_onnx(spec, empty).shape == (0, spec.width)


@pytest.mark.parametrize("seed", range(3))
def test_large_batches_split_over_threads_agree(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    spec = fit(gen.frame(rng, 500, gen.INPUTS, unseen=False), gen.template(rng))
    serve = gen.frame(rng, 70_001, gen.INPUTS, unseen=True)
    expected = apply_reference(spec, serve)
    for threads in (1, 2, 3):
        np.testing.assert_array_equal(apply_native(spec, serve, max_threads=threads), expected)


def test_arrow_slices_and_pandas_inputs_reach_the_core() -> None:
    import pandas as pd
    import pyarrow as pa

    rng = np.random.default_rng(3)
    spec = fit(gen.frame(rng, 200, gen.INPUTS, unseen=False), gen.template(rng))
    serve = gen.frame(rng, 300, gen.INPUTS, unseen=True)
    expected = apply_reference(spec, serve)
    sliced = {k: pa.array(np.concatenate([v[:1], v]), type=pa.string(), from_pandas=True)[1:]
              if v.dtype == object else v for k, v in serve.items()}
    np.testing.assert_array_equal(apply_native(spec, sliced), expected)
    np.testing.assert_array_equal(apply_native(spec, pd.DataFrame(serve)), expected)
