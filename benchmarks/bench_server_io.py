"""Does the server keep answering while model runs fill every instance?

    .venv/bin/python benchmarks/bench_server_io.py [--checks 100] [--layers 48]

Serves one 512-wide MLP (``--layers`` deep, 64-row requests of about 20 ms at 48 layers) with
two instances, and times tritonclient's ``is_server_live`` at concurrency 1: first with the
server idle, then while two client threads keep both instances running back to back. Prints
both p50 and p90 and their ratio (loaded / idle). A request that finds its model idle runs on
the gRPC thread that received it; were every gRPC thread inside a run, a check would wait for
a run to end (about half a run at the p50). Not part of the test run.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))  # factories: the test models, as conftest.py
import factories
from bench_server import free_port, start, stop

WIDTH, ROWS = 512, 64


def check_times(url: str, checks: int) -> list[float]:
    client = grpcclient.InferenceServerClient(url)
    times = []
    for _ in range(checks):
        t0 = time.perf_counter()
        client.is_server_live()
        times.append(time.perf_counter() - t0)
        time.sleep(0.005)  # spread over the runs' phases
    client.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checks", type=int, default=100, help="liveness checks per phase")
    parser.add_argument("--layers", type=int, default=48, help="MLP depth (run length)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        repo = Path(tmp_name)
        (repo / "wide" / "1").mkdir(parents=True)
        factories.slow_mlp(repo / "wide" / "1" / "model.onnx", width=WIDTH, layers=args.layers)
        (repo / "wide" / "config.pbtxt").write_text(
            f'name: "wide"\nmax_batch_size: {ROWS}\ndynamic_batching {{ }}\n'
            "instance_group [{ count: 2 kind: KIND_CPU }]\n")
        port = free_port()
        proc = start([sys.executable, "-m", "engine.cli", "serve", "--model-repository",
                      str(repo), "--grpc-port", str(port), "--metrics-port", "0"],
                     ready=re.compile(r"engine serve: ready"))
        url = f"127.0.0.1:{port}"
        try:
            idle = check_times(url, args.checks)
            stop_load = threading.Event()
            runs: list[float] = []

            def load() -> None:
                client = grpcclient.InferenceServerClient(url)
                i = grpcclient.InferInput("x", [ROWS, WIDTH], "FP32")
                i.set_data_from_numpy(np.ones((ROWS, WIDTH), np.float32))
                while not stop_load.is_set():
                    t0 = time.perf_counter()
                    client.infer("wide", [i])
                    runs.append(time.perf_counter() - t0)
                client.close()

            threads = [threading.Thread(target=load) for _ in range(2)]
            for t in threads:
                t.start()
            time.sleep(1.0)  # both clients running back to back
            loaded = check_times(url, args.checks)
            stop_load.set()
            for t in threads:
                t.join()
        finally:
            stop(proc)

    def ms(values: list[float], q: float) -> float:
        return float(np.percentile(values, q)) * 1e3

    print(f"inference ({ROWS} rows, {args.layers} layers, 2 clients on 2 instances): p50 "
          f"{ms(runs, 50):.2f} ms")
    print(f"liveness check idle: p50 {ms(idle, 50):.2f} ms, p90 {ms(idle, 90):.2f} ms")
    print(f"liveness check while both instances run: p50 {ms(loaded, 50):.2f} ms, p90 "
          f"{ms(loaded, 90):.2f} ms")
    print(f"ratio loaded / idle: p50 {ms(loaded, 50) / ms(idle, 50):.2f}, p90 "
          f"{ms(loaded, 90) / ms(idle, 90):.2f}; a check that waited for a run would take "
          f"about half a run at the p50 ({ms(runs, 50) / 2:.1f} ms)")


if __name__ == "__main__":
    main()
