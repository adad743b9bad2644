"""Feature transforms fused into the batch: engine.load(config=ModelConfig(transforms=spec))
takes raw columns; its output equals the numpy reference and the exported ONNX graph."""

from __future__ import annotations

import re
from pathlib import Path

import factories
import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest

import engine
from engine.errors import InvalidConfigError, InvalidInputError
from engine.transforms import apply, apply_reference, fit, merge_with_model

TEMPLATE = {
    "age": [{"op": "impute", "strategy": "median"}, {"op": "standardize"}],
    "income": [{"op": "clip", "min": 0.0}, {"op": "log1p"}],
    "city": [{"op": "vocabulary", "num_oov_buckets": 2, "encoding": "onehot"}],
}


def training_columns(rows: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "age": rng.normal(40, 12, rows),
        "income": rng.lognormal(10, 1, rows),
        "city": rng.choice(["paris", "rome", "oslo", ""], rows).astype(object),
    }


@pytest.fixture(scope="module")
def spec_and_model(tmp_path_factory: pytest.TempPathFactory):
    spec = fit(training_columns(500, 0), TEMPLATE)
    path = factories.features_identity(tmp_path_factory.mktemp("tx") / "identity.onnx", spec.width)
    return spec, path


def live_columns() -> dict[str, np.ndarray]:
    cols = training_columns(300, 1)
    cols["age"][::7] = np.nan
    cols["income"][::11] = -5.0  # clipped to 0
    cols["city"][::13] = "unseen-city"
    return cols


def test_fused_transform_matches_reference_and_onnx(spec_and_model, tmp_path: Path) -> None:
    spec, path = spec_and_model
    config = engine.ModelConfig(transforms=spec.to_dict(), max_batch_size=512)
    cols = live_columns()
    with engine.load(path, config=config) as model:
        assert [t.name for t in model.inputs] == ["age", "income", "city"]
        assert model.inputs[2] == engine.TensorSpec("city", "string", (-1,))
        fused = model.predict(cols)["y"]
        # Through the batcher: one row per request, gathered into batches before the transform.
        futures = [model.submit({k: v[i:i + 1] for k, v in cols.items()}) for i in range(300)]
        batched = np.concatenate([f.result()["y"] for f in futures])
        assert model.stats().batches < 300
    reference = apply_reference(spec, cols)
    np.testing.assert_array_equal(fused, reference)
    np.testing.assert_array_equal(batched, reference)
    merged = tmp_path / "merged.onnx"
    merge_with_model(spec, str(path), str(merged))
    session = ort.InferenceSession(str(merged), providers=["CPUExecutionProvider"])
    feeds = {i.name: cols[i.name].reshape(-1, 1) if cols[i.name].ndim == 1 and
             len(i.shape) == 2 else cols[i.name] for i in session.get_inputs()}
    (from_onnx,) = session.run(None, feeds)
    np.testing.assert_allclose(from_onnx, reference, rtol=1e-6, atol=1e-6)


def test_dataframe_input(spec_and_model) -> None:
    spec, path = spec_and_model
    cols = live_columns()
    frame = pd.DataFrame({"age": cols["age"], "income": cols["income"],
                          "city": pd.Series(cols["city"], dtype=object)})
    with engine.load(path, config=engine.ModelConfig(transforms=spec.to_dict(), max_batch_size=512)) as model:
        np.testing.assert_array_equal(model.predict(frame)["y"], apply_reference(spec, cols))


def test_raw_column_errors_name_the_column(spec_and_model) -> None:
    spec, path = spec_and_model
    cols = live_columns()
    with engine.load(path, config=engine.ModelConfig(transforms=spec.to_dict(), max_batch_size=512)) as model:
        with pytest.raises(InvalidInputError, match="missing input\\(s\\) 'city'"):
            model.predict({"age": cols["age"], "income": cols["income"]})
        with pytest.raises(InvalidInputError, match="column 'age' must be numeric; got <U1"):
            model.predict({**cols, "age": np.array(["1"] * 300)})
        with pytest.raises(InvalidInputError, match="column 'city' must hold only strings .*found int"):
            model.predict({**cols, "city": np.arange(300).astype(object)})


