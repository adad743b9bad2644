"""Issue: monitoring. Throughput of the same model with monitoring on (drift histograms over
all 32 input features and the output, 1% of requests copied for the prediction log) and off,
in one run, rounds interleaved. Target: at most 5% lower with monitoring on.

Measured in-process through the batcher (16 threads, 8-row requests), which is where the
monitoring work happens for the gRPC server too: the server adds no monitoring work of its own
on the request path."""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np
from _timing import threaded_rows_per_second

import engine

DRIFT_FEATURES = [
    {"name": f"x{i}", "tensor": "x", "column": i, "kind": "numeric",
     "edges": [float(e) for e in np.linspace(-2, 2, 9)]}
    for i in range(32)
] + [{"name": "y", "tensor": "y", "column": 0, "kind": "numeric", "edges": [-1.0, 0.0, 1.0]}]


def rows_per_second(model: engine.Model, seconds: float) -> float:
    """16 threads, 8-row requests."""
    x = np.random.default_rng(0).standard_normal((8, 32)).astype(np.float32)
    return threaded_rows_per_second(lambda: model.predict(x), 8, threads=16, seconds=seconds)


def test_monitoring_overhead(mlp_path: Path) -> None:
    config = engine.ModelConfig(intra_op_threads=1, instances=2)
    off = engine.load(mlp_path, config=config)
    on = engine.load(mlp_path, config=config)
    on.core.set_drift_bins(DRIFT_FEATURES)
    on.core.set_sampling(0.01, 100_000)
    rates_off, rates_on = [], []
    for _ in range(7):
        rates_off.append(rows_per_second(off, 1.0))
        rates_on.append(rows_per_second(on, 1.0))
        on.core.take_samples(100_000)  # what the prediction-log poller does in the background
    r_off, r_on = statistics.median(rates_off), statistics.median(rates_on)
    ratio = r_on / r_off
    verdict = "meets" if ratio >= 0.95 else "MISSES"
    print(f"\n[bench_monitoring] monitoring off {r_off:,.0f} rows/s, on {r_on:,.0f} rows/s, "
          f"ratio {ratio:.3f} ({verdict} target >= 0.95)")
    assert sum(on.core.drift_counts()["x0"]) > 0
    off.close()
    on.close()
