"""The drift monitor end to end on numpy counts: shifted data alerts on the right features,
unshifted data keeps quiet (false alarm rate over many windows), NaN floods stay finite."""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import numpy as np
import pytest
from monitoring_scenario import REGIONS, draw, tensors
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from engine.errors import InvalidConfigError
from engine.monitoring.alerts import AlertManager, LogNotifier
from engine.monitoring.bins import NumpyDriftCounter
from engine.monitoring.collector import DriftCollector
from engine.monitoring.history import DriftHistory, read_history
from engine.monitoring.monitor import DriftMonitor, DriftThresholds, MonitorConfig, WindowResult
from engine.monitoring.reference import DriftReference


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def monotonic_s(self) -> float:
        return self.now_s

    def wall_ms(self) -> int:
        return int(self.now_s * 1000)


def make_monitor(
    reference: DriftReference, config: MonitorConfig, *listeners: Any
) -> tuple[DriftMonitor, NumpyDriftCounter, FakeClock]:
    counter, clock = NumpyDriftCounter(), FakeClock()
    monitor = DriftMonitor(
        counter,
        reference,
        model="churn",
        version=3,
        config=config,
        listeners=listeners,
        clock=clock,
    )
    return monitor, counter, clock


def test_shift_fires_an_alert_naming_the_shifted_features(
    reference: DriftReference, caplog: pytest.LogCaptureFixture
) -> None:
    alerts = AlertManager([LogNotifier()])
    monitor, counter, _ = make_monitor(
        reference, MonitorConfig(window_rows=2000, min_rows=100), alerts
    )
    rng = np.random.default_rng(7)
    counter.observe(tensors(draw(rng, 2000)))
    assert monitor.poll() is not None and alerts.sent == []

    shifted = draw(rng, 2000, shift_b=2.0, region_p=[0.1, 0.2, 0.3, 0.4])
    with caplog.at_level(logging.WARNING, logger="engine.monitoring.alerts"):
        counter.observe(tensors(shifted))
        result = monitor.poll()
    assert result is not None
    # b moved, and so did the score that depends on it; region's mix changed.
    assert set(result.drifted) == {"b", "region", "score"}
    alert = alerts.sent[-1]
    assert alert.status == "firing" and set(alert.feature_names) == {"b", "region", "score"}
    line = json.loads(caplog.records[-1].getMessage())
    assert line["event"] == "drift_alert" and line["model"] == "churn" and line["version"] == "3"
    assert {f["name"] for f in line["features"]} == {"b", "region", "score"}
    region = next(f for f in line["features"] if f["name"] == "region")
    assert "chi2_pvalue" in region["breaches"] and region["psi"] > 0.2

    # Back to normal: one "resolved", then silence.
    counter.observe(tensors(draw(rng, 2000)))
    monitor.poll()
    assert alerts.sent[-1].status == "resolved" and len(alerts.sent) == 2
    counter.observe(tensors(draw(rng, 2000)))
    monitor.poll()
    assert len(alerts.sent) == 2


def test_false_alarm_rate_over_200_unshifted_windows(reference: DriftReference) -> None:
    alerts = AlertManager()
    drifted: list[tuple[str, ...]] = []
    monitor, counter, _ = make_monitor(
        reference,
        MonitorConfig(window_rows=1000, min_rows=100),
        lambda r: drifted.append(r.drifted),
    )
    rng = np.random.default_rng(2024)
    frame = draw(rng, 200 * 1000)
    for i in range(200):
        counter.observe(tensors(frame.iloc[i * 1000 : (i + 1) * 1000]))
        alerts(monitor.poll())  # type: ignore[arg-type]
    assert len(drifted) == 200
    false_alarms = sum(1 for d in drifted if d)
    # Per window: PSI and KS never come near their thresholds at 1,000 rows; the chi-square
    # test of 2 categorical features at p < 0.001 alarms in about 0.2% of windows.
    assert false_alarms <= 3, [d for d in drifted if d]
    assert monitor.windows == 200


