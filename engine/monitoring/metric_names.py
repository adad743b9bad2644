"""Prometheus metric names and label names the engine exports, written once.

The server's ``/metrics`` endpoint, the drift collector and ``engine monitor rules`` all use
these constants, so a rule can never name a metric the server does not export.

Request metrics (exported by ``engine.server.metrics`` from ``Model.stats()``; the names
here are the server's):

``engine_requests_total{model,version,outcome}``           counter; outcome from engine.stats.OUTCOMES
``engine_request_queue_seconds{model,version}``            histogram, submit -> batch start
``engine_request_compute_seconds{model,version}``          histogram, gather + run + scatter
``engine_request_duration_seconds{model,version}``         histogram, submit -> completion
``engine_batch_size{model,version}``                       histogram of rows per ORT run
``engine_queue_depth{model,version}``                      gauge
``engine_requests_in_flight{model,version}``               gauge
``engine_inferred_rows_total{model,version}``              counter of rows answered

Monitoring metrics (exported by :class:`engine.monitoring.DriftCollector`):

``engine_drift_score{model,version,feature,metric}``       gauge; metric in DRIFT_METRICS
``engine_drift_alert{model,version,feature}``              gauge, 1 while the feature breaches
``engine_drift_window_rows{model,version}``                gauge, rows in the last window
``engine_drift_windows_total{model,version}``              counter of evaluated windows
``engine_prediction_log_records_total{model,version}``     counter of records in complete Parquet
                                                           files (counted when a file is closed)
``engine_prediction_log_dropped_total{model,version,where}``  counter of sampled records not
                                                           persisted; where = "writer" (queue
                                                           full) | "core" (sampler ring full) |
                                                           "write_error" (the file failed)
``engine_prediction_log_orphans_removed_total{model,version}``  counter of unreadable
                                                           ``*.parquet.partial`` files of writers
                                                           that died, removed by this version's
                                                           writer when it started
``engine_alert_webhook_failures_total``                    counter of alerts never delivered
"""

from __future__ import annotations

__all__ = [
    "ALERT_WEBHOOK_FAILURES_TOTAL",
    "BATCH_SIZE",
    "DRIFT_ALERT",
    "DRIFT_METRICS",
    "DRIFT_SCORE",
    "DRIFT_WINDOWS_TOTAL",
    "DRIFT_WINDOW_ROWS",
    "ERROR_OUTCOMES",
    "INFERRED_ROWS_TOTAL",
    "INFLIGHT_REQUESTS",
    "LABEL_FEATURE",
    "LABEL_METRIC",
    "LABEL_MODEL",
    "LABEL_OUTCOME",
    "LABEL_VERSION",
    "PREDICTION_LOG_DROPPED_TOTAL",
    "PREDICTION_LOG_ORPHANS_REMOVED_TOTAL",
    "PREDICTION_LOG_RECORDS_TOTAL",
    "QUEUE_DEPTH",
    "REQUESTS_TOTAL",
    "REQUEST_COMPUTE_SECONDS",
    "REQUEST_DURATION_SECONDS",
    "REQUEST_QUEUE_SECONDS",
    "UNLOADED_SERIES_S",
]

REQUESTS_TOTAL = "engine_requests_total"
REQUEST_DURATION_SECONDS = "engine_request_duration_seconds"
BATCH_SIZE = "engine_batch_size"
QUEUE_DEPTH = "engine_queue_depth"
REQUEST_QUEUE_SECONDS = "engine_request_queue_seconds"
REQUEST_COMPUTE_SECONDS = "engine_request_compute_seconds"
INFLIGHT_REQUESTS = "engine_requests_in_flight"
INFERRED_ROWS_TOTAL = "engine_inferred_rows_total"

DRIFT_SCORE = "engine_drift_score"
DRIFT_ALERT = "engine_drift_alert"
DRIFT_WINDOW_ROWS = "engine_drift_window_rows"
DRIFT_WINDOWS_TOTAL = "engine_drift_windows_total"
PREDICTION_LOG_RECORDS_TOTAL = "engine_prediction_log_records_total"
PREDICTION_LOG_DROPPED_TOTAL = "engine_prediction_log_dropped_total"
PREDICTION_LOG_ORPHANS_REMOVED_TOTAL = "engine_prediction_log_orphans_removed_total"

# How long an unloaded version's counters (and counter-like histograms) are still exported, at
# their final values: several scrapes at any usual interval (15 s to 2 min), so that no scraper
# misses what was counted after its last scrape. Gauges go at once.
UNLOADED_SERIES_S = 600.0
ALERT_WEBHOOK_FAILURES_TOTAL = "engine_alert_webhook_failures_total"

LABEL_MODEL = "model"
LABEL_VERSION = "version"
LABEL_OUTCOME = "outcome"
LABEL_FEATURE = "feature"
LABEL_METRIC = "metric"

# Outcomes (engine.stats.OUTCOMES) that count as server-side errors in the error-rate rule;
# "invalid" and "cancelled" are the client's doing and stay out of it.
ERROR_OUTCOMES = ("failed", "unavailable", "overloaded", "expired")
# Values of the `metric` label of DRIFT_SCORE.
DRIFT_METRICS = ("psi", "ks", "chi2", "chi2_pvalue")
