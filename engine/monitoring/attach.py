"""Monitoring of one served model version, wired in one call (what the server uses).

:func:`monitor_model` installs the reference bins in the core, starts a drift monitor whose
windows go to the Prometheus collector, the drift history (with the core's request counts)
and the alert manager (JSON log line, plus a webhook when a URL is given), and, when a
prediction-log config is given, a Parquet log fed by the core's sampler.
:meth:`ModelMonitoring.stop` undoes all of it (the current partial window is dropped) and
removes the bins from the core, so a core carries one monitoring at a time. Every step of
``stop`` runs even when an earlier one fails; the first failure is raised afterwards and the
others are logged. Start-up is all or nothing: when a step fails, what was already started
(webhook thread, core drift bins, log writer, sampler, collector entries) is undone again
before the error is raised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
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
    core: Any = None  # whose drift bins stop removes (None: leaves them installed)

    def stop(self) -> None:
        """Stop the monitor thread, the sampler, the log writer (its file is published), the
        collector entries and the webhook, then remove the core's drift bins.

        Every step runs even when one raises (a thread or writer left running outlives the
        version); then the first failure is raised, the others are logged.
        """
        model, version = self.monitor.model, self.monitor.version
        steps: list[tuple[str, Callable[[], None]]] = [
            ("stopping the drift monitor", self.monitor.stop)
        ]
        if self.poller is not None:
            steps.append(("stopping the sampler", self.poller.stop))
        if self.log is not None:
            steps.append(("closing the prediction log", self.log.close))
        if self.webhook is not None:
            steps.append(("closing the webhook", self.webhook.close))
        if self.collector is not None:
            remove = partial(self.collector.remove, model, version)
            steps.append(("removing the collector entries", remove))
        if self.core is not None:
            steps.append(("removing the core's drift bins", partial(_remove_bins, self.core)))
        failures = _run_all(steps)
        for what, exc in failures[1:]:
            _log.error(
                "stopping the monitoring of %s:%s: %s failed", model, version, what, exc_info=exc
            )
        if failures:
            raise failures[0][1]


def _remove_bins(core: Any) -> None:
    core.set_drift_bins([])  # an empty list removes them: the core counts nothing


def _run_all(steps: Sequence[tuple[str, Callable[[], None]]]) -> list[tuple[str, Exception]]:
    """Run every step in order, whatever the earlier ones did; the failures, in order."""
    failures = []
    for what, step in steps:
        try:
            step()
        except Exception as exc:  # noqa: BLE001  the caller raises or logs each one
            failures.append((what, exc))
    return failures


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
    # them, newest first, and re-raises (no webhook thread, log writer, collector entry or
    # drift bins left).
    undo: list[tuple[str, Callable[[], None]]] = []
    try:
        webhook = WebhookNotifier(webhook_url) if webhook_url else None
        if webhook is not None:
            undo.append(("closing the webhook", webhook.close))
        alerts = AlertManager([LogNotifier(), *([webhook] if webhook else [])])
        history = DriftHistory(
            monitoring_dir(model, home), requests=lambda: core.stats()["requests"]
        )
        listeners: list[WindowListener] = [history, alerts]
        if collector is not None:
            listeners.append(collector.update)
            remove = partial(collector.remove, model, version)
            undo.append(("removing the collector entries", remove))
        # Installed here rather than by the monitor, so that its undo is pushed only once the
        # core took them (a core refusing the bins keeps the ones it had).
        core.set_drift_bins(reference.core_features())
        undo.append(("removing the core's drift bins", partial(_remove_bins, core)))
        monitor = DriftMonitor(
            core,
            reference,
            model=model,
            version=version,
            config=config,
            listeners=listeners,
            install=False,
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
            undo.append(("closing the prediction log", log.close))
            poller = SamplePoller(core, log)
            if collector is not None:
                collector.add_prediction_log(log)
            # Pushed first: start turns sampling on in the core before its thread starts.
            undo.append(("stopping the sampler", poller.stop))
            poller.start()
        undo.append(("stopping the drift monitor", monitor.stop))
        monitor.start()
    except BaseException:
        for what, exc in _run_all(undo[::-1]):  # every step; the start's error is re-raised
            _log.error(
                "undoing a partly started monitoring of %s:%s: %s failed",
                model,
                version,
                what,
                exc_info=exc,
            )
        raise
    return ModelMonitoring(monitor, collector, alerts, webhook, log, poller, core)
