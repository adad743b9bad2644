"""The native core against the numpy oracle: drift counts slot for slot (also under bins built
by the training profile, whose reference proportions the core's counts of the training data
reproduce), and sampled requests drained into Parquet. Skipped on a core without the
monitoring hooks."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import factories
import numpy as np
import onnx
import pandas as pd
import pytest
from engine.training.profile import profile_frame, save_profile

import engine
from engine import _core
from engine.monitoring.bins import NumpyDriftCounter
from engine.monitoring.monitor import DriftMonitor, MonitorConfig
from engine.monitoring.prediction_log import (
    PredictionLog,
    PredictionLogConfig,
    read_prediction_logs,
)
from engine.monitoring.reference import drift_reference
from engine.monitoring.sampler import SamplePoller

pytestmark = pytest.mark.skipif(
    not all(hasattr(_core.Model, m) for m in ("set_drift_bins", "drift_counts", "take_samples")),
    reason="this build's core has no drift counters or sampler",
)

MULTI_IO_FEATURES: list[dict[str, Any]] = [
    {"name": "a0", "tensor": "a", "column": 0, "kind": "numeric", "edges": [-1.0, 0.0, 0.5]},
    {"name": "a3", "tensor": "a", "column": 3, "kind": "numeric", "edges": []},
    {"name": "b_all", "tensor": "b", "column": -1, "kind": "numeric", "edges": [0.0, 2.0]},
    {
        "name": "k",
        "tensor": "k",
        "column": -1,
        "kind": "categorical",
        "categories": ["0", "1", "2", "-3"],
    },
    {
        "name": "sum1",
        "tensor": "sum",
        "column": 1,
        "kind": "numeric",
        "edges": [-0.5, 0.0, 0.25, 1.0],
    },
    {"name": "k2", "tensor": "k2", "column": -1, "kind": "categorical", "categories": ["0", "4"]},
]


def full(features: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"edges": [], "categories": [], **f} for f in features]


@pytest.fixture
def multi_io(tmp_path: Path) -> Iterator[engine.Model]:
    with engine.load(factories.multi_io(tmp_path / "multi_io.onnx")) as model:
        yield model


def batch(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    a = rng.normal(0, 1, (n, 4)).astype(np.float32)
    a[:, 0] = rng.choice([-1.0, 0.0, 0.5, 0.25, math.nan, math.inf, -math.inf], n)
    b = rng.normal(1, 1, (n, 4)).astype(np.float32)
    b[rng.random((n, 4)) < 0.1] = np.nan
    k = rng.integers(-3, 4, (n, 1)).astype(np.int64)
    return {"a": a, "b": b, "k": k}


def _oracle_and_monitor(
    model: engine.Model, profile: Any
) -> tuple[NumpyDriftCounter, DriftMonitor]:
    """The numpy oracle and a drift monitor, both counting ``profile``'s bins (the core's bins
    are installed by the monitor)."""
    reference = drift_reference(profile, model)
    oracle = NumpyDriftCounter()
    oracle.set_drift_bins(reference.core_features())
    monitor = DriftMonitor(
        model.core, reference, model="m", version=1, config=MonitorConfig(min_rows=1)
    )
    return oracle, monitor


def _served_window(
    model: engine.Model, oracle: NumpyDriftCounter, monitor: DriftMonitor, frame: Any
) -> Any:
    """Serve ``frame``, check the core counted it as the oracle does, close the window."""
    model.predict(as_served(frame))
    oracle.observe(as_served(frame))
    assert model.core.drift_counts() == oracle.drift_counts()
    return monitor.poll(force=True)


def test_core_counts_equal_the_numpy_oracle(multi_io: engine.Model) -> None:
    oracle = NumpyDriftCounter()
    oracle.set_drift_bins(full(MULTI_IO_FEATURES))
    multi_io.core.set_drift_bins(full(MULTI_IO_FEATURES))
    rng = np.random.default_rng(0)
    for n in (1, 7, 64, 33):
        inputs = batch(rng, n)
        outputs = multi_io.predict(inputs)
        oracle.observe({**inputs, **outputs})
    assert multi_io.core.drift_counts() == oracle.drift_counts()


def test_core_counts_strings(tmp_path: Path) -> None:
    features = full(
        [
            {
                "name": "word",
                "tensor": "word",
                "column": -1,
                "kind": "categorical",
                "categories": ["cat", "dog", "ému"],
            },
            {
                "name": "id",
                "tensor": "id",
                "column": -1,
                "kind": "categorical",
                "categories": ["1", "2", "-1"],
            },
        ]
    )
    oracle = NumpyDriftCounter()
    oracle.set_drift_bins(features)
    with engine.load(factories.string_lookup(tmp_path / "s.onnx")) as model:
        model.core.set_drift_bins(features)
        words = np.array([["cat"], ["ému"], [""], ["bird"], ["dog"], ["cat"]], dtype=object)
        outputs = model.predict({"word": words})
        oracle.observe({"word": words, **outputs})
        assert model.core.drift_counts() == oracle.drift_counts()


def low_cardinality_training(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """float64 training columns whose drift quantile bins could not see, one of each kind."""
    sex = np.array([-0.044641636506989, 0.0506801187398187])  # not float32 numbers
    return pd.DataFrame(
        {
            "flag": (rng.random(n) < 0.3).astype(np.float64),
            "constant": np.full(n, 5.0),
            "sex": sex[(rng.random(n) < 0.47).astype(int)],
            "visits": np.where(rng.random(n) < 0.6, 0.0, rng.exponential(3.0, n)),
            "code": rng.choice([0.1, 0.25, 0.3, 2.0], n, p=[0.4, 0.3, 0.2, 0.1]),
        }
    )


def as_served(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    return {"x": frame.to_numpy(np.float32)}


def test_value_bins_match_the_core_and_shifts_show(tmp_path: Path) -> None:
    """Profile built from float64 data, counted by the core on a float32 tensor: the training
    data itself gives the reference proportions slot for slot (no drift), and a shift of a
    binary, constant, two-valued, zero-inflated or float-coded categorical feature is seen."""
    rng = np.random.default_rng(7)
    train = low_cardinality_training(rng, 4000)
    profile = profile_frame(train, ["flag", "constant", "sex", "visits"], ["code"])
    path = factories.elementwise(tmp_path / "x5.onnx", onnx.TensorProto.FLOAT, width=5)
    with engine.load(path, config=engine.ModelConfig(max_batch_size=4000)) as model:
        oracle, monitor = _oracle_and_monitor(model, profile)

        window = _served_window(model, oracle, monitor, train)
        assert window is not None and window.drifted == ()
        for f in window.features:
            assert np.array(f.counts) / window.rows == pytest.approx(f.reference, abs=1e-12)

        shifted = low_cardinality_training(rng, 2000)
        shifted["flag"] = (rng.random(2000) < 0.95).astype(np.float64)  # 30% -> 95% ones
        shifted["constant"] = np.where(rng.random(2000) < 0.5, 1000.0, -1e30)
        shifted["sex"] = 0.0506801187398187  # one sex only
        shifted["visits"] = np.where(shifted["visits"] == 0.0, -1.0, shifted["visits"])
        shifted["code"] = rng.choice([0.1, 0.25, 0.3, 2.0], 2000, p=[0.1, 0.1, 0.4, 0.4])
        window = _served_window(model, oracle, monitor, shifted)
        assert window is not None
        assert set(window.drifted) == {"flag", "constant", "sex", "visits", "code"}
        by_name = {f.name: f for f in window.features}
        assert by_name["code"].counts[-2] == 0  # no float32 value counted as "(other)"


def test_training_infinities_match_the_cores_inf_slot(tmp_path: Path) -> None:
    """Training data with +inf and -inf (and NaN): the profile counts them apart, as the core
    does, so the core's counts of the training data itself are the reference proportions slot
    for slot, and the saved profile is strict JSON."""
    rng = np.random.default_rng(11)
    n = 3000
    train = pd.DataFrame({f"x{i}": rng.normal(0.0, 1.0, n) for i in range(5)})
    special = rng.random((n, 5))
    train = train.mask(special < 0.05, np.inf).mask((special >= 0.05) & (special < 0.08), -np.inf)
    train = train.mask((special >= 0.08) & (special < 0.1), np.nan)
    train["x4"] = np.where(rng.random(n) < 0.5, np.inf, -np.inf)  # no finite value at all
    profile = profile_frame(train, list(train.columns), [])
    save_profile(profile, tmp_path / "profile.json")  # raised ValueError on inf statistics
    path = factories.elementwise(tmp_path / "x5.onnx", onnx.TensorProto.FLOAT, width=5)
    with engine.load(path, config=engine.ModelConfig(max_batch_size=n)) as model:
        oracle, monitor = _oracle_and_monitor(model, profile)
        window = _served_window(model, oracle, monitor, train)
        assert window is not None and window.drifted == ()
        for f in window.features:
            assert f.counts[-1] > 0  # the +-inf slot
            assert np.array(f.counts) / window.rows == pytest.approx(f.reference, abs=1e-12)


def test_core_samples_reach_parquet(multi_io: engine.Model, tmp_path: Path) -> None:
    log = PredictionLog(
        tmp_path, model="multi_io", version=1, config=PredictionLogConfig(sample_rate=1.0)
    )
    poller = SamplePoller(multi_io.core, log, capacity=1000, interval_s=0.01)
    poller.start()
    rng = np.random.default_rng(1)
    sent = [batch(rng, 3) for _ in range(20)]
    for inputs in sent:
        multi_io.predict(inputs)
    poller.stop()
    log.close()
    table = read_prediction_logs(tmp_path)
    assert table.num_rows == 20
    assert log.counters()["dropped_core"] == 0
    first = table.slice(0, 1).to_pylist()[0]
    assert first["input.a.shape"] == [3, 4]
    np.testing.assert_array_equal(np.array(first["input.k"]), sent[0]["k"].ravel())
    assert first["latency_us"] > 0


def test_monitor_model_wires_drift_history_metrics_and_logs(
    multi_io: engine.Model, tmp_path: Path
) -> None:
    from prometheus_client import CollectorRegistry

    from engine.monitoring.attach import monitor_model
    from engine.monitoring.collector import DriftCollector
    from engine.monitoring.history import read_history
    from engine.monitoring.monitor import MonitorConfig
    from engine.monitoring.reference import DriftReference

    features = full(MULTI_IO_FEATURES)
    uniform = {
        f["name"]: [1.0]
        * (len(f["edges"]) + 3 if f["kind"] == "numeric" else len(f["categories"]) + 2)
        for f in features
    }
    reference = DriftReference.from_features(features, uniform)
    collector = DriftCollector()
    registry = CollectorRegistry()
    registry.register(collector)
    running = monitor_model(
        multi_io.core,
        reference,
        model="multi_io",
        version=2,
        collector=collector,
        home=tmp_path,
        config=MonitorConfig(window_rows=100, min_rows=1, poll_interval_s=60),
        prediction_log=PredictionLogConfig(sample_rate=1.0),
    )
    rng = np.random.default_rng(2)
    for _ in range(10):
        multi_io.predict(batch(rng, 10))
    result = running.monitor.poll()  # 100 rows: the window is due
    running.stop()
    assert result is not None and result.rows == 100
    (line,) = read_history(tmp_path / "monitoring" / "multi_io")
    assert line["requests"]["ok"] == 10
    assert read_prediction_logs(tmp_path / "logs" / "multi_io").num_rows == 10
    assert (
        registry.get_sample_value("engine_drift_window_rows", {"model": "multi_io", "version": "2"})
        is None
    )  # removed on stop
