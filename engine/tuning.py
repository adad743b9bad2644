"""Batch-size tuning: what one run of a model costs at each batch size on this machine, and
which preferred batch size serves a closed loop of requests fastest.

ONNX Runtime's CPU matrix kernels work on blocks of rows, so the time of a run climbs in steps
rather than smoothly: on an AVX2 machine the benchmark MLP's time jumps every 6 rows, 32 rows
cost nearly what 36 do, and 30-row batches carry 4% more rows per second than 32-row ones.
Where the steps fall depends on the model, the CPU and the ONNX Runtime build, hence a
measurement rather than a rule.

The recommendation is for ``in_flight`` requests kept in flight by their clients, each sending
the next when the last is answered (a server's steady state). While each of the model's
``instances`` runs a batch, one more batch is answered and sent again, so that no instance
waits for a batch to fill: the recommended size is the one of at most
``in_flight // (instances + 1)`` rows with the most rows per second. ``saturated`` is the best
size up to ``max_batch_size`` for traffic that always has more rows queued than a batch holds.

Times are wall times of :meth:`engine.Model.time_runs` (transforms and ONNX Runtime; not the
gather of requests or the split of outputs) on a shared machine: each size is timed in
``passes`` rounds that visit every size in turn, and its time is the lowest of its rounds'
medians, so that a neighbour's burst of work changes one round, not the answer. The first run
of each size in a round is not counted: ONNX Runtime plans its memory on a new shape.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.errors import InvalidConfigError, InvalidInputError
from engine.model import Model

__all__ = ["MAX_BATCH_BYTES", "MAX_SWEEP_S", "BatchTiming", "BatchTuning", "recommend", "sweep",
           "synthetic_row", "tune"]

# The largest batch the sweep builds; it times prefixes of that one batch.
MAX_BATCH_BYTES = 1 << 30
# A sweep estimated to take longer is refused before it starts (a mistyped max_batch_size).
MAX_SWEEP_S = 600.0
# About how long one call into the core may time runs for: Ctrl-C is seen between calls.
CALL_S = 0.25


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
    instances: int
    preferred: BatchTiming  # best of at most in_flight // (instances + 1) rows
    saturated: BatchTiming  # best of at most max_batch_size rows

    @property
    def max_batch_size(self) -> int:
        return self.timings[-1].rows

    @property
    def pipelined_rows(self) -> int:
        """The most rows a batch may have so that no instance waits for one to fill."""
        return _pipelined_rows(self.in_flight, self.instances)

    def timing(self, rows: int) -> BatchTiming:
        return self.timings[rows - 1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_batch_size": self.max_batch_size,
            "in_flight": self.in_flight,
            "instances": self.instances,
            "preferred_batch_sizes": [self.preferred.rows],
            "preferred": self.preferred.to_dict(),
            "saturated": self.saturated.to_dict(),
            "timings": [t.to_dict() for t in self.timings],
        }


def recommend(timings: tuple[BatchTiming, ...], in_flight: int,
              instances: int = 1) -> BatchTuning:
    """The recommendation from a sweep of sizes 1..N (``timings[i].rows == i + 1``)."""
    if not timings or any(t.rows != i + 1 for i, t in enumerate(timings)):
        raise ValueError("timings must hold the batch sizes 1..N in order")
    if in_flight < 1:
        raise InvalidConfigError(f"in_flight must be >= 1; was {in_flight}")
    if instances < 1:
        raise InvalidConfigError(f"instances must be >= 1; was {instances}")
    limit = min(_pipelined_rows(in_flight, instances), len(timings))
    preferred = max(timings[:limit], key=lambda t: t.rows_per_s)
    saturated = max(timings, key=lambda t: t.rows_per_s)
    return BatchTuning(tuple(timings), in_flight, instances, preferred, saturated)


def synthetic_row(model: Model, seed: int = 0) -> dict[str, np.ndarray]:
    """One row for every input of ``model``: standard normal floats, zeros for integers and
    False for bools. Raises InvalidInputError for an input that needs a sample instead (a
    string input, or a dynamic dimension besides the first)."""
    _check_batchable(model)
    rng = np.random.default_rng(seed)
    row: dict[str, np.ndarray] = {}
    for spec in model.inputs:
        if spec.dtype == "string":
            raise InvalidInputError(
                f"input {spec.name!r} takes strings, which cannot be made up; give a sample "
                "of real rows (--sample)")
        inner = spec.shape[1:]
        if any(d < 0 for d in inner):
            raise InvalidInputError(
                f"input {spec.name!r} has shape {list(spec.shape)}: a dynamic dimension "
                "besides the first cannot be made up; give a sample of real rows (--sample)")
        dtype = np.dtype(spec.dtype)
        shape = (1, *inner)
        if dtype.kind == "f":
            row[spec.name] = rng.standard_normal(shape).astype(dtype)
        else:
            row[spec.name] = np.zeros(shape, dtype)
    return row


def sweep(model: Model, sample: Mapping[str, np.ndarray], max_batch_size: int, *,
          passes: int = 5, runs: int = 30,
          progress: Callable[[int], None] | None = None) -> tuple[BatchTiming, ...]:
    """Times one run of every batch size 1..max_batch_size; a batch of ``n`` rows is the first
    ``n`` rows of one batch that repeats the sample's rows in turn. ``progress`` is called with
    each pass's number as it starts. Raises InvalidInputError for a sample that does not fit
    the model, InvalidConfigError for counts out of range, a largest batch over
    MAX_BATCH_BYTES or a sweep estimated to take over MAX_SWEEP_S."""
    for name, value in (("max_batch_size", max_batch_size), ("passes", passes),
                        ("runs", runs)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidConfigError(f"{name} must be an int >= 1; was {value!r}")
    _check_batchable(model)
    sample_rows = _check_sample(model, sample)
    row_bytes = sum(array.nbytes // sample_rows for array in sample.values())
    if row_bytes * max_batch_size > MAX_BATCH_BYTES:
        raise InvalidConfigError(
            f"a batch of {max_batch_size} rows of this sample takes "
            f"{row_bytes * max_batch_size / 2**20:,.0f} MiB, over the sweep's limit of "
            f"{MAX_BATCH_BYTES / 2**20:,.0f} MiB; lower the largest batch size timed")
    order = np.arange(max_batch_size) % sample_rows
    try:
        largest = {name: np.ascontiguousarray(np.take(array, order, axis=0))
                   for name, array in sample.items()}
    except MemoryError:
        raise InvalidConfigError(
            f"not enough memory for a batch of {max_batch_size} rows of this sample; lower "
            "the largest batch size timed") from None
    # Sessions set up on their first runs; the largest batch's time also bounds the others'.
    # One run per call, as below: Ctrl-C is seen between calls.
    largest_us = min(model.time_runs(largest, 1)[0] for _ in range(3))
    estimate_s = passes * (runs + 1) * largest_us * (max_batch_size + 1) / 2 / 1e6
    if estimate_s > MAX_SWEEP_S:
        raise InvalidConfigError(
            f"timing {max_batch_size} batch sizes ({passes} passes of {runs} runs) would take "
            f"about {estimate_s / 60:,.0f} minutes (a {max_batch_size}-row run takes "
            f"{largest_us:,.0f} us); lower the largest batch size, passes or runs")
    # Python sees Ctrl-C only between calls into the core: a slow model's runs go in several.
    per_call = max(1, int(CALL_S * 1e6 / max(largest_us, 1.0)))
    best = [float("inf")] * max_batch_size
    for number in range(passes):
        if progress is not None:
            progress(number + 1)
        for rows in range(1, max_batch_size + 1):
            batch = {name: array[:rows] for name, array in largest.items()}
            times: list[float] = []
            while len(times) < runs + 1:
                times += model.time_runs(batch, min(per_call, runs + 1 - len(times)))
            # The first run plans memory for the new shape.
            best[rows - 1] = min(best[rows - 1], float(np.median(times[1:])))
    return tuple(BatchTiming(i + 1, us) for i, us in enumerate(best))


def tune(model: Model, sample: Mapping[str, np.ndarray] | None = None, *,
         max_batch_size: int | None = None, in_flight: int | None = None, passes: int = 5,
         runs: int = 30, progress: Callable[[int], None] | None = None) -> BatchTuning:
    """Sweep ``model`` (with ``sample``, or :func:`synthetic_row`) up to ``max_batch_size``
    (default and limit: the model's own) and recommend a preferred batch size for
    ``in_flight`` requests in flight (default: ``max_batch_size``), given the model's
    instances."""
    _check_batchable(model)
    limit = model.config.max_batch_size
    if max_batch_size is None:
        max_batch_size = limit
    elif max_batch_size > limit:
        raise InvalidConfigError(
            f"max_batch_size {max_batch_size} is over the model's own max_batch_size "
            f"{limit}, which refuses larger requests; time at most {limit} rows, or load the "
            "model with a larger max_batch_size")
    rows = synthetic_row(model) if sample is None else sample
    timings = sweep(model, rows, max_batch_size, passes=passes, runs=runs, progress=progress)
    return recommend(timings, max_batch_size if in_flight is None else in_flight,
                     model.config.instances)


def _pipelined_rows(in_flight: int, instances: int) -> int:
    # While each instance runs a batch, one more is answered and sent again.
    return max(1, in_flight // (instances + 1))


def _check_batchable(model: Model) -> None:
    """InvalidInputError unless ``model`` batches requests (batching on, and a dynamic first
    dimension on every input)."""
    for spec in model.inputs:
        if not spec.shape or spec.shape[0] != -1:
            raise InvalidInputError(
                f"input {spec.name!r} has shape {list(spec.shape)}, with no dynamic first "
                "dimension: the model takes no batches, so there is no batch size to tune")
    if not model.batching:
        raise InvalidInputError(
            f"model {model.name!r} has batching off (its config says batching=False or "
            "max_batch_size=0): each request runs on its own, so there is no batch size to tune")


def _check_sample(model: Model, sample: Mapping[str, np.ndarray]) -> int:
    """The sample's row count; InvalidInputError unless it holds each input of ``model`` as an
    array of rows (axis 0) whose other dimensions fit the input, all of one row count."""
    expected = [spec.name for spec in model.inputs]
    if sorted(sample) != sorted(expected):
        raise InvalidInputError(
            f"the sample holds {sorted(sample)}; the model's inputs are {sorted(expected)}")
    counts = {}
    for spec in model.inputs:
        array = sample[spec.name]
        if not isinstance(array, np.ndarray) or array.ndim == 0:
            raise InvalidInputError(
                f"sample input {spec.name!r} must be an array of rows; was "
                f"{'a 0-d array' if isinstance(array, np.ndarray) else type(array).__name__}")
        inner = spec.shape[1:]
        # A column of a model with transforms may come as [rows, 1], as predict takes it.
        column = len(spec.shape) == 1 and array.ndim == 2 and array.shape[1] == 1
        if not column and (array.ndim != len(spec.shape) or any(
                want >= 0 and got != want for got, want in zip(array.shape[1:], inner))):
            hint = (f"; a 1-D array is {array.shape[0]} rows of one value: for one row give "
                    "shape (1, values)" if array.ndim == 1 and len(spec.shape) > 1 else "")
            model_shape = [-1, *inner]
            raise InvalidInputError(
                f"sample input {spec.name!r} has shape {tuple(array.shape)}; the model takes "
                f"{model_shape} (axis 0 is rows){hint}")
        counts[spec.name] = array.shape[0]
    if len(set(counts.values())) != 1:
        raise InvalidInputError(f"the sample's inputs differ in row count: {counts}")
    rows = next(iter(counts.values()))
    if rows == 0:
        raise InvalidInputError("the sample has no rows")
    return int(rows)
