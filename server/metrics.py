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
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

from engine.stats import OUTCOMES, Histogram, ModelStats

__all__ = ["BATCH_BUCKETS", "ServingCollector", "start_metrics_server"]

LABELS = ["model", "version"]
# Upper bounds of the batch size histogram (rows).
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

Source = Callable[[], Sequence[tuple[str, int, Any]]]  # -> [(name, version, engine.Model)]


def _seconds_buckets(h: Histogram) -> tuple[list[tuple[str, float]], float]:
    cumulative, buckets = 0, []
    for bound_us, count in zip(h.bounds_us, h.counts):
        cumulative += count
        buckets.append((repr(bound_us / 1e6), float(cumulative)))
    buckets.append(("+Inf", float(h.count)))
    return buckets, h.sum_us / 1e6


def _batch_buckets(stats: ModelStats) -> tuple[list[tuple[str, float]], float]:
    buckets = []
    for bound in BATCH_BUCKETS:
        buckets.append((str(bound), float(sum(c for n, c in stats.batch_sizes.items() if n <= bound))))
    buckets.append(("+Inf", float(sum(stats.batch_sizes.values()))))
    total_rows = float(sum(n * c for n, c in stats.batch_sizes.items()))
    return buckets, total_rows


class ServingCollector(Collector):
    """Reads the stats of every served model version at each scrape."""

    def __init__(self, source: Source) -> None:
        self._source = source

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
        for name, version, model in self._source():
            # A model closed since it was listed gives its final counts: one last scrape of
            # them loses no increment.
            stats: ModelStats = model.stats()
            labels = [name, str(version)]
            for outcome in OUTCOMES:
                requests.add_metric(labels + [outcome], stats.requests.get(outcome, 0))
            rows.add_metric(labels, stats.inferred_rows)
            for key, hist in (("queue", stats.queue), ("compute", stats.compute),
                              ("total", stats.total)):
                buckets, total = _seconds_buckets(hist)
                latency[key].add_metric(labels, buckets, total)
            buckets, total_rows = _batch_buckets(stats)
            batch.add_metric(labels, buckets, total_rows)
            depth.add_metric(labels, stats.queue_depth)
            in_flight.add_metric(labels, stats.in_flight)
        yield requests
        yield rows
        yield from latency.values()
        yield batch
        yield depth
        yield in_flight


def start_metrics_server(host: str, port: int, source: Source,
                         extra: Sequence[Collector] = ()) -> tuple[Any, int]:
    """Serve ``/metrics`` on ``host``:``port`` in a daemon thread, with the ``extra``
    collectors beside the per-model families. Returns (server, bound port). Raises OSError when
    the port is taken."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServingCollector(source))
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
