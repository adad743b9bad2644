"""Models fitted on a DataFrame export with one input per column, whatever their first step
reads: bool columns are served as bool, and a model that reads one numeric matrix gets the
columns concatenated in the graph. Parity compares with scikit-learn on the real columns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from engine.training.export_options import ExportOptions
from engine.training.export_sklearn import export_sklearn
from engine.training.samples import Sample

import engine
from engine.config import ModelConfig
from engine.errors import ExportError

_ROWS = 120


def _frame(seed: int = 0, *, flag: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(size=_ROWS), "b": rng.normal(size=_ROWS)})
    if flag:
        frame["flag"] = rng.random(_ROWS) < 0.5
    frame["n"] = rng.integers(0, 5, _ROWS)
    return frame


def _served(path: Path, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The engine's outputs on ``frame``'s own column values, one [rows, 1] input per column."""
    feeds = {}
    for column in frame.columns:
        values = frame[column].to_numpy()
        if values.dtype.kind in "iuf":
            values = values.astype(np.float32)
        elif values.dtype.kind != "b":
            values = values.astype(str).astype(object)
        feeds[column] = values.reshape(-1, 1)
    with engine.load(path, config=ModelConfig(batching=False, max_batch_size=len(frame))) as m:
        return m.predict(feeds)


def _signature(result: Any) -> list[tuple[str, str, tuple[int, ...]]]:
    return [(t.name, t.dtype, tuple(t.shape)) for t in result.inputs]


def test_bool_column_into_a_one_hot_encoder(tmp_path) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame = _frame()
    frame["city"] = np.random.default_rng(1).choice(["a", "b"], _ROWS)
    target = (frame["flag"] ^ (frame["n"] > 2)).astype(int)
    encode = ColumnTransformer(
        [
            ("oh", OneHotEncoder(handle_unknown="ignore"), ["flag", "city"]),
            ("num", "passthrough", ["a", "b", "n"]),
        ]
    )
    model = make_pipeline(encode, LogisticRegression()).fit(frame, target)
    out = tmp_path / "m.onnx"
    # Before: scikit-learn was given "True"/"False" strings (unknown categories to it), and the
    # correct export failed parity on every value.
    result = export_sklearn(model, Sample("s.parquet", table=frame), out)
    assert result.parity.passed
    assert ("flag", "bool", (-1, 1)) in _signature(result)
    assert ("city", "string", (-1, 1)) in _signature(result)
    fresh = _frame(seed=7)
    fresh["city"] = np.random.default_rng(8).choice(["a", "b"], _ROWS)
    got = _served(out, fresh)
    np.testing.assert_allclose(got["probabilities"], model.predict_proba(fresh), atol=1e-5)


def test_bool_column_into_a_scaler(tmp_path) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame = _frame()
    target = frame["a"] + 2 * frame["flag"]
    encode = ColumnTransformer([("scale", StandardScaler(), ["flag", "a"])], remainder="drop")
    model = make_pipeline(encode, LinearRegression()).fit(frame, target)
    result = export_sklearn(model, Sample("s", table=frame), tmp_path / "m.onnx")
    assert result.parity.passed and ("flag", "bool", (-1, 1)) in _signature(result)


@pytest.mark.parametrize("flag", [False, True])
@pytest.mark.parametrize("estimator", ["LogisticRegression", "RandomForestRegressor"])
def test_bare_estimator_fitted_on_a_dataframe(estimator, flag, tmp_path) -> None:
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import LogisticRegression

    frame = _frame(flag=flag)
    if estimator == "LogisticRegression":
        model: Any = LogisticRegression().fit(frame, (frame["a"] > 0).astype(int))
    else:
        model = RandomForestRegressor(n_estimators=5, random_state=0)
        model.fit(frame, frame["a"] * 2 + frame["n"])
    out = tmp_path / "m.onnx"
    # Before: one input per column reached an estimator taking one matrix, and skl2onnx refused
    # ("at most 1 input(s) is(are) supported").
    result = export_sklearn(model, Sample("s.csv", table=frame), out)
    assert result.parity.passed
    expected = [("a", "float32", (-1, 1)), ("b", "float32", (-1, 1))]
    expected += [("flag", "bool", (-1, 1))] if flag else []
    assert _signature(result) == [*expected, ("n", "float32", (-1, 1))]
    fresh = _frame(seed=3, flag=flag)
    got = _served(out, fresh)
    if estimator == "LogisticRegression":
        np.testing.assert_allclose(got["probabilities"], model.predict_proba(fresh), atol=1e-5)
    else:
        np.testing.assert_allclose(got["variable"][:, 0], model.predict(fresh), rtol=1e-5)


