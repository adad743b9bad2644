"""The drift monitor: windows of live counts compared with the reference, in the background.

A :class:`DriftMonitor` installs the reference bins in a counts source (the core's Model, or
:class:`~engine.monitoring.bins.NumpyDriftCounter`), then polls its cumulative counts. The
difference since the window opened is the window. Its rows come from the source's
``stats()["inferred_rows"]`` (rows of successful requests; a source without it: the largest
count of any feature). A window closes when it holds ``window_rows`` rows, or when ``window_s`` seconds have passed and it holds at least
``min_rows`` rows (a quieter window stays open: a handful of rows says nothing about drift).
Each closed window yields a :class:`WindowResult` (PSI for every feature, KS for numeric
ones, chi-square for categorical ones, and which thresholds they cross), handed to the
listeners: the Prometheus collector, the drift history, the alert manager.

Cumulative counts that go down (the core reloaded the model or re-installed the bins) start
the window again from zero for that feature; a feature missing from the counts counts as
empty. Nothing in a result is NaN or infinite, whatever the input.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.errors import InvalidConfigError
from engine.monitoring.bins import CountsSource, FeatureBins, slot_labels
from engine.monitoring.clock import Clock, SystemClock
from engine.monitoring.reference import DriftReference
from engine.monitoring.statistics import DEFAULT_EPSILON, chi_square, ks_binned, psi

__all__ = [
    "DriftMonitor",
    "DriftThresholds",
    "FeatureDrift",
    "MonitorConfig",
    "WindowListener",
    "WindowResult",
]

_log = logging.getLogger(__name__)

WindowListener = Callable[["WindowResult"], None]


@dataclass(frozen=True)
class DriftThresholds:
    """When a feature counts as drifted; ``None`` turns a test off.

    ``psi``: PSI above this (0.1 is a moderate shift, 0.2 a large one by the usual rule of
    thumb). ``ks``: binned KS distance above this (numeric features). ``chi2_pvalue``:
    chi-square p-value below this (categorical features).
    """

    psi: float | None = 0.2
    ks: float | None = 0.15
    chi2_pvalue: float | None = 1e-3

    def __post_init__(self) -> None:
        # inf passes "> 0" but would never fire: a test is turned off with None, not inf.
        if self.psi is not None and not (math.isfinite(self.psi) and self.psi > 0):
            raise InvalidConfigError(f"psi threshold must be finite and > 0; was {self.psi}")
        if self.ks is not None and not 0 < self.ks < 1:
            raise InvalidConfigError(f"ks threshold must be in (0, 1); was {self.ks}")
        if self.chi2_pvalue is not None and not 0 < self.chi2_pvalue < 1:
            raise InvalidConfigError(
                f"chi2_pvalue threshold must be in (0, 1); was {self.chi2_pvalue}"
            )


@dataclass(frozen=True)
class MonitorConfig:
    """Windowing and thresholds of one monitor."""

    window_rows: int = 10_000
    window_s: float = 300.0
    min_rows: int = 200
    poll_interval_s: float = 1.0
    epsilon: float = DEFAULT_EPSILON
    thresholds: DriftThresholds = field(default_factory=DriftThresholds)

    def __post_init__(self) -> None:
        if self.window_rows < 1:
            raise InvalidConfigError(f"window_rows must be >= 1; was {self.window_rows}")
        if not 1 <= self.min_rows <= self.window_rows:
            raise InvalidConfigError(
                f"min_rows must be in [1, window_rows={self.window_rows}]; was {self.min_rows}"
            )
        if not self.window_s > 0:
            raise InvalidConfigError(f"window_s must be > 0; was {self.window_s}")
        if not self.poll_interval_s > 0:
            raise InvalidConfigError(f"poll_interval_s must be > 0; was {self.poll_interval_s}")
        if not 0 < self.epsilon < 0.01:
            raise InvalidConfigError(f"epsilon must be in (0, 0.01); was {self.epsilon}")


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's statistics over one window."""

    name: str
    kind: str
    rows: int
    psi: float
    ks: float | None  # numeric features only
    chi2: float | None  # categorical features only
    chi2_pvalue: float | None
    counts: tuple[int, ...]
    reference: tuple[float, ...]
    breaches: tuple[str, ...]  # metrics past their threshold: "psi", "ks", "chi2_pvalue"
    labels: tuple[str, ...] = ()  # slot names (bins.slot_labels), for reports

    def metrics(self) -> dict[str, float]:
        """The metrics this feature has, by ``metric`` label value."""
        out = {"psi": self.psi}
        if self.ks is not None:
            out["ks"] = self.ks
        if self.chi2 is not None and self.chi2_pvalue is not None:
            out["chi2"] = self.chi2
            out["chi2_pvalue"] = self.chi2_pvalue
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "rows": self.rows,
            **self.metrics(),
            "counts": list(self.counts),
            "reference": list(self.reference),
            "breaches": list(self.breaches),
            "labels": list(self.labels),
        }


@dataclass(frozen=True)
class WindowResult:
    """The statistics of one closed window."""

    model: str
    version: str
    started_ms: int
    ended_ms: int
    rows: int
    features: tuple[FeatureDrift, ...]

    @property
    def drifted(self) -> tuple[str, ...]:
        """Names of the features past a threshold."""
        return tuple(f.name for f in self.features if f.breaches)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "started_ms": self.started_ms,
            "ended_ms": self.ended_ms,
            "rows": self.rows,
            "drifted": list(self.drifted),
            "features": {f.name: f.to_dict() for f in self.features},
        }


