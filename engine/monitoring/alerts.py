"""Drift alerts: decided per window, sent as a JSON log line and, optionally, a webhook POST.

:class:`AlertManager` is a window listener. It fires when a window has drifted features and
the set of drifted features differs from the last alert (or ``repeat_s`` has passed since),
and sends "resolved" once when a window is clean again after a firing alert. Each alert goes
to every notifier: :class:`LogNotifier` (one JSON line on the ``engine.monitoring.alerts``
logger at WARNING) and :class:`WebhookNotifier`.

The webhook never blocks the caller: alerts go into a bounded queue (a full queue drops the
alert and counts a failure) drained by one daemon thread that POSTs the alert as JSON and
retries connection errors, timeouts, 429 and 5xx with exponential backoff
(``backoff_initial_s * 2**attempt``, capped at ``backoff_max_s``) up to ``max_attempts``
times; other 4xx answers are not retried. :meth:`WebhookNotifier.close` is bounded too: it
lets the thread deliver what is queued for at most ``timeout_s`` (default
:data:`CLOSE_TIMEOUT_S`, 2 s), then abandons the rest. Every alert handed to the notifier ends
up counted exactly once, in ``delivered`` or in ``failures`` (retries exhausted, refused,
queue full, abandoned at close, or sent after close).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from engine.errors import InvalidConfigError
from engine.monitoring.clock import Clock, SystemClock
from engine.monitoring.monitor import WindowResult

__all__ = ["CLOSE_TIMEOUT_S", "Alert", "AlertManager", "LogNotifier", "WebhookNotifier"]

_log = logging.getLogger(__name__)
ALERT_LOGGER = "engine.monitoring.alerts"

Notifier = Callable[["Alert"], None]
# How long WebhookNotifier.close() lets queued alerts go out before it abandons them. Stopping
# a monitored model waits this long at most for a slow or hanging webhook.
CLOSE_TIMEOUT_S = 2.0
# How long close() then waits for the worker to count an alert it was holding (no POST).
_SETTLE_S = 0.2


@dataclass(frozen=True)
class Alert:
    """A drift alert: ``status`` is "firing" or "resolved"."""

    status: str
    model: str
    version: str
    time_ms: int
    rows: int
    features: tuple[dict[str, Any], ...]  # name, kind, breaches and the metrics of each

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f["name"] for f in self.features)

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": "drift_alert",
            "status": self.status,
            "model": self.model,
            "version": self.version,
            "time_ms": self.time_ms,
            "window_rows": self.rows,
            "features": list(self.features),
        }

    @classmethod
    def from_window(cls, status: str, result: WindowResult) -> Alert:
        drifted = tuple(
            {"name": f.name, "kind": f.kind, "breaches": list(f.breaches), **f.metrics()}
            for f in result.features
            if f.breaches
        )
        return cls(status, result.model, result.version, result.ended_ms, result.rows, drifted)


class AlertManager:
    """Window listener deciding when to alert; sends to each notifier (see module doc)."""

    def __init__(
        self,
        notifiers: Iterable[Notifier] = (),
        *,
        repeat_s: float = 3600.0,
        clock: Clock | None = None,
    ) -> None:
        self._notifiers = list(notifiers)
        self._repeat_s = repeat_s
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._firing: dict[tuple[str, str], tuple[tuple[str, ...], float]] = {}
        self.sent: list[Alert] = []  # the last alerts sent, newest last (at most 100)

    def __call__(self, result: WindowResult) -> None:
        key = (result.model, result.version)
        drifted = result.drifted
        now = self._clock.monotonic_s()
        with self._lock:
            last = self._firing.get(key)
            if drifted:
                if last is not None and last[0] == drifted and now - last[1] < self._repeat_s:
                    return
                self._firing[key] = (drifted, now)
                alert = Alert.from_window("firing", result)
            else:
                if last is None:
                    return
                del self._firing[key]
                alert = Alert.from_window("resolved", result)
            self.sent = [*self.sent[-99:], alert]
        for notify in self._notifiers:
            try:
                notify(alert)
            except Exception:  # noqa: BLE001  one failing notifier must not silence the rest
                _log.exception("alert notifier %r failed", notify)


class LogNotifier:
    """Logs each alert as one JSON line (the message is the JSON object)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._logger = logger or logging.getLogger(ALERT_LOGGER)

    def __call__(self, alert: Alert) -> None:
        level = logging.WARNING if alert.status == "firing" else logging.INFO
        self._logger.log(
            level,
            json.dumps(alert.to_dict(), allow_nan=False, sort_keys=True),
            extra={"alert": alert.to_dict()},
        )


