"""Feature transforms fused into the batch: engine.load(config=ModelConfig(transforms=spec))
takes raw columns; its output equals the numpy reference and the exported ONNX graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
from onnx import TensorProto, helper

import engine
from engine.errors import InvalidConfigError, InvalidInputError
from engine.transforms import apply_reference, fit, merge_with_model

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


def identity_model(path: Path, width: int) -> Path:
    """features [N, width] -> y = features (so outputs show exactly what the transform made)."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["features"], ["y"])], "identity",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", width])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def spec_and_model(tmp_path_factory: pytest.TempPathFactory):
    spec = fit(training_columns(500, 0), TEMPLATE)
    path = identity_model(tmp_path_factory.mktemp("tx") / "identity.onnx", spec.width)
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
        with pytest.raises(InvalidInputError, match="input 'age': expected dtype float64, got int64"):
            model.predict({**cols, "age": np.arange(300)})


def test_transform_width_must_match_the_model(spec_and_model, tmp_path: Path) -> None:
    spec, _ = spec_and_model
    wrong = identity_model(tmp_path / "wrong.onnx", spec.width + 1)
    with pytest.raises(InvalidConfigError, match=f"transforms produce float32 \\[rows, {spec.width}\\]"):
        engine.load(wrong, config=engine.ModelConfig(transforms=spec.to_dict(), max_batch_size=512))
