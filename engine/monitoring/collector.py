"""Prometheus export of drift results and prediction-log counters: one custom collector.

The server registers one :class:`DriftCollector` in its registry and adds each monitor's
windows to it (``monitor.add_listener(collector.update)``); ``remove`` forgets a model version
when it is unloaded: its gauges, its prediction logs and its webhooks, which it closes (bounded:
``WebhookNotifier.close``). The webhook failure counter keeps what removed webhooks counted, so
it never goes down. Gauges keep the last closed window's values.

Counters never go down while the process runs: ``remove`` keeps a version's window count and
the final counters of its prediction logs (closed before ``remove``), and when the version is
monitored again (reloaded, or loaded again after an unload) its counters go on from there
rather than from zero, which Prometheus would read as a reset, or miss once the new counts
passed the old. A removed version's counters stay, at their final values, for
``metric_names.UNLOADED_SERIES_S`` after ``remove``: its last prediction-log file is counted
when it closes, at the unload, and without this no scrape would see those records. Then it
exports nothing until it is monitored again. Several prediction logs of one version are summed
into one series.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from engine.monitoring import metric_names as names
from engine.monitoring.monitor import WindowResult

__all__ = ["DriftCollector"]


class _CountsLog(Protocol):
    model: str
    version: str

    def counters(self) -> dict[str, int]: ...


class _Failures(Protocol):
    @property
    def failures(self) -> int: ...

    def close(self, timeout_s: float = ...) -> None: ...


class DriftCollector(Collector):
    """Collects ``engine_drift_*``, ``engine_prediction_log_*`` and webhook failure metrics."""

    def __init__(
        self,
        *,
        unloaded_series_s: float = names.UNLOADED_SERIES_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._unloaded_series_s = unloaded_series_s
        self._clock = clock
        # Removed versions whose counters are still exported, and when they were removed.
        self._removed_at: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._results: dict[tuple[str, str], WindowResult] = {}
        self._windows: dict[tuple[str, str], int] = {}
        self._logs: list[_CountsLog] = []
        self._webhooks: dict[tuple[str, str], list[_Failures]] = {}
        self._retired_webhook_failures = 0  # failures of webhooks already removed
        # Per version: final counters of its removed prediction logs (see the module doc).
        self._retired_logs: dict[tuple[str, str], Counter[str]] = {}

    def update(self, result: WindowResult) -> None:
        """Window listener: keep this window as the model version's current values."""
        key = (result.model, result.version)
        with self._lock:
            self._removed_at.pop(key, None)
            self._results[key] = result
            self._windows[key] = self._windows.get(key, 0) + 1

    def remove(self, model: str, version: str | int) -> None:
        """Forget a model version (it was unloaded): drop its gauges and prediction logs, and
        close and drop its webhooks. Blocks for at most ``CLOSE_TIMEOUT_S`` per webhook (their
        ``close``); the lock is not held meanwhile. Idempotent."""
        key = (model, str(version))
        with self._lock:
            self._removed_at.setdefault(key, self._clock())
            self._results.pop(key, None)
            # The window count stays: exported again, from there, once a window of this
            # version closes again.
            removed = [log for log in self._logs if (log.model, log.version) == key]
            self._logs = [log for log in self._logs if (log.model, log.version) != key]
            for log in removed:  # closed before remove: these counters are final
                self._retired_logs.setdefault(key, Counter()).update(_log_counters(log))
            webhooks = list(self._webhooks.get(key, ()))
        for webhook in webhooks:
            webhook.close()  # bounded; idempotent. Its counters are final afterwards.
        if webhooks:
            # Dropped and folded into the total in one step: a scrape never sees it dip.
            with self._lock:
                current = self._webhooks.pop(key, [])
                closed = [w for w in current if any(w is c for c in webhooks)]
                left = [w for w in current if not any(w is c for c in webhooks)]
                if left:  # added while we were closing: kept for the next remove
                    self._webhooks[key] = left
                # Only what this call took out: a concurrent remove never counts one twice.
                self._retired_webhook_failures += sum(w.failures for w in closed)

    def add_prediction_log(self, log: _CountsLog) -> None:
        """Export a prediction log's ``records`` / ``dropped_writer`` / ``dropped_core`` /
        ``dropped_write_error`` / ``orphans_removed``."""
        with self._lock:
            self._removed_at.pop((log.model, log.version), None)
            self._logs.append(log)

    def add_webhook(self, webhook: _Failures, *, model: str, version: str | int) -> None:
        """Count ``webhook``'s failures until :meth:`remove` of ``model``:``version`` closes
        and drops it."""
        with self._lock:
            self._webhooks.setdefault((model, str(version)), []).append(webhook)

    def webhook_count(self) -> int:
        """Webhooks currently exported (those of versions not yet removed)."""
        with self._lock:
            return sum(len(hooks) for hooks in self._webhooks.values())

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            results = list(self._results.items())
            windows = dict(self._windows)
            logs = list(self._logs)
            retired_logs = {key: dict(c) for key, c in self._retired_logs.items()}
            webhooks = [w for hooks in self._webhooks.values() for w in hooks]
            retired = self._retired_webhook_failures
            now = self._clock()
            recent = {
                key: at
                for key, at in self._removed_at.items()
                if now - at < self._unloaded_series_s
            }
            self._removed_at = recent  # the rest are done with
        mv = [names.LABEL_MODEL, names.LABEL_VERSION]
        score = GaugeMetricFamily(
            names.DRIFT_SCORE,
            "Drift statistic of the last closed window",
            labels=[*mv, names.LABEL_FEATURE, names.LABEL_METRIC],
        )
        alert = GaugeMetricFamily(
            names.DRIFT_ALERT,
            "1 when the feature crossed a drift threshold in the last window",
            labels=[*mv, names.LABEL_FEATURE],
        )
        rows = GaugeMetricFamily(
            names.DRIFT_WINDOW_ROWS, "Rows in the last closed drift window", labels=mv
        )
        count = CounterMetricFamily(names.DRIFT_WINDOWS_TOTAL, "Drift windows evaluated", labels=mv)
        for model, version in sorted(recent):
            if (model, version) in windows:
                count.add_metric([model, version], windows[(model, version)])
        for (model, version), result in results:
            rows.add_metric([model, version], result.rows)
            count.add_metric([model, version], windows.get((model, version), 0))
            for f in result.features:
                for metric, value in f.metrics().items():
                    score.add_metric([model, version, f.name, metric], value)
                alert.add_metric([model, version, f.name], 1.0 if f.breaches else 0.0)
        yield from (score, alert, rows, count)
        records = CounterMetricFamily(
            names.PREDICTION_LOG_RECORDS_TOTAL,
            "Prediction records in complete Parquet files (counted when a file is closed)",
            labels=mv,
        )
        dropped = CounterMetricFamily(
            names.PREDICTION_LOG_DROPPED_TOTAL,
            "Sampled predictions not persisted: a queue was full (where=writer, core) or the "
            "Parquet file could not be written (where=write_error)",
            labels=[*mv, "where"],
        )
        orphans = CounterMetricFamily(
            names.PREDICTION_LOG_ORPHANS_REMOVED_TOTAL,
            "Unreadable *.parquet.partial files of writers that died (no live writer held "
            "them), removed when this writer started",
            labels=mv,
        )
        per_version: dict[tuple[str, str], Counter[str]] = {
            key: Counter(retired_logs[key]) for key in sorted(recent) if key in retired_logs
        }
        for log in logs:
            key = (log.model, log.version)
            if key not in per_version:
                per_version[key] = Counter(retired_logs.get(key, {}))
            per_version[key].update(_log_counters(log))
        for (model, version), c in per_version.items():
            records.add_metric([model, version], c["records"])
            dropped.add_metric([model, version, "writer"], c["dropped_writer"])
            dropped.add_metric([model, version, "core"], c["dropped_core"])
            dropped.add_metric([model, version, "write_error"], c["dropped_write_error"])
            orphans.add_metric([model, version], c["orphans_removed"])
        yield from (records, dropped, orphans)
        failures = CounterMetricFamily(
            names.ALERT_WEBHOOK_FAILURES_TOTAL,
            "Alerts the webhook never delivered (retries exhausted, refused or queue full)",
        )
        failures.add_metric([], retired + sum(w.failures for w in webhooks))
        yield failures


_LOG_COUNTERS = (
    "records",
    "dropped_writer",
    "dropped_core",
    "dropped_write_error",
    "orphans_removed",
)


def _log_counters(log: _CountsLog) -> dict[str, int]:
    """The exported counters of a prediction log (0 for one it does not have)."""
    c = log.counters()
    return {name: int(c.get(name, 0)) for name in _LOG_COUNTERS}