def test_all_nan_windows_keep_state_finite(reference: DriftReference) -> None:
    collector = DriftCollector()
    registry = CollectorRegistry()
    registry.register(collector)
    monitor, counter, _ = make_monitor(
        reference, MonitorConfig(window_rows=500, min_rows=10), collector.update
    )
    n = 500
    nan_batch = {
        "x": np.full((n, 3), np.nan, np.float32),
        "region": np.full((n, 1), "", dtype=object),
        "plan": np.array([None] * n, dtype=object),
        "score": np.full((n, 1), np.inf, np.float32),
    }
    for _ in range(3):
        counter.observe(nan_batch)
        result = monitor.poll()
        assert result is not None and result.rows == n
        for f in result.features:
            assert all(math.isfinite(v) for v in f.metrics().values()), f
    assert set(result.drifted) == {"a", "b", "c", "region", "plan", "score"}
    # Then normal data: finite, and no longer drifted.
    counter.observe(tensors(draw(np.random.default_rng(3), n)))
    assert monitor.poll().drifted == ()  # type: ignore[union-attr]
    text = generate_latest(registry).decode()
    samples = [s for fam in text_string_to_metric_families(text) for s in fam.samples]
    assert samples and all(math.isfinite(s.value) for s in samples)


def test_collector_gauges_and_labels(reference: DriftReference) -> None:
    collector = DriftCollector()
    registry = CollectorRegistry()
    registry.register(collector)
    monitor, counter, _ = make_monitor(
        reference, MonitorConfig(window_rows=300, min_rows=10), collector.update
    )
    counter.observe(tensors(draw(np.random.default_rng(5), 300, shift_b=3.0)))
    monitor.poll()
    labels = {"model": "churn", "version": "3"}
    get = registry.get_sample_value
    assert get("engine_drift_score", {**labels, "feature": "b", "metric": "psi"}) > 0.2
    assert (
        get("engine_drift_score", {**labels, "feature": "region", "metric": "chi2_pvalue"}) > 0.001
    )
    assert get("engine_drift_score", {**labels, "feature": "a", "metric": "chi2"}) is None
    assert get("engine_drift_alert", {**labels, "feature": "b"}) == 1.0
    assert get("engine_drift_alert", {**labels, "feature": "a"}) == 0.0
    assert get("engine_drift_window_rows", labels) == 300
    assert get("engine_drift_windows_total", labels) == 1
    collector.remove("churn", 3)
    assert get("engine_drift_window_rows", labels) is None


def test_windows_close_by_time_only_with_enough_rows(reference: DriftReference) -> None:
    config = MonitorConfig(window_rows=10_000, window_s=60.0, min_rows=200)
    monitor, counter, clock = make_monitor(reference, config)
    rng = np.random.default_rng(11)
    counter.observe(tensors(draw(rng, 150)))
    clock.now_s += 61
    assert monitor.poll() is None  # too few rows: the window stays open
    counter.observe(tensors(draw(rng, 100)))
    result = monitor.poll()
    assert result is not None and result.rows == 250
    assert result.ended_ms - result.started_ms == 61_000
    assert monitor.poll(force=True) is None  # nothing new


def test_counter_reset_restarts_the_window(reference: DriftReference) -> None:
    monitor, counter, _ = make_monitor(reference, MonitorConfig(window_rows=400, min_rows=10))
    rng = np.random.default_rng(12)
    counter.observe(tensors(draw(rng, 300)))
    assert monitor.poll(force=True).rows == 300  # type: ignore[union-attr]
    counter.observe(tensors(draw(rng, 50)))
    counter.set_drift_bins(reference.core_features())  # e.g. the bins were re-installed
    counter.observe(tensors(draw(rng, 100)))
    result = monitor.poll(force=True)
    assert result is not None and result.rows == 100