def test_transform_width_must_match_the_model(spec_and_model, tmp_path: Path) -> None:
    spec, _ = spec_and_model
    wrong = factories.features_identity(tmp_path / "wrong.onnx", spec.width + 1)
    with pytest.raises(InvalidConfigError, match=f"transforms produce float32 \\[rows, {spec.width}\\]"):
        engine.load(wrong, config=engine.ModelConfig(transforms=spec.to_dict(), max_batch_size=512))


MISSING_TEMPLATE = {
    "age": [{"op": "impute", "strategy": "median"}, {"op": "standardize"}],
    "city": [{"op": "impute", "strategy": "most_frequent"},
             {"op": "vocabulary", "num_oov_buckets": 1}],
}


@pytest.fixture(scope="module")
def missing_spec_and_model(tmp_path_factory: pytest.TempPathFactory):
    train = pd.DataFrame({"age": [30.0, 40.0, np.nan, 50.0],
                          "city": ["paris", "rome", "paris", "berlin"]})
    spec = fit(train, MISSING_TEMPLATE)
    path = factories.features_identity(tmp_path_factory.mktemp("tx") / "identity.onnx", spec.width)
    with engine.load(path, config=engine.ModelConfig(transforms=spec.to_dict())) as model:
        yield spec, model


def assert_like_offline(spec, model: engine.Model, columns: object) -> None:
    """The model's fused transform gives exactly what apply and apply_reference give."""
    reference = apply_reference(spec, columns)
    np.testing.assert_array_equal(apply(spec, columns), reference)
    np.testing.assert_array_equal(model.predict(columns)["y"], reference)
    np.testing.assert_array_equal(model.submit(columns).result(10)["y"], reference)


@pytest.mark.parametrize(
    "city",
    [
        pd.Series(["rome", None], dtype=object),
        pd.Series(["rome", np.nan], dtype=object),
        pd.Series(["rome", None]),  # pandas' default string dtype
        pd.Series(["rome", pd.NA], dtype="string"),
        pd.Series(["rome", None], dtype="category"),
    ],
    ids=["None", "NaN", "default", "pd.NA", "category"],
)
def test_missing_strings_in_a_dataframe_are_imputed(missing_spec_and_model, city) -> None:
    spec, model = missing_spec_and_model
    frame = pd.DataFrame({"age": [1.0, 2.0], "city": city})
    assert_like_offline(spec, model, frame)
    imputed = model.predict(pd.DataFrame({"age": [1.0, 2.0], "city": ["rome", "paris"]}))["y"]
    np.testing.assert_array_equal(model.predict(frame)["y"][1], imputed[1])  # "" -> "paris"


def test_missing_strings_in_a_mapping_are_imputed(missing_spec_and_model) -> None:
    spec, model = missing_spec_and_model
    city = np.array(["rome", None, float("nan"), pd.NA, "", "paris"], dtype=object)
    assert_like_offline(spec, model, {"age": np.arange(6.0), "city": city})


@pytest.mark.parametrize(
    "age",
    [np.array([1, 2, 3]), np.array([1, 2, 3], np.int32), np.array([1, 2, 3], np.float32),
     np.array([1, 2, 3], np.uint8), np.array([[1.0], [2.0], [3.0]]), [1, 2, 3],
     np.array([1.0, None, 3], dtype=object), pd.array([1, None, 3], dtype="Int64")],
    ids=["int64", "int32", "float32", "uint8", "rows-by-1", "list", "object", "Int64"],
)
def test_numeric_raw_columns_take_any_numeric_dtype(missing_spec_and_model, age) -> None:
    spec, model = missing_spec_and_model
    assert_like_offline(spec, model, {"age": age, "city": np.array(["rome", "x", "paris"], object)})


