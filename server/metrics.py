"""Prometheus ``/metrics`` for the server: a collector that reads each served model's stats
snapshot (``engine.Model.stats()``, the core's lock-free counters) at scrape time.

Families (labels ``model`` and ``version``, values only from loaded models)::

    engine_requests_total{outcome}          counter    requests by outcome (ok, invalid, ...)
    engine_request_queue_seconds            histogram  submit -> start of the batch
    engine_request_compute_seconds          histogram  gather + run + scatter of the batch
    engine_request_duration_seconds         histogram  submit -> completion
    engine_batch_size                       histogram  rows per executed batch
    engine_queue_depth                      gauge      requests waiting now
    engine_requests_in_flight               gauge      requests submitted, not yet completed
    engine_inferred_rows_total              counter    rows of successful requests

Counters and histograms are per model version and never go down while the process runs: a
version reloaded in place, or unloaded and loaded again, is a new ``Model`` whose core counts
from zero, so the collector adds the final counts of the version's earlier ``Model`` objects
(read from them once they are closed; until then their live counts). Prometheus would read a
drop as a reset, and miss it entirely when the new counts exceed the old ones by the next
scrape. An unloaded version's counters and histograms stay, at their final counts, for
``UNLOADED_SERIES_S`` from the first scrape that finds it unloaded, so that every scraper reads
the increments made since its last scrape; then its series go (a load within that time carries
on from them, as one after it does). Gauges are the live model's only. A histogram's ``+Inf``
bucket (and so ``_count``) is the sum of its buckets: the core reads its total apart from its
buckets, without a lock, and a torn read must not make ``+Inf`` smaller than a finite bucket.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

from engine.monitoring.metric_names import UNLOADED_SERIES_S
from engine.stats import OUTCOMES, Histogram, ModelStats

log = logging.getLogger(__name__)

__all__ = ["BATCH_BUCKETS", "ServingCollector", "start_metrics_server"]

LABELS = ["model", "version"]
# Upper bounds of the batch size histogram (rows).
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

Source = Callable[[], Sequence[tuple[str, int, Any]]]  # -> [(name, version, engine.Model)]


_LATENCIES = ("queue", "compute", "total")


@dataclass
class _Counts:
    """The monotonic part of a ModelStats: request counts, rows, histogram buckets (per
    bucket, not cumulative, the last one +Inf; with their bounds) and sums, batch sizes."""

    requests: dict[str, int] = field(default_factory=dict)
    rows: int = 0
    bounds_us: dict[str, tuple[int, ...]] = field(default_factory=dict)
    buckets: dict[str, list[int]] = field(default_factory=dict)
    sums_us: dict[str, int] = field(default_factory=dict)
    batch_sizes: dict[int, int] = field(default_factory=dict)

    @classmethod
    def of(cls, stats: ModelStats) -> _Counts:
        hists: Mapping[str, Histogram] = {
            "queue": stats.queue, "compute": stats.compute, "total": stats.total}
        return cls(
            requests=dict(stats.requests), rows=stats.inferred_rows,
            bounds_us={k: tuple(h.bounds_us) for k, h in hists.items()},
            buckets={k: _bucket_counts(h) for k, h in hists.items()},
            sums_us={k: h.sum_us for k, h in hists.items()},
            batch_sizes=dict(stats.batch_sizes))

    def add(self, other: _Counts) -> _Counts:
        """The sum (a new object). Histograms with other bounds than ours are left out (the
        core's bounds are constants, so they never differ)."""
        out = _Counts(dict(self.requests), self.rows + other.rows, dict(self.bounds_us),
                      {k: list(v) for k, v in self.buckets.items()}, dict(self.sums_us),
                      dict(self.batch_sizes))
        for outcome, n in other.requests.items():
            out.requests[outcome] = out.requests.get(outcome, 0) + n
        for key, counts in other.buckets.items():
            if key not in out.buckets:
                out.bounds_us[key] = other.bounds_us[key]
                out.buckets[key] = list(counts)
                out.sums_us[key] = other.sums_us[key]
            elif out.bounds_us[key] == other.bounds_us[key]:
                out.buckets[key] = [a + b for a, b in zip(out.buckets[key], counts)]
                out.sums_us[key] += other.sums_us[key]
        for size, n in other.batch_sizes.items():
            out.batch_sizes[size] = out.batch_sizes.get(size, 0) + n
        return out


def _bucket_counts(h: Histogram) -> list[int]:
    """Per-bucket counts with the +Inf bucket last (``len(bounds_us) + 1`` entries)."""
    counts = [int(c) for c in h.counts[: len(h.bounds_us) + 1]]
    counts += [0] * (len(h.bounds_us) + 1 - len(counts))
    return counts


def _seconds_buckets(bounds_us: Sequence[int], counts: Sequence[int],
                     sum_us: int) -> tuple[list[tuple[str, float]], float]:
    cumulative, buckets = 0, []
    for bound_us, count in zip(bounds_us, counts):
        cumulative += count
        buckets.append((repr(bound_us / 1e6), float(cumulative)))
    # The sum of the buckets, not the core's total: see the module docstring.
    buckets.append(("+Inf", float(cumulative + sum(counts[len(bounds_us):]))))
    return buckets, sum_us / 1e6


def _batch_buckets(batch_sizes: Mapping[int, int]) -> tuple[list[tuple[str, float]], float]:
    buckets = []
    for bound in BATCH_BUCKETS:
        buckets.append((str(bound), float(sum(c for n, c in batch_sizes.items() if n <= bound))))
    buckets.append(("+Inf", float(sum(batch_sizes.values()))))
    total_rows = float(sum(n * c for n, c in batch_sizes.items()))
    return buckets, total_rows


class ServingCollector(Collector):
    """Reads the stats of every served model version at each scrape."""

    def __init__(self, source: Source, *, retired: Source | None = None,
                 unloaded_series_s: float = UNLOADED_SERIES_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._source = source
        # The models taken out of service since the last call: one served only between two
        # scrapes is never listed by ``source``, yet its counts belong to its version.
        self._take_retired = retired
        self._unloaded_series_s = unloaded_series_s
        self._clock = clock
        # When each version not listed at the last scrape was first seen missing.
        self._unlisted_since: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()  # scrapes may run concurrently (threaded HTTP server)
        # Per (name, version): the Model objects seen at the last scrape, those replaced or
        # unloaded since but not closed yet (still counting), and the final counts of the
        # closed ones. Model objects are never served again once closed.
        self._seen: dict[tuple[str, str], Any] = {}
        self._leaving: dict[tuple[str, str], list[Any]] = {}
        self._retired: dict[tuple[str, str], _Counts] = {}

    def _counts(self, listed: Sequence[tuple[str, int, Any]]) -> dict[tuple[str, str], _Counts]:
        """Counts of the earlier Model objects of each listed version (see the module doc)."""
        current = {(name, str(version)): model for name, version, model in listed}
        with self._lock:
            for name, version, model in self._take_retired() if self._take_retired else ():
                key = (name, str(version))
                if self._seen.get(key) is model or any(
                    m is model for m in self._leaving.get(key, ())
                ):
                    continue  # seen at a scrape: followed below as any other
                self._leaving.setdefault(key, []).append(model)
            for key, model in list(self._seen.items()):
                if current.get(key) is not model:
                    self._leaving.setdefault(key, []).append(model)
                    del self._seen[key]
            self._seen.update(current)
            now = self._clock()
            for key in set(self._leaving) | set(self._retired):
                if key in current:
                    self._unlisted_since.pop(key, None)
                else:
                    self._unlisted_since.setdefault(key, now)
            for key, model in current.items():  # listed again before it closed: live again
                if any(m is model for m in self._leaving.get(key, ())):
                    self._leaving[key] = [m for m in self._leaving[key] if m is not model]
            earlier: dict[tuple[str, str], _Counts] = {}
            for key in set(self._leaving) | set(self._retired):
                total = self._retired.get(key, _Counts())
                still = []
                for model in self._leaving.get(key, ()):
                    try:
                        counts = _Counts.of(model.stats())
                    except Exception:  # a scrape must not fail for a model that is gone
                        log.warning("could not read the last counts of %s:%s; they are left "
                                    "out of its counters", *key, exc_info=True)
                        continue
                    if getattr(model, "closed", True):
                        self._retired[key] = self._retired.get(key, _Counts()).add(counts)
                    else:
                        still.append(model)
                    total = total.add(counts)
                if still:
                    self._leaving[key] = still
                else:
                    self._leaving.pop(key, None)
                earlier[key] = total
        return earlier

    def _unloaded(self, listed: Sequence[tuple[str, int, Any]],
                  earlier: Mapping[tuple[str, str], _Counts]
                  ) -> list[tuple[tuple[str, str], _Counts]]:
        """The counts of versions unloaded less than ``unloaded_series_s`` ago, by label."""
        current = {(name, str(version)) for name, version, _ in listed}
        now = self._clock()
        with self._lock:
            return sorted(
                ((key, counts) for key, counts in earlier.items()
                 if key not in current
                 and now - self._unlisted_since.get(key, now) < self._unloaded_series_s),
                key=lambda item: item[0])

    def collect(self) -> Iterator[Any]:
        requests = CounterMetricFamily("engine_requests", "Requests by outcome.",
                                       labels=LABELS + ["outcome"])
        rows = CounterMetricFamily("engine_inferred_rows", "Rows of successful requests.",
                                   labels=LABELS)
        latency = {
            "queue": HistogramMetricFamily(
                "engine_request_queue_seconds", "Time from submit to the start of the batch.",
                labels=LABELS),
            "compute": HistogramMetricFamily(
                "engine_request_compute_seconds",
                "Gather, run and scatter time of the batch that ran the request.", labels=LABELS),
            "total": HistogramMetricFamily(
                "engine_request_duration_seconds", "Time from submit to completion.",
                labels=LABELS),
        }
        batch = HistogramMetricFamily("engine_batch_size", "Rows per executed batch.",
                                      labels=LABELS)
        depth = GaugeMetricFamily("engine_queue_depth", "Requests waiting in the queue.",
                                  labels=LABELS)
        in_flight = GaugeMetricFamily("engine_requests_in_flight",
                                      "Requests submitted and not yet completed.", labels=LABELS)
        listed = list(self._source())
        earlier = self._counts(listed)
        series: list[tuple[list[str], _Counts]] = []
        for name, version, model in listed:
            # A model closed since it was listed gives its final counts: one last scrape of
            # them loses no increment.
            stats: ModelStats = model.stats()
            labels = [name, str(version)]
            counts = _Counts.of(stats)
            before = earlier.get((name, str(version)))
            if before is not None:
                counts = counts.add(before)
            series.append((labels, counts))
            depth.add_metric(labels, stats.queue_depth)
            in_flight.add_metric(labels, stats.in_flight)
        series += [(list(key), counts) for key, counts in self._unloaded(listed, earlier)]
        for labels, counts in series:
            for outcome in OUTCOMES:
                requests.add_metric(labels + [outcome], counts.requests.get(outcome, 0))
            rows.add_metric(labels, counts.rows)
            for key in _LATENCIES:
                buckets, total = _seconds_buckets(
                    counts.bounds_us[key], counts.buckets[key], counts.sums_us[key])
                latency[key].add_metric(labels, buckets, total)
            buckets, total_rows = _batch_buckets(counts.batch_sizes)
            batch.add_metric(labels, buckets, total_rows)
        yield requests
        yield rows
        yield from latency.values()
        yield batch
        yield depth
        yield in_flight


def start_metrics_server(host: str, port: int, source: Source,
                         extra: Sequence[Collector] = (),
                         retired: Source | None = None) -> tuple[Any, int]:
    """Serve ``/metrics`` on ``host``:``port`` in a daemon thread, with the ``extra``
    collectors beside the per-model families; ``retired`` as ServingCollector takes it.
    Returns (server, bound port). Raises OSError when the port is taken."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServingCollector(source, retired=retired))
    for collector in extra:
        registry.register(collector)
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    server_class = type("_MetricsServer", (_ThreadingWSGIServer,), {"address_family": family})
    server = make_server(host, port, _only_metrics_path(make_wsgi_app(registry)), server_class,
                         handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server, int(server.server_address[1])


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a slow scraper never holds the process at exit


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log line per scrape on stderr."""


def _only_metrics_path(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """``app`` on ``/metrics`` only (a query string is fine); 404 elsewhere, so that a typo
    in a scrape config fails loudly instead of scraping the same page under any path."""

    def only(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"not found: metrics are served at /metrics\n"]
        return app(environ, start_response)

    return only
