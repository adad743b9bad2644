"""Monitoring of one served model version, wired in one call (what the server uses).

:func:`monitor_model` installs the reference bins in the core, starts a drift monitor whose
windows go to the Prometheus collector, the drift history (with the core's request counts)
and the alert manager (JSON log line, plus a webhook when a URL is given), and, when a
prediction-log config is given, a Parquet log fed by the core's sampler.
:meth:`ModelMonitoring.stop` undoes all of it (the current partial window is dropped). Start-up
is all or nothing: when a step fails, what was already started (webhook thread, log writer,
sampler, collector entries) is stopped again before the error is raised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import UnsupportedError
from engine.monitoring.alerts import AlertManager, LogNotifier, WebhookNotifier
from engine.monitoring.collector import DriftCollector
from engine.monitoring.history import DriftHistory
from engine.monitoring.monitor import DriftMonitor, MonitorConfig, WindowListener
from engine.monitoring.paths import logs_dir, monitoring_dir
from engine.monitoring.reference import DriftReference

__all__ = ["ModelMonitoring", "monitor_model"]

_log = logging.getLogger(__name__)


@dataclass
class ModelMonitoring:
    """The running pieces for one model version; :meth:`stop` ends them."""

    monitor: DriftMonitor
    collector: DriftCollector | None
    alerts: AlertManager
    webhook: WebhookNotifier | None
    log: Any  # PredictionLog | None (pyarrow is optional)
    poller: Any  # SamplePoller | None

    def stop(self) -> None:
        self.monitor.stop()
        if self.poller is not None:
            self.poller.stop()
        if self.log is not None:
            self.log.close()
        if self.webhook is not None:
            self.webhook.close()
        if self.collector is not None:
            self.collector.remove(self.monitor.model, self.monitor.version)


def monitor_model(
    core: Any,
    reference: DriftReference,
    *,
    model: str,
    version: str | int,
    config: MonitorConfig | None = None,
    collector: DriftCollector | None = None,
    home: str | Path | None = None,
    webhook_url: str | None = None,
    prediction_log: Any = None,
) -> ModelMonitoring:
    """Start monitoring ``core`` (an ``engine._core.Model``, e.g. ``Model.core``).

    ``prediction_log``: a :class:`~engine.monitoring.prediction_log.PredictionLogConfig` to
    log sampled requests to ``<home>/logs/<model>``; None logs nothing. Raises
    UnsupportedError when the core lacks the drift counters (or the sampler, if asked for).
    """
    if not hasattr(core, "set_drift_bins"):
        raise UnsupportedError("this build's core has no drift counters (set_drift_bins)")
    if prediction_log is not None and not hasattr(core, "take_samples"):
        raise UnsupportedError("this build's core has no request sampler (take_samples)")
    # All or nothing: each piece started pushes how to undo it; a failure part way undoes
    # them, newest first, and re-raises (no webhook thread, log writer or collector entry left).
    undo: list[Callable[[], None]] = []
    try:
        webhook = WebhookNotifier(webhook_url) if webhook_url else None
        if webhook is not None:
            undo.append(webhook.close)
        alerts = AlertManager([LogNotifier(), *([webhook] if webhook else [])])
        history = DriftHistory(
            monitoring_dir(model, home), requests=lambda: core.stats()["requests"]
        )
        listeners: list[WindowListener] = [history, alerts]
        if collector is not None:
            listeners.append(collector.update)
            undo.append(lambda: collector.remove(model, version))
        monitor = DriftMonitor(
            core, reference, model=model, version=version, config=config, listeners=listeners
        )
        if collector is not None and webhook is not None:
            collector.add_webhook(webhook, model=model, version=version)
        log = poller = None
        if prediction_log is not None:
            from engine.monitoring.prediction_log import PredictionLog
            from engine.monitoring.sampler import SamplePoller

            log = PredictionLog(
                logs_dir(model, home), model=model, version=version, config=prediction_log
            )
            undo.append(log.close)
            poller = SamplePoller(core, log)
            if collector is not None:
                collector.add_prediction_log(log)
            poller.start()
            undo.append(poller.stop)
        monitor.start()
        undo.append(monitor.stop)
    except BaseException:
        for step in reversed(undo):
            try:
                step()
            except Exception:  # noqa: BLE001  keep undoing; the first error is re-raised
                _log.exception(
                    "undoing a partly started monitoring of %s:%s failed", model, version
                )
        raise
    return ModelMonitoring(monitor, collector, alerts, webhook, log, poller)