def test_numeric_raw_columns_refuse_a_lossy_conversion(tmp_path: Path) -> None:
    spec = fit({"n": np.arange(4, dtype=np.int64), "f": np.arange(4, dtype=np.float32)},
               {"n": [{"op": "standardize"}], "f": [{"op": "standardize"}]})
    assert [c.dtype for c in spec.inputs] == ["int64", "float32"]
    path = factories.features_identity(tmp_path / "identity.onnx", spec.width)
    with engine.load(path, config=engine.ModelConfig(transforms=spec.to_dict())) as model:
        exact = {"n": np.array([1.0, 2.0]), "f": np.array([0.5, 2.0])}  # exact in int64/float32
        assert_like_offline(spec, model, exact)
        with pytest.raises(InvalidInputError,
                           match="column 'n': float64 value 1.5 does not convert exactly to int64"):
            model.predict({**exact, "n": np.array([1.0, 1.5])})
        with pytest.raises(InvalidInputError, match="column 'n': float64 value nan"):
            model.submit({**exact, "n": np.array([1.0, np.nan])}).result(timeout=10)
        with pytest.raises(InvalidInputError,
                           match="column 'f': float64 value 0.1 does not convert exactly to float32"):
            model.predict({**exact, "f": np.array([0.1, 2.0])})
        with pytest.raises(InvalidInputError, match="column 'f' must be numeric; got bool"):
            model.predict({**exact, "f": np.array([True, False])})


def test_dataframe_integer_columns_are_checked_as_sent(tmp_path: Path) -> None:
    """A nullable Int64 column with a missing value reaches the exact check as integers: its
    float64 copy (what DataFrame.to_numpy gives) would hide that 2**53 + 1 rounds."""
    spec = fit({"a": np.arange(4, dtype=np.float64), "n": np.arange(4, dtype=np.int64)},
               {"a": [{"op": "impute", "strategy": "mean"}], "n": [{"op": "standardize"}]})
    assert [c.dtype for c in spec.inputs] == ["float64", "int64"]
    path = factories.features_identity(tmp_path / "identity.onnx", spec.width)
    with engine.load(path, config=engine.ModelConfig(transforms=spec.to_dict())) as model:
        big = pd.array([2**53 + 1, None], dtype="Int64")
        frame = pd.DataFrame({"a": big, "n": pd.array([1, 2], dtype="Int64")})
        message = ("column 'a': Int64 value 9007199254740993 does not convert exactly to "
                   "float64, the transform spec's dtype for this column (row 0: float64 would "
                   "round it)")
        with pytest.raises(InvalidInputError, match=re.escape(message)):
            model.predict(frame)
        # The same column as a mapping of Series is refused the same way.
        with pytest.raises(InvalidInputError, match="Int64 value 9007199254740993"):
            model.predict({"a": frame["a"], "n": frame["n"]})
        # Exact values with a missing one are taken; the missing one is imputed.
        ok = pd.DataFrame({"a": pd.array([2**53, None], dtype="Int64"),
                           "n": pd.array([1, 2], dtype="Int64")})
        assert_like_offline(spec, model, {"a": ok["a"], "n": ok["n"]})
        assert np.array_equal(model.predict(ok)["y"], model.predict({"a": ok["a"], "n": ok["n"]})["y"])


def test_bytes_columns_read_as_utf8_like_offline(missing_spec_and_model) -> None:
    spec, model = missing_spec_and_model
    age = np.arange(3.0)
    assert_like_offline(spec, model, {"age": age, "city": np.array([b"rome", b"x", b"paris"])})
    assert_like_offline(spec, model, {"age": age, "city": np.array([b"rome", None, "é"], object)})
    for city in (np.array([b"rome", b"\xff", b"x"]), np.array([b"rome", b"\xc3", None], object)):
        for run in (apply_reference, apply, lambda s, c: model.predict(c),
                    lambda s, c: model.submit(c).result(timeout=10)):
            with pytest.raises(InvalidInputError,
                               match="column 'city' holds bytes that are not valid UTF-8"):
                run(spec, {"age": age, "city": city})
