"""Monitoring: drift against the reference profile, alerts, sampled prediction logs, reports.

One module per job:

- :mod:`.attach`          one call to monitor a served model version (the server's entry)
- :mod:`.bins`            the drift-bin contract with the core and its numpy reference
- :mod:`.reference`       training profile -> bins and reference proportions
- :mod:`.statistics`      PSI, KS and chi-square from binned counts
- :mod:`.monitor`         windows of live counts, evaluated on a background thread
- :mod:`.collector`       Prometheus export of drift and prediction-log counters
- :mod:`.alerts`          when to alert; JSON log line and webhook notifiers
- :mod:`.rules`           Prometheus alerting rules (``engine monitor rules``)
- :mod:`.history`         the drift history file the report reads
- :mod:`.prediction_log`  sampled request records to rotated Parquet files (pyarrow)
- :mod:`.sampler`         drains the core's sampled requests into a prediction log
- :mod:`.report`          the HTML report (``engine monitor report``; matplotlib)
- :mod:`.logging`         JSON logs with request ids
- :mod:`.metric_names`    every exported metric name, for the server to import
- :mod:`.paths`           where logs and history live under ``ENGINE_HOME``

pyarrow and matplotlib (the ``monitor`` extra) are imported only by the modules that use them.
"""

from __future__ import annotations

from engine.monitoring.alerts import Alert, AlertManager, LogNotifier, WebhookNotifier
from engine.monitoring.attach import ModelMonitoring, monitor_model
from engine.monitoring.bins import FeatureBins, NumpyDriftCounter, bin_counts, slot_labels
from engine.monitoring.collector import DriftCollector
from engine.monitoring.history import DriftHistory, read_history
from engine.monitoring.monitor import (
    DriftMonitor,
    DriftThresholds,
    FeatureDrift,
    MonitorConfig,
    WindowResult,
)
from engine.monitoring.prediction_log import (
    PredictionLog,
    PredictionLogConfig,
    read_prediction_logs,
    tensor_values,
)
from engine.monitoring.reference import (
    DriftReference,
    drift_reference,
    drift_reference_for_version,
    features_from_profile,
    reference_proportions,
)
from engine.monitoring.rules import RuleSettings, alerting_rules
from engine.monitoring.sampler import SamplePoller

__all__ = [
    "Alert",
    "AlertManager",
    "DriftCollector",
    "DriftHistory",
    "DriftMonitor",
    "DriftReference",
    "DriftThresholds",
    "FeatureBins",
    "FeatureDrift",
    "LogNotifier",
    "ModelMonitoring",
    "MonitorConfig",
    "NumpyDriftCounter",
    "PredictionLog",
    "PredictionLogConfig",
    "RuleSettings",
    "SamplePoller",
    "WebhookNotifier",
    "WindowResult",
    "alerting_rules",
    "bin_counts",
    "drift_reference",
    "drift_reference_for_version",
    "features_from_profile",
    "monitor_model",
    "read_history",
    "read_prediction_logs",
    "reference_proportions",
    "slot_labels",
    "tensor_values",
]
