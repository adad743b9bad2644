"""Drains the core's sampled requests into a :class:`PredictionLog`.

The core samples on the hot path (``core.set_sampling(rate, capacity)``: keep each request
with probability ``rate`` in a ring of ``capacity``, dropping when it is full) and hands the
samples over in batches (``core.take_samples(max_items)`` -> list of ``{"id", "inputs",
"outputs", "total_us", "timestamp_ms"}``); ``core.stats()["samples_dropped"]`` counts the
drops. A :class:`SamplePoller` thread takes batches every ``interval_s`` (at once again while
batches come back full) and queues them in the log, which does the writing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from engine.monitoring.prediction_log import PredictionLog

__all__ = ["SamplePoller", "SampleSource"]

_log = logging.getLogger(__name__)


class SampleSource(Protocol):
    def set_sampling(self, rate: float, capacity: int) -> None: ...

    def take_samples(self, max_items: int) -> Sequence[Mapping[str, Any]]: ...

    def stats(self) -> Mapping[str, Any]: ...


class SamplePoller:
    """Moves samples from the core to the log on a daemon thread."""

    def __init__(
        self,
        core: SampleSource,
        log: PredictionLog,
        *,
        capacity: int = 4096,
        max_items: int = 1024,
        interval_s: float = 0.5,
    ) -> None:
        self._core = core
        self._log = log
        self.capacity = capacity
        self.max_items = max_items
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll_once(self) -> int:
        """Take one batch of samples into the log; returns how many were taken."""
        samples = self._core.take_samples(self.max_items)
        for s in samples:
            self._log.record_sampled(
                s["inputs"],
                s["outputs"],
                latency_us=int(s["total_us"]),
                request_id=str(s["id"]),
                timestamp_ms=int(s["timestamp_ms"]),
            )
        dropped = self._core.stats().get("samples_dropped")
        if dropped is not None:
            self._log.set_core_dropped(int(dropped))
        return len(samples)

    def start(self) -> None:
        """Turn sampling on in the core at the log's rate and start draining."""
        self._core.set_sampling(self._log.config.sample_rate, self.capacity)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sample-poller", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Turn sampling off, stop the thread, take what the core still holds. The thread is
        stopped even when the core refuses to turn sampling off (that error is raised then,
        and the samples it holds are left to it)."""
        try:
            self._core.set_sampling(0.0, self.capacity)
        finally:
            self._stop.set()
            if self._thread is not None:
                self._thread.join(timeout_s)
                self._thread = None
        while self.poll_once() == self.max_items:
            pass

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                full = self.poll_once() == self.max_items
            except Exception:  # noqa: BLE001  logged; the poller thread must not die
                _log.exception("taking samples from the core failed")
                full = False
            if not full:
                self._stop.wait(self.interval_s)