def test_pipeline_without_column_transformer_fixed_batch(tmp_path) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame = _frame()
    model = make_pipeline(StandardScaler(), LogisticRegression())
    model.fit(frame, (frame["b"] > 0).astype(int))
    options = ExportOptions(dynamic_batch=False, output_names=("cls", "proba"))
    result = export_sklearn(model, Sample("s", table=frame), tmp_path / "m.onnx", options)
    assert result.parity.passed
    assert [t.shape for t in result.inputs] == [(_ROWS, 1)] * 4
    assert [t.name for t in result.outputs] == ["cls", "proba"]


def test_bare_estimator_fitted_on_one_column(tmp_path) -> None:
    from sklearn.linear_model import LinearRegression

    frame = _frame(flag=False)[["a"]]
    model = LinearRegression().fit(frame, frame["a"] * 3)
    result = export_sklearn(model, Sample("s", table=frame), tmp_path / "m.onnx")
    assert result.parity.passed and _signature(result) == [("a", "float32", (-1, 1))]


def test_a_column_named_like_the_concatenated_matrix(tmp_path) -> None:
    from sklearn.linear_model import LinearRegression

    frame = _frame(flag=False).rename(columns={"a": "features", "b": "_features"})
    model = LinearRegression().fit(frame, frame["features"] - frame["n"])
    result = export_sklearn(model, Sample("s", table=frame), tmp_path / "m.onnx")
    assert result.parity.passed
    assert [t.name for t in result.inputs] == ["features", "_features", "n"]


def test_a_column_named_like_an_output_asks_for_output_names(tmp_path) -> None:
    from sklearn.linear_model import LogisticRegression

    frame = _frame(flag=False).rename(columns={"a": "label"})
    model = LogisticRegression().fit(frame, (frame["b"] > 0).astype(int))
    out = tmp_path / "m.onnx"
    with pytest.raises(ExportError, match=r"columns \['label'\] have the names of model outputs"):
        export_sklearn(model, Sample("s", table=frame), out)
    assert not out.exists()
    options = ExportOptions(output_names=("cls", "proba"))
    assert export_sklearn(model, Sample("s", table=frame), out, options).parity.passed


def test_text_column_into_a_one_matrix_model_names_the_fix(tmp_path) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    frame = _frame(flag=False)
    frame["city"] = pd.Categorical(np.random.default_rng(2).choice(["x", "y"], _ROWS))
    model = HistGradientBoostingClassifier(max_iter=3).fit(frame, frame["city"] == "x")
    with pytest.raises(
        ExportError,
        match=r"takes one input matrix in ONNX, and the text columns \['city'\] cannot join",
    ) as info:
        export_sklearn(model, Sample("s", table=frame), tmp_path / "m.onnx")
    assert "a Pipeline starting with a ColumnTransformer" in str(info.value)
    assert "--opset" not in str(info.value)


def test_bool_column_with_missing_values_is_refused(tmp_path) -> None:
    from sklearn.linear_model import LogisticRegression

    frame = _frame()
    model = LogisticRegression().fit(frame, (frame["a"] > 0).astype(int))
    frame["flag"] = frame["flag"].astype("boolean")
    frame.loc[0, "flag"] = pd.NA
    with pytest.raises(ExportError, match="bool column 'flag' has missing values"):
        export_sklearn(model, Sample("s", table=frame), tmp_path / "m.onnx")
