"""Prometheus alerting rules for the metrics the engine exports, as YAML text.

``engine monitor rules`` prints :func:`alerting_rules`; load the output with
``rule_files:`` in prometheus.yml. Metric names come from :mod:`engine.monitoring.metric_names`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

from engine.errors import InvalidConfigError
from engine.monitoring import metric_names as n
from engine.monitoring.monitor import DriftThresholds

__all__ = ["RuleSettings", "alerting_rules"]

# Prometheus's duration grammar (prometheus/common model.ParseDuration): integer amounts of
# y, w, d, h, m, s, ms, each at most once, largest first, no spaces; "0" alone is allowed.
_DURATION = re.compile(
    r"(?:([0-9]+)y)?(?:([0-9]+)w)?(?:([0-9]+)d)?(?:([0-9]+)h)?"
    r"(?:([0-9]+)m)?(?:([0-9]+)s)?(?:([0-9]+)ms)?"
)
_UNIT_MS = (365 * 86_400_000, 7 * 86_400_000, 86_400_000, 3_600_000, 60_000, 1000, 1)
_MAX_DURATION_MS = (2**63 - 1) // 1_000_000  # Go's time.Duration: int64 nanoseconds


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
        if not (math.isfinite(self.latency_p99_s) and self.latency_p99_s > 0):
            raise InvalidConfigError(
                f"latency_p99_s must be finite and > 0; was {self.latency_p99_s}"
            )
        if self.queue_depth < 1:
            raise InvalidConfigError(f"queue_depth must be >= 1; was {self.queue_depth}")
        # Both are written into the YAML as they are: only the grammar keeps them one token.
        _check_duration("rate_window", self.rate_window)
        _check_duration("for_duration", self.for_duration)


def _check_duration(name: str, text: object) -> None:
    if text == "0":
        return
    match = _DURATION.fullmatch(text) if isinstance(text, str) else None
    if not text or match is None:
        raise InvalidConfigError(
            f"{name} must be a Prometheus duration such as 30s, 10m, 1h or 1h30m (units y, w, "
            f"d, h, m, s, ms, largest first); was {text!r}"
        )
    total_ms = sum(int(amount) * unit for amount, unit in zip(match.groups(), _UNIT_MS) if amount)
    if total_ms > _MAX_DURATION_MS:
        raise InvalidConfigError(f"{name} is longer than Prometheus allows (292y); was {text!r}")


def _number(value: float) -> str:
    """A finite threshold as PromQL reads it back exactly: the shortest round-trip form
    (``0.25``, ``1e-05``), never rounded (the monitor compares with the exact value)."""
    return repr(float(value))


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
                "expr": f'{n.DRIFT_SCORE}{{{n.LABEL_METRIC}="{metric}"}} {op} {_number(threshold)}',
                "for": s.for_duration,
                "severity": "warning",
                "summary": f"{label} of feature {{{{ $labels.feature }}}} of "
                f"{{{{ $labels.model }}}}:{{{{ $labels.version }}}} is "
                f"{{{{ $value }}}} ({op} {_number(threshold)})",
            }
        )
    rules += [
        {
            "alert": "EngineHighErrorRatio",
            "expr": f'sum by ({mv}) (rate({n.REQUESTS_TOTAL}{{{n.LABEL_OUTCOME}=~"{errors}"}}[{w}]))'
            f" / sum by ({mv}) (rate({n.REQUESTS_TOTAL}[{w}])) > {_number(s.error_ratio)}",
            "for": "5m",
            "severity": "critical",
            "summary": "{{ $labels.model }}:{{ $labels.version }} fails {{ $value }} of its "
            "requests",
        },
        {
            "alert": "EngineHighLatencyP99",
            "expr": f"histogram_quantile(0.99, sum by ({mv}, le) "
            f"(rate({n.REQUEST_DURATION_SECONDS}_bucket[{w}])))"
            f" > {_number(s.latency_p99_s)}",
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
