"""Batch-size tuning: what one run of a model costs at each batch size on this machine, and
which preferred batch size serves a closed loop of requests fastest.

ONNX Runtime's CPU matrix kernels work on blocks of rows, so the time of a run climbs in steps
rather than smoothly: on an AVX2 machine the benchmark MLP's time jumps every 6 rows, 32 rows
cost nearly what 36 do, and 30-row batches carry 4% more rows per second than 32-row ones. Where the steps fall depends
on the model, the CPU and the ONNX Runtime build, hence a measurement rather than a rule.

The recommendation is for ``in_flight`` requests kept in flight by their clients, each sending
the next when the last is answered (a server's steady state). With one instance, a batch of at
most half of them runs while the other half is answered and sent again, so the worker never
waits for a batch to fill: the recommended size is the one of at most ``in_flight // 2`` rows
with the most rows per second. ``saturated`` is the best size up to ``max_batch_size`` for
traffic that always has more rows queued than a batch holds.

Times are wall times on a shared machine: each size is timed in ``passes`` rounds that visit
every size in turn, and its time is the lowest of its rounds' medians, so that a neighbour's
burst of work changes one round, not the answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.errors import InvalidConfigError, InvalidInputError
from engine.model import Model

__all__ = ["BatchTiming", "BatchTuning", "recommend", "sweep", "synthetic_row", "tune"]

# Inputs whose non-batch dimensions are dynamic cannot be made up: the sample must give them.
_SYNTHETIC_KINDS = "fiub"


@dataclass(frozen=True)
class BatchTiming:
    """One batch size: the median wall time of one run, in microseconds (lowest over passes)."""

    rows: int
    us: float

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.us * 1e6

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "us": round(self.us, 2),
                "rows_per_s": round(self.rows_per_s, 1)}


@dataclass(frozen=True)
class BatchTuning:
    """A sweep and what it recommends (see the module's docstring)."""

    timings: tuple[BatchTiming, ...]
    in_flight: int
    preferred: BatchTiming  # best of at most in_flight // 2 rows
    saturated: BatchTiming  # best of at most max_batch_size rows

    @property
    def max_batch_size(self) -> int:
        return self.timings[-1].rows

    def timing(self, rows: int) -> BatchTiming:
        return self.timings[rows - 1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_batch_size": self.max_batch_size,
            "in_flight": self.in_flight,
            "preferred_batch_sizes": [self.preferred.rows],
            "preferred": self.preferred.to_dict(),
            "saturated": self.saturated.to_dict(),
            "timings": [t.to_dict() for t in self.timings],
        }


def recommend(timings: tuple[BatchTiming, ...], in_flight: int) -> BatchTuning:
    """The recommendation from a sweep of sizes 1..N (``timings[i].rows == i + 1``)."""
    if not timings or any(t.rows != i + 1 for i, t in enumerate(timings)):
        raise ValueError("timings must hold the batch sizes 1..N in order")
    if in_flight < 1:
        raise InvalidConfigError(f"in_flight must be >= 1; was {in_flight}")
    half = max(1, min(in_flight // 2, len(timings)))
    preferred = max(timings[:half], key=lambda t: t.rows_per_s)
    saturated = max(timings, key=lambda t: t.rows_per_s)
    return BatchTuning(tuple(timings), in_flight, preferred, saturated)


def synthetic_row(model: Model, seed: int = 0) -> dict[str, np.ndarray]:
    """One row for every input of ``model``: standard normal floats, zeros for integers and
    False for bools. Raises InvalidInputError for an input that needs a sample instead (a
    string input, or a dynamic dimension besides the first)."""
    rng = np.random.default_rng(seed)
    row: dict[str, np.ndarray] = {}
    for spec in model.inputs:
        dtype = np.dtype(object if spec.dtype == "string" else spec.dtype)
        if dtype.kind not in _SYNTHETIC_KINDS:
            raise InvalidInputError(
                f"input {spec.name!r} takes {spec.dtype}, which cannot be made up; "
                "give a sample of real rows (--sample)")
        if not spec.shape or spec.shape[0] != -1:
            raise InvalidInputError(
                f"input {spec.name!r} has shape {list(spec.shape)}, with no dynamic first "
                "dimension: the model takes no batches, so there is nothing to tune")
        inner = spec.shape[1:]
        if any(d < 0 for d in inner):
            raise InvalidInputError(
                f"input {spec.name!r} has shape {list(spec.shape)}: a dynamic dimension "
                "besides the first cannot be made up; give a sample of real rows (--sample)")
        shape = (1, *inner)
        if dtype.kind == "f":
            row[spec.name] = rng.standard_normal(shape).astype(dtype)
        else:
            row[spec.name] = np.zeros(shape, dtype)
    return row


def sweep(model: Model, sample: Mapping[str, np.ndarray], max_batch_size: int, *,
          passes: int = 5, runs: int = 30,
          progress: Callable[[int], None] | None = None) -> tuple[BatchTiming, ...]:
    """Times one run of every batch size 1..max_batch_size; a batch of ``n`` rows repeats the
    sample's rows in turn. ``progress`` is called with each pass's number as it starts."""
    for name, value in (("max_batch_size", max_batch_size), ("passes", passes),
                        ("runs", runs)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidConfigError(f"{name} must be an int >= 1; was {value!r}")
    sample_rows = _sample_rows(model, sample)
    batches = [{name: np.take(array, np.arange(rows) % sample_rows, axis=0)
                for name, array in sample.items()} for rows in range(1, max_batch_size + 1)]
    model.time_runs(batches[-1], 3)  # ONNX Runtime sets a session up on its first runs
    best = [float("inf")] * max_batch_size
    for number in range(passes):
        if progress is not None:
            progress(number + 1)
        for i, batch in enumerate(batches):
            best[i] = min(best[i], float(np.median(model.time_runs(batch, runs))))
    return tuple(BatchTiming(i + 1, us) for i, us in enumerate(best))


def tune(model: Model, sample: Mapping[str, np.ndarray] | None = None, *,
         max_batch_size: int = 64, in_flight: int | None = None, passes: int = 5,
         runs: int = 30, progress: Callable[[int], None] | None = None) -> BatchTuning:
    """Sweep ``model`` (with ``sample``, or :func:`synthetic_row`) and recommend a preferred
    batch size for ``in_flight`` requests in flight (default: ``max_batch_size``)."""
    rows = synthetic_row(model) if sample is None else sample
    timings = sweep(model, rows, max_batch_size, passes=passes, runs=runs, progress=progress)
    return recommend(timings, max_batch_size if in_flight is None else in_flight)


def _sample_rows(model: Model, sample: Mapping[str, np.ndarray]) -> int:
    """The sample's row count; InvalidInputError unless it holds each input of ``model``, as
    arrays of at least one row and the same row count."""
    expected = [spec.name for spec in model.inputs]
    if sorted(sample) != sorted(expected):
        raise InvalidInputError(
            f"the sample holds {sorted(sample)}; the model's inputs are {sorted(expected)}")
    counts = {}
    for name, array in sample.items():
        if not isinstance(array, np.ndarray) or array.ndim == 0:
            raise InvalidInputError(
                f"sample input {name!r} must be an array of rows; was "
                f"{type(array).__name__}{'' if not isinstance(array, np.ndarray) else ' 0-d'}")
        counts[name] = array.shape[0]
    if len(set(counts.values())) != 1:
        raise InvalidInputError(f"the sample's inputs differ in row count: {counts}")
    rows = next(iter(counts.values()))
    if rows == 0:
        raise InvalidInputError("the sample has no rows")
    return int(rows)
