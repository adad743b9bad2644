"""Issue: dynamic batching, `instances`. Two runs at once as two ORT sessions ("sessions") or
as two concurrent runs on one session ("shared"), same run, rounds interleaved; the faster is
ModelConfig's default `instance_mode`."""

from __future__ import annotations

import statistics
from pathlib import Path

from bench_monitoring import rows_per_second

import engine


def test_sessions_vs_shared(mlp_path: Path) -> None:
    models = {mode: engine.load(mlp_path, config=engine.ModelConfig(
        instances=2, instance_mode=mode, intra_op_threads=1)) for mode in ("sessions", "shared")}
    rates: dict[str, list[float]] = {mode: [] for mode in models}
    for _ in range(7):
        for mode, model in models.items():
            rates[mode].append(rows_per_second(model, 1.0))
    sessions, shared = (statistics.median(rates[m]) for m in ("sessions", "shared"))
    print(f"\n[bench_instances] 2 instances: sessions {sessions:,.0f} rows/s, shared "
          f"{shared:,.0f} rows/s, shared/sessions {shared / sessions:.3f} "
          f"(default: {engine.ModelConfig().instance_mode})")
    for model in models.values():
        model.close()