def evaluate_window(
    features: Sequence[FeatureBins],
    reference: Mapping[str, np.ndarray],
    counts: Mapping[str, np.ndarray],
    config: MonitorConfig,
) -> tuple[FeatureDrift, ...]:
    """Statistics of one window's ``counts`` (per feature) against ``reference``."""
    t = config.thresholds
    out = []
    for f in features:
        c = counts[f.name]
        ref = reference[f.name]
        score = psi(c, ref, epsilon=config.epsilon)
        breaches = ["psi"] if t.psi is not None and score > t.psi else []
        ks = chi = pvalue = None
        if f.kind == "numeric":
            ks = ks_binned(c, ref, f.value_slots)
            if t.ks is not None and ks > t.ks:
                breaches.append("ks")
        else:
            chi, pvalue, _ = chi_square(c, ref, epsilon=config.epsilon)
            if t.chi2_pvalue is not None and pvalue < t.chi2_pvalue:
                breaches.append("chi2_pvalue")
        out.append(
            FeatureDrift(
                f.name,
                f.kind,
                int(c.sum()),
                score,
                ks,
                chi,
                pvalue,
                tuple(int(x) for x in c),
                tuple(float(x) for x in ref),
                tuple(breaches),
                tuple(slot_labels(f)),
            )
        )
    return tuple(out)


class DriftMonitor:
    """Windows of one model version's live counts, compared with its reference.

    :meth:`poll` does one step (read counts, close the window if due) and is what tests
    drive; :meth:`start` runs it every ``poll_interval_s`` on a daemon thread until
    :meth:`stop`. A listener that raises is logged and the others still run; the thread
    never dies of an exception.
    """

    def __init__(
        self,
        source: CountsSource,
        reference: DriftReference,
        *,
        model: str,
        version: str | int,
        config: MonitorConfig | None = None,
        listeners: Iterable[WindowListener] = (),
        clock: Clock | None = None,
        install: bool = True,
    ) -> None:
        self.model = model
        self.version = str(version)
        self.config = config or MonitorConfig()
        self.reference = reference
        self._source = source
        self._clock = clock or SystemClock()
        self._listeners = list(listeners)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: WindowResult | None = None
        self.windows = 0
        if install:
            source.set_drift_bins(reference.core_features())
        self._start = {f.name: np.zeros(f.slot_count, dtype=np.int64) for f in reference.features}
        self._rows_start = self._read_rows() or 0
        self._opened_s = self._clock.monotonic_s()
        self._opened_ms = self._clock.wall_ms()

    def add_listener(self, listener: WindowListener) -> None:
        self._listeners.append(listener)

    @property
    def last_result(self) -> WindowResult | None:
        return self._last

    def poll(self, *, force: bool = False) -> WindowResult | None:
        """Close the current window if it is due (or ``force`` and it has rows); return it."""
        with self._lock:
            cumulative = self._read_counts()
            delta = {}
            reset = False
            for f in self.reference.features:
                now = cumulative[f.name]
                if np.any(now < self._start[f.name]):  # counters were reset under us
                    self._start[f.name] = np.zeros_like(now)
                    reset = True
                delta[f.name] = now - self._start[f.name]
            rows_now = self._read_rows()
            if rows_now is None or reset:  # the most values any feature saw
                rows = max((int(d.sum()) for d in delta.values()), default=0)
            else:
                rows = rows_now - self._rows_start if rows_now >= self._rows_start else rows_now
            elapsed = self._clock.monotonic_s() - self._opened_s
            due = rows >= self.config.window_rows or (
                elapsed >= self.config.window_s and rows >= self.config.min_rows
            )
            if not (due or (force and rows > 0)):
                return None
            ended_ms = self._clock.wall_ms()
            result = WindowResult(
                self.model,
                self.version,
                self._opened_ms,
                ended_ms,
                rows,
                evaluate_window(
                    self.reference.features, self.reference.proportions, delta, self.config
                ),
            )
            self._start = cumulative
            self._rows_start = rows_now or 0
            self._opened_s = self._clock.monotonic_s()
            self._opened_ms = ended_ms
            self._last = result
            self.windows += 1
        for listener in list(self._listeners):
            try:
                listener(result)
            except Exception:  # noqa: BLE001  logged; the other listeners still run
                _log.exception(
                    "drift listener %r failed on a window of %s:%s",
                    listener,
                    self.model,
                    self.version,
                )
        return result

    def start(self) -> None:
        """Poll on a daemon thread until :meth:`stop`."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"drift-{self.model}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the thread (no final window: a partial window is left unevaluated)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.config.poll_interval_s):
            try:
                self.poll()
            except Exception:  # noqa: BLE001  logged; the monitor thread must not die
                _log.exception("drift monitor of %s:%s failed to poll", self.model, self.version)

    def _read_rows(self) -> int | None:
        stats = getattr(self._source, "stats", None)
        if stats is None:
            return None
        rows = stats().get("inferred_rows")
        return None if rows is None else int(rows)

    def _read_counts(self) -> dict[str, np.ndarray]:
        raw = self._source.drift_counts()
        out = {}
        for f in self.reference.features:
            values = raw.get(f.name)
            if values is None:
                out[f.name] = self._start[f.name].copy()  # not counted: an empty window
                continue
            array = np.asarray(values, dtype=np.int64)
            if array.shape != (f.slot_count,):
                raise InvalidConfigError(
                    f"drift counts of {f.name!r} have {array.size} slots; "
                    f"its bins have {f.slot_count}"
                )
            out[f.name] = array
        return out
