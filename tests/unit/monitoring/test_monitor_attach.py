"""monitor_model start-up is all or nothing, and the collector closes and drops the webhooks
of a version it forgets (ModelMonitoring.stop, i.e. the version was unloaded)."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import factories
import numpy as np
import pytest
from prometheus_client import CollectorRegistry

import engine
from engine import _core
from engine.errors import InvalidConfigError, UnavailableError, UnsupportedError
from engine.monitoring.alerts import Alert, WebhookNotifier
from engine.monitoring.attach import monitor_model
from engine.monitoring.bins import NumpyDriftCounter
from engine.monitoring.collector import DriftCollector
from engine.monitoring.monitor import MonitorConfig
from engine.monitoring.prediction_log import PredictionLogConfig, read_prediction_logs
from engine.monitoring.reference import DriftReference

FAILURES = "engine_alert_webhook_failures_total"


@pytest.fixture
def refusing_url() -> Iterator[str]:
    """A loopback webhook that answers every POST with 400 (a failure, never retried)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(400)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def background_threads() -> set[threading.Thread]:
    """The monitoring threads alive now (webhook, prediction log writer, poller, monitor)."""
    prefixes = ("alert-webhook", "predlog-", "sample-poller", "drift-")
    return {t for t in threading.enumerate() if t.name.startswith(prefixes) and t.is_alive()}


def alert(version: str = "1") -> Alert:
    return Alert("firing", "m", version, 0, 10, ())


# ---- monitor_model: all or nothing ------------------------------------------------------------


@pytest.mark.skipif(not hasattr(_core.Model, "set_drift_bins"), reason="no drift counters")
def test_core_refusing_the_bins_leaves_no_webhook_thread(tmp_path: Path) -> None:
    # The reference reads a tensor the model does not have: the core refuses the bins after the
    # webhook's thread was started.
    bad = DriftReference.from_features(
        [
            {
                "name": "f",
                "tensor": "nope",
                "column": -1,
                "kind": "numeric",
                "edges": [0.0],
                "categories": [],
            }
        ],
        {"f": [1.0, 1.0, 1.0, 1.0]},
    )
    collector = DriftCollector()
    before = background_threads()
    refused = pytest.raises(InvalidConfigError, match="no input or output named 'nope'")
    with engine.load(factories.multi_io(tmp_path / "multi_io.onnx")) as model, refused:
        monitor_model(
            model.core,
            bad,
            model="m",
            version=1,
            collector=collector,
            home=tmp_path,
            webhook_url="http://127.0.0.1:9/hook",
            prediction_log=PredictionLogConfig(sample_rate=1.0),
        )
    assert background_threads() - before == set()
    assert collector.webhook_count() == 0
    assert list(collector.collect())[-1].samples[0].value == 0


def test_core_without_sampler_leaves_no_webhook_thread(
    reference: DriftReference, tmp_path: Path
) -> None:
    # NumpyDriftCounter counts drift but has no request sampler: asking for a prediction log
    # is refused, and the webhook started for the same version must not outlive the refusal.
    collector = DriftCollector()
    before = background_threads()
    with pytest.raises(UnsupportedError, match="no request sampler"):
        monitor_model(
            NumpyDriftCounter(),
            reference,
            model="m",
            version=1,
            collector=collector,
            home=tmp_path,
            webhook_url="http://127.0.0.1:9/hook",
            prediction_log=PredictionLogConfig(sample_rate=1.0),
        )
    assert background_threads() - before == set()
    assert collector.webhook_count() == 0


class RefusingSampler(NumpyDriftCounter):
    """NumpyDriftCounter with a sampler that refuses to be switched on (as the core does for a
    rate or capacity out of range). The real core accepts every value monitor_model passes, so
    this is the one stand-in here: the step after the prediction log's writer has started."""

    def set_sampling(self, rate: float, capacity: int) -> None:
        raise InvalidConfigError(f"sampler refused rate {rate} and capacity {capacity}")

    def take_samples(self, max_items: int) -> list[dict[str, Any]]:
        return []

    def stats(self) -> dict[str, Any]:
        return {"requests": {}}


def test_sampler_failing_closes_the_log_writer_and_webhook(
    reference: DriftReference, tmp_path: Path
) -> None:
    collector = DriftCollector()
    registry = CollectorRegistry()
    registry.register(collector)
    before = background_threads()
    with pytest.raises(InvalidConfigError, match="sampler refused"):
        monitor_model(
            RefusingSampler(),
            reference,
            model="m",
            version=1,
            collector=collector,
            home=tmp_path,
            webhook_url="http://127.0.0.1:9/hook",
            prediction_log=PredictionLogConfig(sample_rate=1.0),
        )
    assert background_threads() - before == set()
    assert collector.webhook_count() == 0
    labels = {"model": "m", "version": "1"}
    # The log was closed empty and removed; its counters stay a while at their final values.
    assert registry.get_sample_value("engine_prediction_log_records_total", labels) == 0


# ---- DriftCollector.remove closes and drops the version's webhooks ---------------------------


def test_remove_closes_and_drops_the_versions_webhooks(refusing_url: str) -> None:
    collector = DriftCollector()
    registry = CollectorRegistry()
    registry.register(collector)
    old = WebhookNotifier(refusing_url, max_attempts=1)
    kept = WebhookNotifier(refusing_url, max_attempts=1)
    try:
        collector.add_webhook(old, model="m", version=1)
        collector.add_webhook(kept, model="m", version=2)
        old(alert("1"))  # answered 400: one failure, counted at the latest when closed
        collector.remove("m", 1)
        assert not old._thread.is_alive()  # closed (bounded), not left running
        assert collector.webhook_count() == 1
        # The failure of the removed webhook stays in the total: the counter never goes down.
        assert (old.delivered, old.failures) == (0, 1)
        assert registry.get_sample_value(FAILURES) == 1
        old(alert("1"))  # sent after close: counted by the webhook, no longer exported
        assert registry.get_sample_value(FAILURES) == 1
        collector.remove("m", 1)  # idempotent: nothing counted twice
        assert registry.get_sample_value(FAILURES) == 1
        assert kept._thread.is_alive()
    finally:
        kept.close()


