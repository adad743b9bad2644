"""Snapshots of a model's statistics, as the native core counts them.

The core counts lock-free on the hot path; :meth:`engine.Model.stats` copies the counters into
these frozen objects. Monitoring (Prometheus, ModelStatistics RPC) reads the same snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["OUTCOMES", "Histogram", "ModelStats"]

# Request outcomes, as csrc/stats.h names them.
OUTCOMES = ("ok", "invalid", "overloaded", "expired", "cancelled", "failed", "unavailable")


@dataclass(frozen=True)
class Histogram:
    """Latency histogram: ``counts[i]`` values <= ``bounds_us[i]``; the last count is +Inf."""

    bounds_us: tuple[int, ...]
    counts: tuple[int, ...]  # per bucket, not cumulative; len(bounds_us) + 1 entries
    sum_us: int
    count: int

    @classmethod
    def from_core(cls, data: dict[str, Any]) -> Histogram:
        return cls(tuple(data["bounds_us"]), tuple(data["counts"]), int(data["sum_us"]),
                   int(data["count"]))

    def quantile_us(self, q: float) -> float:
        """Upper bound of the bucket holding quantile ``q`` (0..1); +inf past the last bound."""
        if self.count == 0:
            return 0.0
        target = q * self.count
        seen = 0
        for bound, count in zip(self.bounds_us, self.counts):
            seen += count
            if seen >= target:
                return float(bound)
        return float("inf")


@dataclass(frozen=True)
class ModelStats:
    """Counters of one loaded model since it was loaded."""

    requests: dict[str, int]  # by outcome, see OUTCOMES
    batches: int  # ORT runs made by the batcher, failed ones included
    inferred_rows: int  # rows of successful requests
    # rows per batch -> number of successful batches (non-zero entries only)
    batch_sizes: dict[int, int]
    batch_compute_us: dict[int, int]  # rows per batch -> compute time summed over them
    queue: Histogram
    compute: Histogram
    total: Histogram
    queue_depth: int
    in_flight: int
    last_inference_ms: int
    # The phases of successful requests' batches, summed over those requests (nanoseconds):
    # gather and transforms, the ORT run, scatter and result assembly.
    compute_input_ns: int = 0
    compute_infer_ns: int = 0
    compute_output_ns: int = 0
    failed_batches: int = 0  # of ``batches``, runs that failed: ONNX Runtime's error, or
    # outputs whose first dimension did not follow the batch's rows (re-run one by one)

    @classmethod
    def from_core(cls, data: dict[str, Any]) -> ModelStats:
        sizes = {int(n): int(c) for n, c in data["batch_sizes"].items()}
        compute = {int(n): int(us) for n, us in data["batch_compute_us"].items()}
        return cls(
            requests=dict(data["requests"]),
            batches=int(data["batches"]),
            failed_batches=int(data["failed_batches"]),
            inferred_rows=int(data["inferred_rows"]),
            batch_sizes=sizes,
            batch_compute_us=compute,
            queue=Histogram.from_core(data["queue_us"]),
            compute=Histogram.from_core(data["compute_us"]),
            total=Histogram.from_core(data["total_us"]),
            queue_depth=int(data["queue_depth"]),
            in_flight=int(data["in_flight"]),
            last_inference_ms=int(data["last_inference_ms"]),
            compute_input_ns=int(data["input_ns"]),
            compute_infer_ns=int(data["infer_ns"]),
            compute_output_ns=int(data["output_ns"]),
        )
