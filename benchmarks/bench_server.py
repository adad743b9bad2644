"""Server benchmark: our C++ server against the transport floor and a naive Python server.

    .venv/bin/python benchmarks/bench_server.py [--requests 20000] [--latency-requests 2000]

Runs, one after the other on free loopback ports, on the 32 -> 256 -> 256 -> 1 MLP with one row
per request:

  (a) ``engine serve`` (C++ gRPC data plane, dynamic batcher, one ORT thread);
  (b) a minimal grpc++ callback echo service for the same RPC (benchmarks/server/echo_server.cc,
      compiled on first run against the protocol code the engine build generated);
  (c) a grpc.aio + onnxruntime server written the way a user would
      (benchmarks/server/naive_server.py).

Throughput: h2load (Debian ``nghttp2-client``) posting one pre-encoded ModelInferRequest at 32
concurrent streams (4 connections x 8). h2load counts HTTP 200 as success, and gRPC errors
travel in trailers, so each server's answer to the same body is checked with grpcio first and
our server's ModelStatistics must have counted every request afterwards.
Latency: stock tritonclient.grpc at concurrency 1, p50 and p99.

Targets (issue 4): throughput >= 60% of the echo floor and >= 5x the naive server; p50 at most
the echo floor's p50 + 100 us. Not part of the test run.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.grpc import service_pb2

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent / "server"
METHOD = "/inference.GRPCInferenceService/ModelInfer"
CONNECTIONS, STREAMS_PER_CONNECTION = 4, 8


@dataclass
class Result:
    name: str
    rps: float
    p50_us: float
    p99_us: float


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_echo(cache: Path) -> Path:
    """Compile echo_server.cc against the engine build's generated protocol code (cached)."""
    binary = cache / "echo_server"
    source = HERE / "echo_server.cc"
    gen = sorted(ROOT.glob("build/*/proto_gen"))
    if not gen:
        sys.exit("no generated protocol code under build/*/proto_gen: run scripts/dev_build.sh")
    if binary.exists() and binary.stat().st_mtime > source.stat().st_mtime:
        return binary
    cache.mkdir(parents=True, exist_ok=True)
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "grpc++", "protobuf"],
                           check=True, capture_output=True, text=True).stdout.split()
    sources = [str(source)] + [str(gen[0] / f) for f in
                               ("grpc_service.pb.cc", "grpc_service.grpc.pb.cc",
                                "model_config.pb.cc")]
    print("compiling the echo server (once) ...", flush=True)
    subprocess.run(["g++", "-std=c++17", "-O2", f"-I{gen[0]}", *sources, "-o", str(binary),
                    *flags], check=True)
    return binary


def start(cmd: list[str], ready: re.Pattern[str], env: dict[str, str] | None = None,
          ) -> subprocess.Popen[str]:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, **(env or {})})
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        if ready.search(line):
            return proc
        if time.monotonic() > deadline:
            break
    proc.kill()
    sys.exit(f"{cmd[0]} did not start")


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def request_body(x: np.ndarray) -> bytes:
    request = service_pb2.ModelInferRequest(model_name="mlp", id="bench")
    request.inputs.add(name="x", datatype="FP32", shape=list(x.shape))
    request.raw_input_contents.append(x.tobytes())
    return request.SerializeToString()


def check_answer(port: int, body: bytes, echo: bool) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        answer = channel.unary_unary(METHOD)(body, timeout=10)
    if echo:
        assert answer == body, "the echo server did not echo"
    else:
        response = service_pb2.ModelInferResponse.FromString(answer)
        assert response.outputs[0].name == "y" and len(response.raw_output_contents[0]) == 4


