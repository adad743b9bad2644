"""Issue: monitoring. Server throughput with drift monitoring and the sampled prediction log on
vs off, same run: `engine serve --registry` of the demo MLP registered once with a training
profile (monitoring on: drift counted on all 32 input columns and the output, 1% of requests
logged to Parquet) and once without (off). h2load at 32 streams, servers alternated.

    .venv/bin/python benchmarks/bench_server_monitoring.py [--requests 20000] [--rounds 3]

Target: monitoring costs at most 5% of throughput (ratio on/off >= 0.95).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from bench_server import check_answer, free_port, h2load, request_body, start, stop
from engine.training.profile import profile_array

import engine
from server.demo import demo_repository


def registry_home(tmp: Path, model: Path, monitored: bool) -> Path:
    home = tmp / ("on" if monitored else "off")
    params = {}
    if monitored:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((5000, 32)).astype(np.float32)
        params["reference_profile"] = profile_array(x, [f"x[{i}]" for i in range(32)])
    with engine.Registry(home=home) as registry:
        registry.register("mlp", model, alias="production", params=params)
    return home


def throughput(home: Path, body: bytes, requests: int, tmp: Path) -> float:
    port = free_port()
    proc = start([sys.executable, "-m", "engine.cli", "serve", "--registry", "--home", str(home),
                  "--log-sample-rate", "0.01", "--grpc-port", str(port), "--metrics-port", "0"],
                 re.compile(r"engine serve: ready"))
    try:
        check_answer(port, body, echo=False)
        return h2load(port, body, requests, tmp)
    finally:
        stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    x = np.random.default_rng(1).standard_normal((1, 32)).astype(np.float32)
    body = request_body(x)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model = demo_repository(tmp) / "mlp" / "1" / "model.onnx"
        homes = {m: registry_home(tmp, model, m) for m in (False, True)}
        rates: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.rounds):
            for monitored in (False, True):
                rates[monitored].append(throughput(homes[monitored], body, args.requests, tmp))
        logs = list((homes[True] / "logs").rglob("*.parquet"))
    off, on = statistics.median(rates[False]), statistics.median(rates[True])
    print(f"monitoring off {off:,.0f} req/s, on {on:,.0f} req/s (rounds: off {rates[False]}, "
          f"on {rates[True]}); prediction log files written: {len(logs)}")
    print(f"throughput on/off: {on / off:.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
