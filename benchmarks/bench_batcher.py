"""Issue: dynamic batching. Builds benchmarks/batcher_bench.cc (C++, in-process) and runs it:
64 submitters of one row each through the batcher vs raw ORT on 64-row batches (target >= 85%
of raw; the batcher's preferred batch size is first tuned by a sweep of ORT's time per batch
size, as `engine tune` does, and each variant's ratio is to the baseline rounds beside it),
and the batcher's added p50 latency at concurrency 1 (target <= 30 us). Then the same
question from Python: 64 threads calling Model.predict, against ORT's Python API on 64-row
batches, and 64 requests kept in flight from one thread (asyncio and futures), printed for
reference (Python's per-call cost is in those figures, not the batcher's)."""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import time
from concurrent.futures import FIRST_COMPLETED, wait
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
    # Short rounds, many of them, alternating with the baseline: on a shared host the speed of
    # a core drifts within seconds, and a quarter-second round sees less of that drift.
    out = subprocess.run([str(binary), str(find_ort_library()), str(mlp_path), "0.25", "20"],
                         check=True, capture_output=True, text=True).stdout
    print("\n[bench_batcher] " + out.strip().replace("\n", "\n[bench_batcher] "))
    assert "ratio" in out


def _ort_session(path: Path) -> ort.InferenceSession:
    """ORT's Python API with the engine's session settings (1 thread, no spinning)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def test_batcher_python_threads(mlp_path: Path) -> None:
    model = engine.load(mlp_path, config=engine.ModelConfig(intra_op_threads=1))
    session = _ort_session(mlp_path)
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


def test_batcher_python_async(mlp_path: Path) -> None:
    """64 one-row requests kept in flight from one Python thread: asyncio tasks awaiting
    predict_async, and submit() futures topped up as they complete. The baseline is ORT's
    Python API on 64-row batches, in alternating rounds."""
    model = engine.load(mlp_path, config=engine.ModelConfig(intra_op_threads=1))
    session = _ort_session(mlp_path)
    batch = np.ones((64, 32), np.float32)
    row = np.ones((1, 32), np.float32)

    def raw_rows_per_s(seconds: float) -> float:
        rows, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            session.run(None, {"x": batch})
            rows += 64
        return rows / (time.perf_counter() - start)

    def asyncio_rows_per_s(seconds: float) -> float:
        async def client(end: float) -> int:
            rows = 0
            while time.perf_counter() < end:
                await model.predict_async(row)
                rows += 1
            return rows

        async def main() -> float:
            start = time.perf_counter()
            counts = await asyncio.gather(*(client(start + seconds) for _ in range(64)))
            return sum(counts) / (time.perf_counter() - start)

        return asyncio.run(main())

    def futures_rows_per_s(seconds: float) -> float:
        rows, start = 0, time.perf_counter()
        pending = {model.submit(row) for _ in range(64)}
        while time.perf_counter() - start < seconds:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                future.result()
                rows += 1
                pending.add(model.submit(row))
        wait(pending)  # the last ones count too: their time is in the total
        return (rows + len(pending)) / (time.perf_counter() - start)

    raw, via_asyncio, via_futures = [], [], []
    for _ in range(3):
        raw.append(raw_rows_per_s(1.0))
        via_asyncio.append(asyncio_rows_per_s(1.0))
        via_futures.append(futures_rows_per_s(1.0))
    base = statistics.median(raw)
    for label, rates in (("asyncio, 64 tasks x predict_async", via_asyncio),
                         ("submit(), 64 futures in flight", via_futures)):
        ours = statistics.median(rates)
        print(f"\n[bench_batcher] python: {label} (1 row each) {ours:,.0f} rows/s, ORT python "
              f"API on 64-row batches {base:,.0f} rows/s, ratio {ours / base:.3f}", end="")
    print()
    model.close()
