"""Prometheus alerting rules for the metrics the engine exports, as YAML text.

``engine monitor rules`` prints :func:`alerting_rules`; load the output with
``rule_files:`` in prometheus.yml. Metric names come from :mod:`engine.monitoring.metric_names`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from engine.errors import InvalidConfigError
from engine.monitoring import metric_names as n
from engine.monitoring.monitor import DriftThresholds

__all__ = ["RuleSettings", "alerting_rules"]


@dataclass(frozen=True)
class RuleSettings:
    """Thresholds of the generated rules."""

    drift: DriftThresholds = field(default_factory=DriftThresholds)
    error_ratio: float = 0.05  # share of requests failing server-side, over rate_window
    latency_p99_s: float = 0.5  # p99 of total request duration
    queue_depth: int = 1000
    rate_window: str = "5m"
    for_duration: str = "10m"

    def __post_init__(self) -> None:
        if not 0 < self.error_ratio < 1:
            raise InvalidConfigError(f"error_ratio must be in (0, 1); was {self.error_ratio}")
        if not self.latency_p99_s > 0:
            raise InvalidConfigError(f"latency_p99_s must be > 0; was {self.latency_p99_s}")
        if self.queue_depth < 1:
            raise InvalidConfigError(f"queue_depth must be >= 1; was {self.queue_depth}")


def _rules(s: RuleSettings) -> list[dict[str, str]]:
    w, mv = s.rate_window, f"{n.LABEL_MODEL}, {n.LABEL_VERSION}"
    errors = "|".join(n.ERROR_OUTCOMES)
    rules = []
    drift_tests = (
        ("PSI", "psi", ">", s.drift.psi, "PSI"),
        ("KS", "ks", ">", s.drift.ks, "KS distance"),
        ("ChiSquare", "chi2_pvalue", "<", s.drift.chi2_pvalue, "chi-square p-value"),
    )
    for suffix, metric, op, threshold, label in drift_tests:
        if threshold is None:
            continue
        rules.append(
            {
                "alert": f"EngineFeatureDrift{suffix}",
                "expr": f'{n.DRIFT_SCORE}{{{n.LABEL_METRIC}="{metric}"}} {op} {threshold:g}',
                "for": s.for_duration,
                "severity": "warning",
                "summary": f"{label} of feature {{{{ $labels.feature }}}} of "
                f"{{{{ $labels.model }}}}:{{{{ $labels.version }}}} is "
                f"{{{{ $value }}}} ({op} {threshold:g})",
            }
        )
    rules += [
        {
            "alert": "EngineHighErrorRatio",
            "expr": f'sum by ({mv}) (rate({n.REQUESTS_TOTAL}{{{n.LABEL_OUTCOME}=~"{errors}"}}[{w}]))'
            f" / sum by ({mv}) (rate({n.REQUESTS_TOTAL}[{w}])) > {s.error_ratio:g}",
            "for": "5m",
            "severity": "critical",
            "summary": "{{ $labels.model }}:{{ $labels.version }} fails {{ $value }} of its "
            "requests",
        },
        {
            "alert": "EngineHighLatencyP99",
            "expr": f"histogram_quantile(0.99, sum by ({mv}, le) "
            f"(rate({n.REQUEST_DURATION_SECONDS}_bucket[{w}])))"
            f" > {s.latency_p99_s:g}",
            "for": "5m",
            "severity": "warning",
            "summary": "p99 latency of {{ $labels.model }}:{{ $labels.version }} is {{ $value }}s",
        },
        {
            "alert": "EngineQueueBacklog",
            "expr": f"max by ({mv}) ({n.QUEUE_DEPTH}) > {s.queue_depth}",
            "for": "5m",
            "severity": "warning",
            "summary": "{{ $value }} requests queued for {{ $labels.model }}:{{ $labels.version }}",
        },
        {
            "alert": "EnginePredictionLogDropping",
            "expr": f"sum by ({mv}) (rate({n.PREDICTION_LOG_DROPPED_TOTAL}[{w}])) > 0",
            "for": "15m",
            "severity": "info",
            "summary": "sampled prediction logs of {{ $labels.model }}:{{ $labels.version }} are "
            "being dropped",
        },
        {
            "alert": "EngineAlertWebhookFailing",
            "expr": f"increase({n.ALERT_WEBHOOK_FAILURES_TOTAL}[1h]) > 0",
            "for": "0m",
            "severity": "warning",
            "summary": "drift alerts could not be delivered to the webhook",
        },
    ]
    return rules


def alerting_rules(settings: RuleSettings | None = None) -> str:
    """The rules file (YAML). Strings are written as JSON strings, which YAML reads as is."""
    lines = ["groups:", "  - name: engine", "    rules:"]
    for rule in _rules(settings or RuleSettings()):
        lines += [
            f"      - alert: {rule['alert']}",
            f"        expr: {json.dumps(rule['expr'])}",
            f"        for: {rule['for']}",
            "        labels:",
            f"          severity: {rule['severity']}",
            "        annotations:",
            f"          summary: {json.dumps(rule['summary'])}",
        ]
    return "\n".join(lines) + "\n"
