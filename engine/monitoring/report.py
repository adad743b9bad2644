"""``engine monitor report``: one self-contained HTML file of a model's monitoring data.

Sources: the Parquet prediction logs (:mod:`engine.monitoring.prediction_log`) for latency,
request counts and predictions, and the drift history (:mod:`engine.monitoring.history`)
for drift and, when it recorded them, request counts by outcome. Plots are PNGs embedded as
``data:`` URIs, so the file opens anywhere without its neighbours. Sections without data say
so instead of showing an empty plot.

Only complete log files can be read: the summary says how many files are still open
(``*.parquet.partial``: a running server closes each within its rotation age, 5 minutes by
default; one left by a server that was killed stays unreadable until a writer starting in
the folder, or ``--remove-orphans``, removes it) and which files were skipped as not valid
Parquet. :attr:`Report.notes` repeats both for the command line.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import InvalidConfigError
from engine.monitoring import plots
from engine.monitoring.history import read_history
from engine.monitoring.metric_names import ERROR_OUTCOMES
from engine.monitoring.prediction_log import LogFolder, scan_prediction_logs, tensor_values

__all__ = ["Report", "build_report", "parse_since", "write_report"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now_ms: int) -> int:
    """``90m``, ``24h``, ``7d`` (ago) or an ISO 8601 time (UTC if no zone) -> epoch ms."""
    match = _DURATION.match(text)
    if match:
        return now_ms - int(float(match[1]) * _UNIT_S[match[2]] * 1000)
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidConfigError(
            f"--since must be a duration like 90m, 24h, 7d or an ISO time; was {text!r}"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return int(when.timestamp() * 1000)


@dataclass
class Report:
    """The rendered report: HTML text and the PNGs in it (for tests and callers)."""

    html: str
    images: list[bytes] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the reader of the page should know
    logged_requests: int = 0  # sampled requests in the period's readable prediction logs
    drift_windows: int = 0  # drift history lines in the period

    @property
    def recorded_nothing(self) -> bool:
        """Nothing was recorded in the period: no logged request, no drift window, and no
        log file that could not be read (which :attr:`notes` would name). The page has
        nothing to show but that."""
        return self.logged_requests == 0 and self.drift_windows == 0 and not self.notes


@dataclass
class _Builder:
    title: str
    sections: list[str] = field(default_factory=list)
    images: list[bytes] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def section(self, heading: str, body: str) -> None:
        self.sections.append(f"<section><h2>{html.escape(heading)}</h2>\n{body}</section>")

    def image(self, png: bytes, alt: str) -> str:
        self.images.append(png)
        data = base64.b64encode(png).decode("ascii")
        return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'

    def render(self, *, logged_requests: int, drift_windows: int) -> Report:
        page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(self.title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 960px; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0; }}
td, th {{ border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; }}
img {{ max-width: 100%; display: block; margin: 0.5em 0; }}
.drift {{ color: #b00; font-weight: bold; }} .note {{ color: #666; }}
</style></head><body>
<h1>{html.escape(self.title)}</h1>
{"".join(self.sections)}
</body></html>
"""
        return Report(page, self.images, self.notes, logged_requests, drift_windows)


def build_report(
    model: str,
    *,
    logs_dir: str | Path,
    monitoring_dir: str | Path,
    version: str | None = None,
    since_ms: int | None = None,
    now_ms: int | None = None,
    max_features: int = 24,
) -> Report:
    """Gather the data and render the report (see the module docstring)."""
    now_ms = now_ms if now_ms is not None else int(datetime.now(timezone.utc).timestamp() * 1000)
    folder = (
        scan_prediction_logs(logs_dir, since_ms=since_ms, version=version)
        if Path(logs_dir).is_dir()
        else LogFolder(None, (), (), ())
    )
    logs = folder.table
    history = list(read_history(monitoring_dir, since_ms=since_ms, version=version))
    label = f"{model}:{version}" if version else model
    b = _Builder(f"Monitoring report: {label}")
    b.notes.extend(_log_notes(folder))
    b.section(
        "Summary",
        _summary(label, logs, history, since_ms, now_ms, logs_dir, monitoring_dir)
        + "".join(_note(n) for n in b.notes),
    )
    b.section("Latency", _latency(b, logs))
    b.section("Requests and errors", _requests(b, logs, history))
    b.section("Drift", _drift(b, history, max_features))
    b.section("Predictions", _predictions(b, logs))
    return b.render(
        logged_requests=0 if logs is None else logs.num_rows, drift_windows=len(history)
    )


