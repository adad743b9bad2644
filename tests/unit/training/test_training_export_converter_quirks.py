"""skl2onnx's quirks that the export must absorb or name: converters without the ZipMap
option, inputs it renames when they clash with its outputs, output shapes it declares wrong,
and estimators that refuse the sample."""

from __future__ import annotations

import numpy as np
import onnx
import pandas as pd
import pytest
from engine.training.export_options import ExportOptions
from engine.training.export_sklearn import export_sklearn
from engine.training.samples import Sample, read_sample

import engine
from engine.errors import ExportError


def _frame(rows: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(rng.normal(size=(rows, 3)), columns=["a", "b", "c"])


def _declared(path, name: str) -> list[int]:
    output = next(o for o in onnx.load(str(path)).graph.output if o.name == name)
    return [d.dim_value if d.HasField("dim_value") else -1 for d in output.type.tensor_type.shape.dim]


@pytest.mark.parametrize("pipeline", [False, True])
def test_a_classifier_whose_converter_has_no_zipmap_exports(tmp_path, pipeline) -> None:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    x = _frame()
    estimator = LinearSVC()
    model = (make_pipeline(StandardScaler(), estimator) if pipeline else estimator).fit(
        x, (x.a > 0).astype(int)
    )
    result = export_sklearn(model, Sample("s.csv", table=x.head(20)), tmp_path / "m.onnx")
    assert result.parity.passed
    with engine.load(tmp_path / "m.onnx") as served:
        got = served.predict({c: x[[c]].to_numpy(np.float32) for c in x.columns})
    np.testing.assert_array_equal(got["label"], model.predict(x))


# skl2onnx's SVC converter reads an attribute scikit-learn 1.9 deprecates.
@pytest.mark.filterwarnings("ignore:Attribute `prob[AB]_` was deprecated:FutureWarning")
@pytest.mark.parametrize("classes", [2, 3, 4])
@pytest.mark.parametrize(
    "kind",
    [
        "LinearSVC",
        "RidgeClassifier",
        "RidgeClassifierCV",
        "SGDClassifier",
        "Perceptron",
        "SVC",
        "NuSVC",
    ],
)
def test_decision_scores_of_a_classifier_without_probabilities_are_compared(
    tmp_path, kind, classes
) -> None:
    # Such a classifier exports its decision_function() where others export probabilities:
    # for two classes as [N, 1] (LinearSVC, RidgeClassifier), as (-score, score) (SGD,
    # Perceptron) or as (score, -score) (SVC); as decision_function() gives them for more.
    # The parity check compares them instead of leaving them unchecked.
    from sklearn import linear_model, svm

    estimator = (getattr(svm, kind, None) or getattr(linear_model, kind))()
    x = _frame(80)
    y = np.digitize(x.a, np.quantile(x.a, np.linspace(0, 1, classes + 1)[1:-1]))
    model = estimator.fit(x, y)
    result = export_sklearn(model, Sample("s.csv", table=x.head(20)), tmp_path / "m.onnx")
    assert result.parity.passed
    assert result.parity.unchecked == ()
    assert {r.name for r in result.parity.outputs} == {"label", "probabilities"}


def test_scores_of_a_layout_not_known_stay_unchecked(tmp_path) -> None:
    # OneVsRestClassifier's exported scores are not its decision_function(): left unchecked
    # (and said), never a failed export.
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.svm import LinearSVC

    x = _frame(80)
    model = OneVsRestClassifier(LinearSVC()).fit(x, np.digitize(x.a, [-0.5, 0.5]))
    result = export_sklearn(model, Sample("s.csv", table=x.head(20)), tmp_path / "m.onnx")
    assert result.parity.passed
    assert result.parity.unchecked == ("probabilities",)


def test_a_column_named_like_an_output_needs_and_takes_output_names(tmp_path) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(0)
    x = pd.DataFrame({"label": rng.normal(size=60), "city": rng.choice(["x", "y"], 60)})
    columns = ColumnTransformer(
        [("n", StandardScaler(), ["label"]), ("c", OneHotEncoder(), ["city"])]
    )
    model = Pipeline([("ct", columns), ("m", LogisticRegression())])
    model.fit(x, (x.label > 0).astype(int))
    sample = Sample("s.csv", table=x.head(20))
    with pytest.raises(ExportError, match=r"columns \['label'\] have the names of model outputs"):
        export_sklearn(model, sample, tmp_path / "a.onnx")
    out = tmp_path / "b.onnx"
    result = export_sklearn(model, sample, out, ExportOptions(output_names=("pred", "proba")))
    assert [t.name for t in result.inputs] == ["label", "city"]
    with engine.load(out) as served:
        got = served.predict(
            {"label": x[["label"]].to_numpy(np.float32), "city": x[["city"]].to_numpy(object)}
        )
    np.testing.assert_allclose(got["proba"], model.predict_proba(x), atol=1e-5)


def test_output_shapes_are_declared_as_they_run(tmp_path) -> None:
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import RidgeClassifier

    x = _frame()
    sample = Sample("s.csv", table=x.head(20))
    # skl2onnx declares [N, 1] for two targets, and [N, 2] for RidgeClassifier's one score.
    forest = RandomForestRegressor(5, random_state=0).fit(x, np.c_[x.a, x.b])
    result = export_sklearn(forest, sample, tmp_path / "rf.onnx")
    assert _declared(tmp_path / "rf.onnx", "variable") == [-1, 2]
    assert [t.shape for t in result.outputs] == [(-1, 2)]
    ridge = RidgeClassifier().fit(x, (x.a > 0).astype(int))
    export_sklearn(ridge, sample, tmp_path / "ridge.onnx")
    assert _declared(tmp_path / "ridge.onnx", "probabilities") == [-1, 1]


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_sample_the_estimator_refuses_is_one_error(tmp_path, bad) -> None:
    from sklearn.linear_model import LogisticRegression

    x = _frame()
    model = LogisticRegression().fit(x, (x.a > 0).astype(int))
    sample_frame = x.head(20).copy()
    sample_frame.iloc[3, 1] = bad
    out = tmp_path / "m.onnx"
    with pytest.raises(ExportError, match=r"predict_proba\(\) fails on the sample.*ValueError"):
        export_sklearn(model, Sample("s.csv", table=sample_frame), out)
    assert not out.exists()


def test_a_bool_column_below_the_opset_of_cast_is_one_error(tmp_path) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(0)
    x = pd.DataFrame({"city": rng.choice(["x", "y"], 60), "flag": rng.random(60) > 0.5})
    columns = ColumnTransformer([("c", OneHotEncoder(), ["city"]), ("f", "passthrough", ["flag"])])
    model = Pipeline([("ct", columns), ("m", LogisticRegression())])
    model.fit(x, (x.city == "x").astype(int))
    out = tmp_path / "m.onnx"
    # skl2onnx writes opset 5 for this model under --opset 10: no Cast that ORT runs.
    with pytest.raises(ExportError, match=r"bool columns \['flag'\].*wrote opset 5"):
        export_sklearn(model, Sample("s.csv", table=x.head(20)), out, ExportOptions(opset=10))
    assert not out.exists()
    export_sklearn(model, Sample("s.csv", table=x.head(20)), out, ExportOptions(opset=11))
    assert out.exists()


def test_text_categories_a_csv_read_as_numbers_are_named(tmp_path) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=60), "zip": rng.choice(["10115", "20095"], 60)})
    columns = ColumnTransformer(
        [("n", StandardScaler(), ["a"]), ("c", OneHotEncoder(handle_unknown="ignore"), ["zip"])]
    )
    model = Pipeline([("ct", columns), ("m", LogisticRegression())]).fit(x, x.a > 0)
    x.head(20).to_csv(tmp_path / "s.csv", index=False)
    sample = read_sample(tmp_path / "s.csv")  # pandas reads the zip codes as int64
    with pytest.raises(ExportError, match=r"column 'zip' of sample .* holds numbers.*\.parquet"):
        export_sklearn(model, sample, tmp_path / "m.onnx")
    x.head(20).to_parquet(tmp_path / "s.parquet")
    export_sklearn(model, read_sample(tmp_path / "s.parquet"), tmp_path / "m.onnx")
