"""Issue: dynamic batching. Builds benchmarks/batcher_bench.cc (C++, in-process) and runs it:
64 submitters of one row each through the batcher vs raw ORT on 64-row batches (target >= 85%
of raw), and the batcher's added p50 latency at concurrency 1 (target <= 30 us). Then the same
question from Python: 64 threads calling Model.predict, against ORT's Python API on 64-row
batches, printed for reference (Python's per-call cost is in that figure, not the batcher's)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from _timing import threaded_rows_per_second

import engine
from engine._runtime import find_ort_library

ROOT = Path(__file__).resolve().parents[1]


def build_bench() -> Path:
    build = ROOT / "build" / "bench"
    subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build), "-G", "Ninja",
                    "-DCMAKE_BUILD_TYPE=Release", "-DENGINE_BUILD_PYTHON=OFF",
                    "-DENGINE_BUILD_BENCHMARKS=ON"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", str(build), "--target", "batcher_bench"], check=True,
                   stdout=subprocess.DEVNULL)
    return build / "batcher_bench"


def test_batcher_cpp(mlp_path: Path) -> None:
    binary = build_bench()
    out = subprocess.run([str(binary), str(find_ort_library()), str(mlp_path), "1.0", "5"],
                         check=True, capture_output=True, text=True).stdout
    print("\n[bench_batcher] " + out.strip().replace("\n", "\n[bench_batcher] "))
    assert "ratio" in out


def test_batcher_python_threads(mlp_path: Path) -> None:
    model = engine.load(mlp_path, config=engine.ModelConfig(intra_op_threads=1))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(mlp_path), options, providers=["CPUExecutionProvider"])
    batch = np.ones((64, 32), np.float32)
    row = np.ones((1, 32), np.float32)

    def raw_rows_per_s(seconds: float) -> float:
        rows, end = 0, time.perf_counter() + seconds
        start = time.perf_counter()
        while time.perf_counter() < end:
            session.run(None, {"x": batch})
            rows += 64
        return rows / (time.perf_counter() - start)

    def threads_rows_per_s(seconds: float) -> float:
        return threaded_rows_per_second(lambda: model.predict(row), 1, threads=64,
                                        seconds=seconds)

    raw = sorted(raw_rows_per_s(1.0) for _ in range(3))[1]
    ours = sorted(threads_rows_per_s(1.0) for _ in range(3))[1]
    print(f"\n[bench_batcher] python: 64 threads x Model.predict(1 row) {ours:,.0f} rows/s, "
          f"ORT python API on 64-row batches {raw:,.0f} rows/s, ratio {ours / raw:.3f}")
    model.close()