def test_history_lines_and_listener_errors(
    reference: DriftReference, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(result: WindowResult) -> None:
        raise RuntimeError("boom")

    history = DriftHistory(tmp_path, requests=lambda: {"ok": 10, "failed": 1})
    monitor, counter, _ = make_monitor(
        reference, MonitorConfig(window_rows=100, min_rows=10), broken, history
    )
    counter.observe(tensors(draw(np.random.default_rng(4), 100)))
    with caplog.at_level(logging.ERROR):
        assert monitor.poll() is not None
    assert "drift listener" in caplog.text
    (line,) = read_history(tmp_path)
    assert line["requests"] == {"ok": 10, "failed": 1} and line["rows"] == 100
    assert line["features"]["region"]["labels"][:4] == REGIONS


def test_background_thread_polls_until_stopped(reference: DriftReference) -> None:
    import threading

    done = threading.Event()
    counter = NumpyDriftCounter()
    monitor = DriftMonitor(
        counter,
        reference,
        model="m",
        version="1",
        config=MonitorConfig(window_rows=50, min_rows=10, poll_interval_s=0.01),
        listeners=[lambda r: done.set()],
    )
    counter.observe(tensors(draw(np.random.default_rng(8), 60)))
    monitor.start()
    try:
        assert done.wait(5.0)
    finally:
        monitor.stop()
    assert monitor.windows == 1


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"window_rows": 0}, "window_rows must be >= 1; was 0"),
        ({"min_rows": 5000, "window_rows": 100}, "min_rows must be in [1, window_rows=100]"),
        ({"thresholds": DriftThresholds(psi=None)}, None),
    ],
)
def test_config_validation(kwargs: dict[str, Any], fragment: str | None) -> None:
    if fragment is None:
        MonitorConfig(**kwargs)
        return
    with pytest.raises(InvalidConfigError) as info:
        MonitorConfig(**kwargs)
    assert fragment in str(info.value)
    with pytest.raises(InvalidConfigError, match="ks threshold must be in"):
        DriftThresholds(ks=1.5)


class _Log:
    def __init__(self, model: str, version: str, records: int) -> None:
        self.model, self.version, self.records = model, version, records

    def counters(self) -> dict[str, int]:
        return {
            "records": self.records,
            "dropped_writer": 1,
            "dropped_core": 2,
            "dropped_write_error": 3,
            "orphans_removed": 0,
        }


def test_collector_counters_go_on_when_a_version_is_loaded_again(
    reference: DriftReference,
) -> None:
    # Unloading a version removes it from the collector; loading it again must not start its
    # counters from zero (Prometheus would miss the drop once the new counts pass the old).
    now = [1000.0]
    collector = DriftCollector(unloaded_series_s=600, clock=lambda: now[0])
    registry = CollectorRegistry()
    registry.register(collector)
    get = registry.get_sample_value
    labels = {"model": "churn", "version": "3"}
    monitor, counter, _ = make_monitor(reference, MonitorConfig(window_rows=100, min_rows=10))
    monitor.add_listener(collector.update)
    rng = np.random.default_rng(21)
    for _ in range(2):
        counter.observe(tensors(draw(rng, 100)))
        assert monitor.poll() is not None
    collector.add_prediction_log(_Log("churn", "3", 5))
    assert get("engine_drift_windows_total", labels) == 2
    assert get("engine_prediction_log_records_total", labels) == 5
    collector.remove("churn", 3)
    # Removed: the counters stay at their final values for a while, so that every scraper
    # reads the last ones; the gauges go at once.
    assert get("engine_drift_windows_total", labels) == 2
    assert get("engine_prediction_log_records_total", labels) == 5
    assert get("engine_drift_window_rows", labels) is None
    now[0] += 599
    assert get("engine_drift_windows_total", labels) == 2
    now[0] += 1
    assert get("engine_drift_windows_total", labels) is None
    assert get("engine_prediction_log_records_total", labels) is None

    monitor, counter, _ = make_monitor(reference, MonitorConfig(window_rows=100, min_rows=10))
    monitor.add_listener(collector.update)
    collector.add_prediction_log(_Log("churn", "3", 1))
    counter.observe(tensors(draw(rng, 100)))
    assert monitor.poll() is not None
    assert get("engine_drift_windows_total", labels) == 3
    assert get("engine_prediction_log_records_total", labels) == 6
    for where, each in (("writer", 1), ("core", 2), ("write_error", 3)):
        assert get("engine_prediction_log_dropped_total", {**labels, "where": where}) == 2 * each