class WebhookNotifier:
    """POSTs alerts as JSON to ``url`` from a background thread (see module doc).

    Counters (read them any time): ``attempts`` (POSTs tried), ``delivered`` and ``failures``;
    ``delivered + failures`` is the number of alerts handed over once the notifier is closed.
    """

    def __init__(
        self,
        url: str,
        *,
        queue_capacity: int = 100,
        max_attempts: int = 5,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        timeout_s: float = 5.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise InvalidConfigError(f"webhook url must be http:// or https://; was {url!r}")
        if queue_capacity < 1 or max_attempts < 1:
            raise InvalidConfigError(
                f"queue_capacity and max_attempts must be >= 1; were "
                f"{queue_capacity} and {max_attempts}"
            )
        self.url = url
        self.max_attempts = max_attempts
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.timeout_s = timeout_s
        self._headers = {"Content-Type": "application/json", **(headers or {})}
        self._queue: queue.Queue[Alert | None] = queue.Queue(queue_capacity)
        self._abort = threading.Event()  # set by close() once it gives up on delivery
        self._lock = threading.Lock()
        self._closed = False  # guarded by _lock
        self._inflight: Alert | None = None  # guarded by _lock: the alert being POSTed
        self.delivered = 0
        self.failures = 0
        self.attempts = 0
        self._thread = threading.Thread(target=self._run, name="alert-webhook", daemon=True)
        self._thread.start()

    def __call__(self, alert: Alert) -> None:
        """Queue the alert; never blocks. A full queue, or a closed notifier, drops it and
        counts a failure."""
        with self._lock:
            if self._closed:
                self.failures += 1
                reason = "the notifier is closed"
            else:
                try:
                    self._queue.put_nowait(alert)
                    return
                except queue.Full:
                    self.failures += 1
                    reason = "the queue is full"
        _log.warning(
            "alert webhook dropped a %s alert for %s:%s: %s",
            alert.status,
            alert.model,
            alert.version,
            reason,
        )

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Deliver what is queued for at most ``timeout_s``, then stop.

        Returns within about ``timeout_s`` (plus at most 0.2 s to settle the counters) whatever
        the webhook does (it never waits for a POST in flight beyond that). Alerts still queued or in flight at the deadline are abandoned
        and counted in ``failures``; a POST in flight may still reach the webhook afterwards,
        from the daemon thread, but no longer changes the counters. Idempotent.
        """
        deadline = time.monotonic() + max(timeout_s, 0.0)
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            # After the queued alerts: the worker stops when it reaches it.
            self._queue.put(None, timeout=max(deadline - time.monotonic(), 0.0))
        except queue.Full:
            pass
        self._thread.join(max(deadline - time.monotonic(), 0.0))
        if not self._thread.is_alive():
            return
        self._abort.set()  # ends a retry backoff at once; the worker drops what it takes next
        abandoned = 0
        posting = False
        with self._lock:
            if self._inflight is not None:
                self._inflight = None
                abandoned += 1
                posting = True
            while True:
                try:
                    if self._queue.get_nowait() is not None:
                        abandoned += 1
                except queue.Empty:
                    break
            self.failures += abandoned
        try:
            self._queue.put_nowait(None)  # the queue is empty now: wakes a waiting worker
        except queue.Full:
            pass
        if not posting:
            # The worker may hold an alert it took off the queue just before the drain; it
            # counts that one itself, at once since abort is set. Wait for it, so the counters
            # are final when close returns (a caller sums them then).
            self._thread.join(_SETTLE_S)
        _log.error(
            "alert webhook closed after %.1f s with %d alert(s) undelivered (counted as failures)",
            timeout_s,
            abandoned,
        )

    def _run(self) -> None:
        while True:
            alert = self._queue.get()
            if alert is None:
                return
            with self._lock:
                if self._abort.is_set():  # close() gave up: abandoned, not sent
                    self.failures += 1
                    continue
                self._inflight = alert
            ok = self._deliver(alert)
            with self._lock:
                if self._inflight is not alert:
                    continue  # close() abandoned it and counted it already
                self._inflight = None
                if ok:
                    self.delivered += 1
                else:
                    self.failures += 1

    def _deliver(self, alert: Alert) -> bool:
        body = json.dumps(alert.to_dict(), allow_nan=False).encode()
        tried = 0
        for attempt in range(self.max_attempts):
            if self._abort.is_set():
                break
            with self._lock:
                self.attempts += 1
            tried += 1
            retry = self._post(body)
            if retry is None:
                return True
            if not retry or attempt + 1 == self.max_attempts:
                break
            delay = min(self.backoff_initial_s * 2**attempt, self.backoff_max_s)
            if self._abort.wait(delay):
                break
        _log.error(
            "alert webhook gave up on a %s alert for %s:%s after %d attempt(s)",
            alert.status,
            alert.model,
            alert.version,
            tried,
        )
        return False

    def _post(self, body: bytes) -> bool | None:
        """None when delivered; else whether the failure is worth a retry."""
        request = urllib.request.Request(self.url, data=body, headers=self._headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                response.read()
            return None
        except urllib.error.HTTPError as exc:
            exc.close()
            _log.warning("alert webhook answered HTTP %d", exc.code)
            return exc.code == 429 or exc.code >= 500
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            _log.warning("alert webhook unreachable: %s", exc)
            return True