def h2load(port: int, body: bytes, requests: int, tmp: Path) -> float:
    data = tmp / "body.bin"
    data.write_bytes(b"\x00" + struct.pack(">I", len(body)) + body)  # gRPC length-prefixed frame
    out = subprocess.run(
        ["h2load", "-n", str(requests), "-c", str(CONNECTIONS), "-m", str(STREAMS_PER_CONNECTION),
         "-t", "1", "-d", str(data), "-H", "content-type: application/grpc", "-H", "te: trailers",
         f"http://127.0.0.1:{port}{METHOD}"], check=True, capture_output=True, text=True).stdout
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out)
    rate = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    if not done or not rate or int(done.group(2)) != requests:
        sys.exit(f"h2load failed:\n{out}")
    return float(rate.group(1))


def latency(port: int, x: np.ndarray, requests: int) -> tuple[float, float]:
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
    i = grpcclient.InferInput("x", list(x.shape), "FP32")
    i.set_data_from_numpy(x)
    for _ in range(200):
        client.infer("mlp", [i])
    times = []
    for _ in range(requests):
        t0 = time.perf_counter_ns()
        client.infer("mlp", [i])
        times.append(time.perf_counter_ns() - t0)
    client.close()
    us = np.array(times) / 1000.0
    return float(np.percentile(us, 50)), float(np.percentile(us, 99))


def successes(port: int) -> int:
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
    stats = client.get_inference_statistics("mlp", as_json=True)["model_stats"][0]
    client.close()
    return int(stats["inference_stats"]["success"].get("count", 0))


def run(name: str, proc: subprocess.Popen[str], port: int, body: bytes, x: np.ndarray,
        args: argparse.Namespace, tmp: Path) -> Result:
    try:
        check_answer(port, body, echo=name == "echo")
        before = successes(port) if name == "engine" else 0
        rps = h2load(port, body, args.requests, tmp)
        if name == "engine":
            counted = successes(port) - before
            assert counted == args.requests, f"engine counted {counted} of {args.requests}"
        p50, p99 = latency(port, x, args.latency_requests)
    finally:
        stop(proc)
    result = Result(name, rps, p50, p99)
    print(f"  {name:7s} {rps:10.0f} req/s   p50 {p50:7.1f} us   p99 {p99:7.1f} us", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000, help="h2load requests per server")
    parser.add_argument("--latency-requests", type=int, default=2000)
    args = parser.parse_args()
    if shutil.which("h2load") is None:
        sys.exit("h2load not found: apt-get install nghttp2-client")
    sys.path.insert(0, str(ROOT))
    from server.demo import demo_repository  # the same MLP engine serve --demo serves

    echo_binary = build_echo(ROOT / "build" / "bench")
    x = np.random.default_rng(0).standard_normal((1, 32)).astype(np.float32)
    body = request_body(x)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        repo = demo_repository(tmp)
        model = repo / "mlp" / "1" / "model.onnx"
        print(f"MLP 32-256-256-1, 1 row/request; h2load {args.requests} requests at "
              f"{CONNECTIONS * STREAMS_PER_CONNECTION} streams; tritonclient p50 at concurrency 1",
              flush=True)
        results = {}
        port = free_port()
        proc = start([sys.executable, "-m", "engine.cli", "serve", "--model-repository",
                      str(repo), "--grpc-port", str(port), "--metrics-port", "0"],
                     re.compile(r"engine serve: ready"))
        results["engine"] = run("engine", proc, port, body, x, args, tmp)
        port = free_port()
        proc = start([str(echo_binary), str(port)], re.compile(r"^ready"))
        results["echo"] = run("echo", proc, port, body, x, args, tmp)
        port = free_port()
        proc = start([sys.executable, str(HERE / "naive_server.py"), str(model), str(port)],
                     re.compile(r"^ready"))
        results["naive"] = run("naive", proc, port, body, x, args, tmp)

    e, f, n = results["engine"], results["echo"], results["naive"]
    print()
    print(f"throughput vs echo floor : {e.rps / f.rps:6.2f}x  (target >= 0.60)")
    print(f"throughput vs naive      : {e.rps / n.rps:6.2f}x  (target >= 5)")
    print(f"p50 over echo floor      : {e.p50_us - f.p50_us:+6.1f} us (target <= +100 us)")


if __name__ == "__main__":
    main()