def test_stopping_a_monitored_version_leaves_nothing_in_the_collector(
    reference: DriftReference, tmp_path: Path, refusing_url: str
) -> None:
    collector = DriftCollector()
    before = background_threads()
    running = monitor_model(
        NumpyDriftCounter(),
        reference,
        model="m",
        version=1,
        collector=collector,
        home=tmp_path,
        config=MonitorConfig(poll_interval_s=60),
        webhook_url=refusing_url,
    )
    assert collector.webhook_count() == 1
    running.stop()
    assert collector.webhook_count() == 0
    assert background_threads() - before == set()


# ---- the core's drift bins go with the monitoring ---------------------------------------------


def multi_io_reference() -> DriftReference:
    """One numeric feature on column 0 of the multi_io model's input ``a``."""
    feature = {"name": "a0", "tensor": "a", "column": 0, "kind": "numeric", "edges": [0.0]}
    return DriftReference.from_features([{**feature, "categories": []}], {"a0": [1.0] * 4})


def multi_io_batch(rows: int) -> dict[str, np.ndarray]:
    return {
        "a": np.ones((rows, 4), np.float32),
        "b": np.ones((rows, 4), np.float32),
        "k": np.ones((rows, 1), np.int64),
    }


@pytest.mark.skipif(not hasattr(_core.Model, "set_drift_bins"), reason="no drift counters")
def test_a_failure_after_the_core_took_the_bins_removes_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server without the `monitor` extra: the prediction log's writer cannot start (no
    # pyarrow), after the core accepted the bins. The model is served on without monitoring,
    # so the core must not go on counting drift for nobody.
    config = PredictionLogConfig(sample_rate=1.0)
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # what `import pyarrow` sees without it
    before = background_threads()
    with engine.load(factories.multi_io(tmp_path / "multi_io.onnx")) as model:
        with pytest.raises(ModuleNotFoundError, match="pyarrow"):
            monitor_model(
                model.core,
                multi_io_reference(),
                model="m",
                version=1,
                home=tmp_path,
                prediction_log=config,
            )
        model.predict(multi_io_batch(3))
        assert model.core.drift_counts() == {}
    assert background_threads() - before == set()


@pytest.mark.skipif(not hasattr(_core.Model, "set_drift_bins"), reason="no drift counters")
def test_stop_removes_the_drift_bins(tmp_path: Path) -> None:
    with engine.load(factories.multi_io(tmp_path / "multi_io.onnx")) as model:
        running = monitor_model(
            model.core,
            multi_io_reference(),
            model="m",
            version=1,
            home=tmp_path,
            config=MonitorConfig(poll_interval_s=60),
        )
        model.predict(multi_io_batch(3))
        assert model.core.drift_counts() == {"a0": [0, 3, 0, 0]}
        running.stop()
        model.predict(multi_io_batch(3))
        assert model.core.drift_counts() == {}


# ---- ModelMonitoring.stop runs every step ------------------------------------------------------


class CoreThatGoesAway(NumpyDriftCounter):
    """A core whose sampler and drift bins refuse every call once ``gone`` (as a core that was
    closed, or lost, under its monitoring might). The real core answers after close, so this is
    a stand-in: the failures ``stop`` has to live through."""

    def __init__(self) -> None:
        super().__init__()
        self.gone = False

    def set_sampling(self, rate: float, capacity: int) -> None:
        if self.gone:
            raise UnavailableError(f"cannot set sampling to {rate}: the core is gone")

    def take_samples(self, max_items: int) -> list[dict[str, Any]]:
        return []

    def set_drift_bins(self, features: Any) -> None:
        if self.gone:
            raise UnavailableError("cannot change the drift bins: the core is gone")
        super().set_drift_bins(features)


def test_stop_runs_every_step_and_raises_the_first_failure(
    reference: DriftReference,
    tmp_path: Path,
    refusing_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    collector = DriftCollector()
    registry = CollectorRegistry()
    registry.register(collector)
    core = CoreThatGoesAway()
    before = background_threads()
    running = monitor_model(
        core,
        reference,
        model="m",
        version=1,
        collector=collector,
        home=tmp_path,
        config=MonitorConfig(poll_interval_s=60),
        webhook_url=refusing_url,
        prediction_log=PredictionLogConfig(sample_rate=1.0),
    )
    x = np.ones((1, 3), np.float32)
    assert running.log.record({"x": x}, {"y": x}, latency_us=1)
    core.gone = True
    failing = pytest.raises(UnavailableError, match="cannot set sampling to 0.0")
    with caplog.at_level(logging.ERROR, logger="engine.monitoring.attach"), failing:
        running.stop()
    # The sampler failed first; the log writer, the webhook, the collector entries and the
    # monitor thread were stopped all the same, and the bins' failure was logged.
    assert background_threads() - before == set()
    assert collector.webhook_count() == 0
    labels = {"model": "m", "version": "1"}
    # The record counted when the log closed at the stop is still exported for a while.
    assert registry.get_sample_value("engine_prediction_log_records_total", labels) == 1
    assert read_prediction_logs(tmp_path / "logs" / "m").num_rows == 1  # closed: complete
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    message = "stopping the monitoring of m:1: removing the core's drift bins failed"
    assert errors[0].getMessage() == message
    assert "cannot change the drift bins" in str(errors[0].exc_info[1])