def write_report(out: str | Path, model: str, *, write_empty: bool = True, **kwargs: Any) -> Report:
    """Build the report and write it to ``out`` (parent folders created). With
    ``write_empty=False`` a report that :attr:`~Report.recorded_nothing` is returned
    without writing anything (the caller says so instead)."""
    path = Path(out)
    if path.is_dir():  # checked first: building the report reads every log
        raise InvalidConfigError(
            f"report output {str(path)!r} is a folder; give the HTML file to write, "
            f"e.g. {str(path / 'report.html')!r}"
        )
    report = build_report(model, **kwargs)
    if report.recorded_nothing and not write_empty:
        return report
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report.html, encoding="utf-8")
    return report


# --- sections -------------------------------------------------------------------------------


def _when(ms: int | None) -> str:
    if ms is None:
        return "the beginning"
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _table(rows: Sequence[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def _summary(
    label: str,
    logs: Any,
    history: list[dict[str, Any]],
    since_ms: int | None,
    now_ms: int,
    logs_dir: str | Path,
    monitoring_dir: str | Path,
) -> str:
    rows: list[tuple[str, Any]] = [
        ("model", html.escape(label)),
        ("period", f"{_when(since_ms)} to {_when(now_ms)}"),
        ("sampled requests logged", 0 if logs is None else logs.num_rows),
        ("drift windows", len(history)),
        ("prediction logs", html.escape(str(logs_dir))),
        ("drift history", html.escape(str(monitoring_dir))),
    ]
    if history:
        drifted = history[-1].get("drifted") or []
        text = ", ".join(html.escape(str(d)) for d in drifted) or "none"
        rows.append(
            (
                "drifted in the last window",
                f'<span class="drift">{text}</span>' if drifted else text,
            )
        )
    return _table(rows)


def _log_notes(folder: LogFolder) -> list[str]:
    """Log files the report could not use, said in words."""
    notes = []
    if folder.open_files:
        newest = max(_modified_ms(p) for p in folder.open_files)
        notes.append(
            f"{len(folder.open_files)} prediction log file(s) are not readable yet "
            f"(*.parquet.partial, newest written {_when(newest)}): a running server closes "
            "each file within its rotation age (5 minutes by default), and its records then "
            "appear here; a file left by a server that was killed stays unreadable, and once "
            "nothing has written to it for two hours it is removed when a server starts "
            "writing in this folder (or by this command with --remove-orphans)."
        )
    if folder.skipped:
        names = ", ".join(f"{p.name} ({reason})" for p, reason in folder.skipped)
        notes.append(
            f"{len(folder.skipped)} prediction log file(s) skipped, not valid Parquet: {names}."
        )
    return notes


def _modified_ms(path: Path) -> int:
    try:
        return int(path.stat().st_mtime * 1000)
    except OSError:  # closed and renamed meanwhile
        return 0


def _time_buckets(ms: np.ndarray, target: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Bucket index per timestamp and each bucket's centre, about ``target`` buckets."""
    lo, hi = int(ms.min()), int(ms.max())
    count = max(1, min(target, ms.size // 10 or 1))
    edges = np.linspace(lo, hi + 1, count + 1)
    index = np.clip(np.searchsorted(edges, ms, side="right") - 1, 0, count - 1)
    return index, (edges[:-1] + edges[1:]) / 2


def _timestamps_ms(logs: Any) -> np.ndarray:
    return np.asarray(logs["timestamp"].cast("int64").to_numpy(), dtype=np.int64)


def _latency(b: _Builder, logs: Any) -> str:
    if logs is None or logs.num_rows == 0:
        return _note("No prediction logs in this period.")
    ms = _timestamps_ms(logs)
    latency_ms = logs["latency_us"].to_numpy().astype(np.float64) / 1000.0
    index, centres = _time_buckets(ms)
    present = np.unique(index)
    series = {
        f"p{q}": np.array([np.percentile(latency_ms[index == i], q) for i in present])
        for q in (50, 95, 99)
    }
    overall = ", ".join(f"p{q} {np.percentile(latency_ms, q):.3g} ms" for q in (50, 95, 99))
    png = plots.latency_png(centres[present], series)
    return b.image(png, "latency percentiles over time") + _note(
        f"Over the period: {overall} ({latency_ms.size} sampled requests)."
    )


def _requests(b: _Builder, logs: Any, history: list[dict[str, Any]]) -> str:
    intervals = _request_intervals(history)
    if intervals:
        centres, total_rate, error_rate = _summed_rates(intervals)
        png = plots.requests_png(
            centres, total_rate, error_rate, "all requests, from the core's counters"
        )
        d_total = sum(i[2] for i in intervals)
        d_err = sum(i[3] for i in intervals)
        return b.image(png, "requests and errors over time") + _note(
            f"{int(d_total)} requests, {int(d_err)} server-side errors "
            f"({', '.join(ERROR_OUTCOMES)}) between the first and last drift window."
        )
    if logs is None or logs.num_rows == 0:
        return _note(
            "No request counts: neither prediction logs nor drift history with "
            "request counts in this period."
        )
    rate = _sample_rate(logs)
    ms = _timestamps_ms(logs)
    index, centres = _time_buckets(ms)
    width_s = max((centres[1] - centres[0]) / 1000.0 if centres.size > 1 else 1.0, 1e-3)
    sampled = np.bincount(index, minlength=centres.size).astype(np.float64)
    png = plots.requests_png(
        centres,
        sampled / max(rate, 1e-12) / width_s,
        None,
        f"estimated from logs sampled at {rate:g}",
    )
    return b.image(png, "requests over time") + _note(
        "Errors are not in the prediction logs (only answered requests are sampled) and the "
        "drift history has no request counts for this period."
    )


def _request_intervals(
    history: list[dict[str, Any]],
) -> list[tuple[float, float, float, float]]:
    """``(start_ms, end_ms, requests, errors)`` between consecutive windows of each version.

    Each version has its own cumulative counters (its core's), so the lines of one version
    are differenced with each other only: versions served side by side (an A/B split) write
    interleaved lines to one history.
    """
    by_version: dict[str, list[dict[str, Any]]] = {}
    for h in history:
        if isinstance(h.get("requests"), Mapping):
            by_version.setdefault(str(h.get("version")), []).append(h)
    out = []
    for lines in by_version.values():
        times = [float(h["time_ms"]) for h in lines]
        total = [float(sum(h["requests"].values())) for h in lines]
        errors = [float(sum(h["requests"].get(o, 0) for o in ERROR_OUTCOMES)) for h in lines]
        for i in range(1, len(lines)):
            # A counter that went down was reset (a reload): count from zero again.
            d_total = total[i] - total[i - 1]
            d_err = errors[i] - errors[i - 1]
            out.append(
                (
                    times[i - 1],
                    times[i],
                    total[i] if d_total < 0 else d_total,
                    errors[i] if d_err < 0 else d_err,
                )
            )
    return out


def _summed_rates(
    intervals: list[tuple[float, float, float, float]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Request and error rates (per second) summed over versions, on the union of their
    window times: centre of each stretch, total rate, error rate."""
    points = np.unique([t for start, end, _, _ in intervals for t in (start, end)])
    if points.size < 2:  # every interval has zero length
        points = np.array([points[0], points[0] + 1.0])
    mids = (points[1:] + points[:-1]) / 2
    total = np.zeros(mids.size)
    errors = np.zeros(mids.size)
    for start, end, d_total, d_err in intervals:
        dt = max((end - start) / 1000.0, 1e-3)
        covered = (mids > start) & (mids < end)
        total[covered] += d_total / dt
        errors[covered] += d_err / dt
    return mids, total, errors


def _sample_rate(logs: Any) -> float:
    meta = logs.schema.metadata or {}
    try:
        return float(meta.get(b"engine.sample_rate", b"1"))
    except ValueError:
        return 1.0


def _drift(b: _Builder, history: list[dict[str, Any]], max_features: int) -> str:
    if not history:
        return _note("No drift windows in this period (is a drift monitor running?).")
    names: list[str] = []
    for h in history:
        names += [n for n in h.get("features", {}) if n not in names]
    latest = history[-1].get("features", {})
    names.sort(key=lambda n: -float(latest.get(n, {}).get("psi", 0.0)))
    shown = names[:max_features]
    times = np.array([h["time_ms"] for h in history], dtype=np.float64)
    psi = {
        n: np.array([float(h.get("features", {}).get(n, {}).get("psi", np.nan)) for h in history])
        for n in shown[:10]
    }
    parts = [b.image(plots.psi_history_png(times, psi, None), "PSI per window")]
    rows = [
        (
            "<tr><th>feature</th><th>kind</th><th>PSI</th><th>KS</th><th>chi-square p</th>"
            "<th>past threshold</th></tr>"
        )
    ]
    for n in shown:
        f = latest.get(n)
        if not f:
            continue
        breaches = ", ".join(f.get("breaches") or [])
        cls = ' class="drift"' if breaches else ""
        rows.append(
            f"<tr{cls}><td>{html.escape(n)}</td><td>{html.escape(f.get('kind', ''))}"
            f"</td><td>{f.get('psi', 0):.4f}</td><td>{_fmt(f.get('ks'))}</td>"
            f"<td>{_fmt(f.get('chi2_pvalue'))}</td><td>{html.escape(breaches)}</td></tr>"
        )
    parts.append("<p>Last window:</p><table>" + "".join(rows) + "</table>")
    for n in shown:
        every = [h["features"][n] for h in history if n in h.get("features", {})]
        # Only windows with the last one's bins add up (another version has other bins).
        windows = [
            w
            for w in every
            if w.get("labels") == every[-1].get("labels")
            and w.get("reference") == every[-1].get("reference")
            and len(w.get("counts", ())) == len(every[-1]["counts"])
        ]
        counts = np.sum([np.asarray(w["counts"], dtype=np.float64) for w in windows], axis=0)
        last = np.asarray(windows[-1]["counts"], dtype=np.float64)
        reference = np.asarray(windows[-1]["reference"], dtype=np.float64)
        labels = windows[-1].get("labels") or [str(i) for i in range(reference.size)]
        other = len(every) - len(windows)
        subtitle = (
            f"{int(counts.sum())} live rows in {len(windows)} window(s)"
            + (f" ({other} with other bins left out)" if other else "")
            + f"; last window PSI {windows[-1].get('psi', 0):.3f}"
        )
        parts.append(
            b.image(
                plots.feature_png(n, labels, reference, _shares(counts), _shares(last), subtitle),
                f"reference and live distribution of {n}",
            )
        )
    if len(names) > len(shown):
        parts.append(
            _note(f"{len(names) - len(shown)} more feature(s) with lower PSI not plotted.")
        )
    return "\n".join(parts)


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total > 0 else counts


def _fmt(value: Any) -> str:
    return "" if value is None else f"{float(value):.4g}"


def _predictions(b: _Builder, logs: Any) -> str:
    if logs is None or logs.num_rows == 0:
        return _note("No prediction logs in this period.")
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.compute as pc  # type: ignore[import-untyped]

    parts = []
    columns = [
        c
        for c in logs.column_names
        if c.startswith("output.") and not c.endswith((".shape", ".bytes"))
    ]
    for column in columns[:8]:
        name = column[len("output.") :]
        flat = pc.list_flatten(logs[column].combine_chunks())
        shapes = logs[column + ".shape"].to_pylist()
        width = int(shapes[0][-1]) if shapes and shapes[0] and len(shapes[0]) > 1 else 1
        if pa.types.is_string(flat.type) or pa.types.is_large_string(flat.type):
            # Elements that are not UTF-8 come back as bytes: labelled b'...'.
            values = [v for row in tensor_values(logs, column) if row is not None for v in row]
            labels, counts = np.unique(
                np.array([v if isinstance(v, str) else repr(v) for v in values], dtype=object),
                return_counts=True,
            )
            top = np.argsort(-counts)[:20]
            png = plots.prediction_png(name, None, labels[top].tolist(), counts[top])
        else:
            values = flat.to_numpy(zero_copy_only=False).astype(np.float64)
            if width < 1 or values.size % width:
                width = 1
            values = values.reshape(-1, width)[:, :6]
            png = plots.prediction_png(name, values, None, None)
        parts.append(b.image(png, f"distribution of {name}"))
    return "\n".join(parts) or _note("The logs have no outputs.")
