"""The report's figures, each rendered to PNG bytes with matplotlib's Agg canvas.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot, no global state), so they
can be drawn from any thread. Inputs are plain numpy arrays; the report gathers them.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np

__all__ = ["feature_png", "latency_png", "prediction_png", "psi_history_png", "requests_png"]

_REF, _LIVE = "#7f7f7f", "#1f77b4"


def _figure(width: float = 9.0, height: float = 3.6, bottom: float = 0.16) -> Any:
    from matplotlib.figure import Figure

    # Fixed margins: a layout engine would measure every label, several times slower.
    fig = Figure(figsize=(width, height), dpi=96)
    fig.subplots_adjust(left=0.08, right=0.92, top=0.9, bottom=bottom)
    return fig


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _times(ms: np.ndarray) -> list[datetime]:
    return [datetime.fromtimestamp(t / 1000, timezone.utc) for t in ms.tolist()]


def _time_axis(ax: Any) -> None:
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    locator = AutoDateLocator()  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    ax.set_xlabel("time (UTC)")


def latency_png(bucket_ms: np.ndarray, percentiles_ms: Mapping[str, np.ndarray]) -> bytes:
    """Latency percentiles (lines) per time bucket."""
    fig = _figure()
    ax = fig.add_subplot()
    for label, values in percentiles_ms.items():
        ax.plot(_times(bucket_ms), values, marker="o", markersize=3, label=label)
    ax.set_ylabel("latency (ms)")
    ax.set_title("Request latency percentiles (sampled requests)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    _time_axis(ax)
    return _png(fig)


def requests_png(
    bucket_ms: np.ndarray, requests_per_s: np.ndarray, errors_per_s: np.ndarray | None, note: str
) -> bytes:
    """Request rate and error rate per time bucket."""
    fig = _figure()
    ax = fig.add_subplot()
    times = _times(bucket_ms)
    ax.plot(times, requests_per_s, color=_LIVE, marker="o", markersize=3, label="requests/s")
    ax.set_ylabel("requests/s")
    ax.set_ylim(bottom=0, top=max(1e-9, float(np.max(requests_per_s, initial=0))) * 1.2)
    if errors_per_s is not None:
        ax2 = ax.twinx()
        ax2.plot(times, errors_per_s, color="#d62728", marker="x", markersize=4, label="errors/s")
        ax2.set_ylabel("errors/s", color="#d62728")
        ax2.set_ylim(bottom=0, top=max(1e-9, float(np.max(errors_per_s, initial=0))) * 1.2)
        ax2.legend(loc="upper right")
    ax.set_title(f"Requests and errors ({note})")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    _time_axis(ax)
    return _png(fig)


def psi_history_png(
    window_ms: np.ndarray, psi_by_feature: Mapping[str, np.ndarray], threshold: float | None
) -> bytes:
    """PSI per window, one line per feature."""
    fig = _figure()
    ax = fig.add_subplot()
    times = _times(window_ms)
    for name, values in psi_by_feature.items():
        ax.plot(times, values, marker="o", markersize=3, label=name)
    if threshold is not None:
        ax.axhline(threshold, color="#d62728", linestyle="--", label=f"threshold {threshold:g}")
    ax.set_ylabel("PSI")
    ax.set_ylim(bottom=0)
    ax.set_title("Drift (PSI) per window")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize="small", ncol=2)
    _time_axis(ax)
    return _png(fig)


def feature_png(
    name: str,
    labels: Sequence[str],
    reference: np.ndarray,
    period: np.ndarray,
    last: np.ndarray,
    subtitle: str,
) -> bytes:
    """Reference, whole-period and last-window proportions per slot of one feature."""
    fig = _figure(9.0, 3.4, bottom=0.3)
    ax = fig.add_subplot()
    x = np.arange(len(labels))
    ax.bar(x - 0.27, reference, width=0.27, color=_REF, label="reference")
    ax.bar(x, period, width=0.27, color="#aec7e8", label="live, whole period")
    ax.bar(x + 0.27, last, width=0.27, color=_LIVE, label="live, last window")
    many = len(labels) > 6
    ax.set_xticks(
        x, labels, rotation=30 if many else 0, ha="right" if many else "center", fontsize="small"
    )
    ax.set_ylabel("share of rows")
    ax.set_title(f"{name}: {subtitle}")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small")
    return _png(fig)


def prediction_png(
    name: str,
    values: np.ndarray | None,
    categories: Sequence[str] | None,
    counts: np.ndarray | None,
) -> bytes:
    """Distribution of one output: a histogram per column (numeric) or bar chart (labels).

    ``values`` is ``[rows, columns]`` (numeric); ``categories``/``counts`` the top labels.
    """
    fig = _figure(9.0, 3.2)
    ax = fig.add_subplot()
    if values is not None:
        columns = values.shape[1]
        finite = values[np.isfinite(values).all(axis=1)] if values.size else values
        for c in range(columns):
            ax.hist(
                finite[:, c],
                bins=40,
                alpha=0.55 if columns > 1 else 0.9,
                label=f"column {c}" if columns > 1 else None,
            )
        ax.set_xlabel("predicted value")
        if columns > 1:
            ax.legend(fontsize="small")
    else:
        assert categories is not None and counts is not None
        x = np.arange(len(categories))
        ax.bar(x, counts, color=_LIVE)
        ax.set_xticks(x, categories, rotation=30, ha="right", fontsize="small")
    ax.set_ylabel("sampled requests' rows")
    ax.set_title(f"Prediction distribution: {name}")
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)
