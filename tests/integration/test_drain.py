"""SIGTERM drain: health goes NOT_SERVING, new requests are refused, every request in flight at
the signal completes, and the process exits 0."""

from __future__ import annotations

import threading
import time
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from _models import build_drain_repository
from _server import ServerProcess, start_server
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.integration

IN_FLIGHT = 4


def _in_flight(server: ServerProcess) -> float:
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    for line in text.splitlines():
        if line.startswith('engine_requests_in_flight{model="heavy"'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _reached_engine(server: ServerProcess) -> float:
    """Requests to `heavy` in flight or answered: those that reached the engine."""
    from test_metrics import _scrape, _value

    families = _scrape(server)
    reached = 0.0
    for family, sample, labels in (
        ("engine_requests_in_flight", "engine_requests_in_flight", {}),
        ("engine_requests", "engine_requests_total", {"outcome": "ok"}),
    ):
        try:
            reached += _value(families, family, sample, model="heavy", version="1", **labels)
        except KeyError:  # no such series yet
            pass
    return reached


def _health(server: ServerProcess) -> bytes:
    with grpc.insecure_channel(server.url) as channel:
        return channel.unary_unary("/grpc.health.v1.Health/Check")(b"", timeout=5)


def test_sigterm_drains_in_flight_requests(tmp_path: Path) -> None:
    repo = build_drain_repository(tmp_path / "repo")
    server = start_server(["--model-repository", str(repo), "--grace-s", "20"], tmp_path)
    try:
        x = np.random.default_rng(0).standard_normal((1, 512)).astype(np.float32)
        results: dict[int, object] = {}

        def call(k: int) -> None:
            c = grpcclient.InferenceServerClient(server.url)
            try:
                i = grpcclient.InferInput("x", [1, 512], "FP32")
                i.set_data_from_numpy(x * k)
                results[k] = c.infer("heavy", [i], request_id=str(k)).as_numpy("y")
            except Exception as exc:  # noqa: BLE001 - asserted below
                results[k] = exc
            finally:
                c.close()

        threads = [threading.Thread(target=call, args=(k,)) for k in range(1, IN_FLIGHT + 1)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while _in_flight(server) < IN_FLIGHT:  # all four are in the engine (one runs, 3 queue)
            assert time.monotonic() < deadline, "requests never reached the engine"
            time.sleep(0.01)
        assert _health(server) == b"\x08\x01"

        server.proc.send_signal(15)  # SIGTERM
        deadline = time.monotonic() + 10
        while not any("draining" in line for line in server.lines):
            assert time.monotonic() < deadline
            time.sleep(0.005)
        # Draining: health says NOT_SERVING and a new request is refused as UNAVAILABLE.
        assert _health(server) == b"\x08\x02"
        late = grpcclient.InferenceServerClient(server.url)
        i = grpcclient.InferInput("x", [1, 4], "FP32")
        i.set_data_from_numpy(np.zeros((1, 4), np.float32))
        with pytest.raises(InferenceServerException) as info:
            late.infer("add", [i])
        assert info.value.status() == "StatusCode.UNAVAILABLE"
        assert "shutting down" in info.value.message()
        late.close()

        for t in threads:
            t.join(timeout=60)
        for k in range(1, IN_FLIGHT + 1):
            assert isinstance(results[k], np.ndarray), results[k]
        assert server.terminate() == 0
        assert server.lines[-1] == "engine serve: stopped"
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(timeout=10)
        server.close_pipes()


QUEUED = 40  # a heavy run takes 0.05-0.1 s here: seconds of work in the queue


def _queue_heavy_requests(server: ServerProcess) -> tuple[dict[int, object], list[threading.Thread]]:
    """QUEUED clients of one heavy request each, started; returns once every request reached
    the engine (in flight or answered: the first ones finish while others arrive), so that
    none arrives during the drain, to be refused as the server shutting down instead. Each
    result is the answer's array or the client's exception, keyed by client."""
    x = np.ones((1, 512), np.float32)
    results: dict[int, object] = {}

    def call(k: int) -> None:
        c = grpcclient.InferenceServerClient(server.url)
        try:
            i = grpcclient.InferInput("x", [1, 512], "FP32")
            i.set_data_from_numpy(x)
            results[k] = c.infer("heavy", [i], request_id=str(k)).as_numpy("y")
        except InferenceServerException as exc:
            results[k] = exc
        finally:
            c.close()

    threads = [threading.Thread(target=call, args=(k,)) for k in range(QUEUED)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while _reached_engine(server) < QUEUED:
        assert time.monotonic() < deadline, "requests never reached the engine"
        time.sleep(0.01)
    return results, threads


def _refused_as_closed(results: dict[int, object]) -> tuple[list[int], list[object]]:
    """The clients answered, and the exceptions of those refused, each checked to be the
    UNAVAILABLE of a request still queued when its model closed."""
    answered = [k for k, r in results.items() if isinstance(r, np.ndarray)]
    refused = [r for r in results.values() if isinstance(r, InferenceServerException)]
    assert len(answered) + len(refused) == QUEUED, results
    for exc in refused:
        assert exc.status() == "StatusCode.UNAVAILABLE", exc
        assert "model was closed before the request ran" in exc.message(), exc
    return answered, refused


def _stop(server: ServerProcess) -> None:
    if server.proc.poll() is None:
        server.proc.kill()
        server.proc.wait(timeout=10)
    server.close_pipes()


def test_the_grace_period_bounds_the_drain_of_a_long_queue(tmp_path: Path) -> None:
    """Requests still queued when --grace-s ends fail as UNAVAILABLE: a full queue used to hold
    the shutdown until it had all run, past the orchestrator's own grace period."""
    repo = build_drain_repository(tmp_path / "repo")
    server = start_server(["--model-repository", str(repo), "--grace-s", "0.2"], tmp_path)
    try:
        results, threads = _queue_heavy_requests(server)
        assert server.terminate(timeout_s=60) == 0
        for t in threads:
            t.join(timeout=60)
    finally:
        _stop(server)
    answered, refused = _refused_as_closed(results)
    assert answered, "the run under way at the signal finishes"
    assert refused, "nothing queued was cut off by the grace period"


def test_a_second_sigterm_cuts_the_drain_short(tmp_path: Path) -> None:
    """With a grace period far longer than the queue, a second SIGTERM fails what is still
    queued as UNAVAILABLE instead of running it: an operator who signals twice wants out."""
    repo = build_drain_repository(tmp_path / "repo")
    server = start_server(["--model-repository", str(repo), "--grace-s", "600"], tmp_path)
    try:
        results, threads = _queue_heavy_requests(server)
        server.proc.send_signal(15)
        deadline = time.monotonic() + 10
        while not any("draining" in line for line in server.lines):
            assert time.monotonic() < deadline
            time.sleep(0.005)
        assert server.terminate(timeout_s=60) == 0  # the second SIGTERM
        assert any("cutting the drain short" in line for line in server.lines), server.lines
        for t in threads:
            t.join(timeout=60)
    finally:
        _stop(server)
    _, refused = _refused_as_closed(results)
    assert refused, "the second signal cut nothing short"


def test_sigterm_finishes_open_streams_once_answered(tmp_path: Path) -> None:
    # An idle stream must not hold the shutdown for the whole grace period (60 s here), and a
    # stream with a request running gets its answer first, then UNAVAILABLE.
    import queue

    repo = build_drain_repository(tmp_path / "repo")
    server = start_server(["--model-repository", str(repo), "--grace-s", "60"], tmp_path)
    clients = []
    try:
        got: list[queue.Queue[tuple[object, object]]] = [queue.Queue(), queue.Queue()]
        for k in range(2):
            c = grpcclient.InferenceServerClient(server.url)
            c.start_stream(callback=lambda result, error, q=got[k]: q.put((result, error)))
            clients.append(c)
        add = grpcclient.InferInput("x", [1, 4], "FP32")
        add.set_data_from_numpy(np.ones((1, 4), np.float32))
        clients[0].async_stream_infer("add", [add], request_id="idle")
        result, error = got[0].get(timeout=30)
        assert error is None, error  # answered: this stream is now idle
        heavy = grpcclient.InferInput("x", [1, 512], "FP32")
        heavy.set_data_from_numpy(np.ones((1, 512), np.float32))
        clients[1].async_stream_infer("heavy", [heavy], request_id="busy")
        deadline = time.monotonic() + 20
        while _in_flight(server) < 1:
            assert time.monotonic() < deadline, "the streamed request never reached the engine"
            time.sleep(0.01)

        started = time.monotonic()
        assert server.terminate(timeout_s=30) == 0
        assert time.monotonic() - started < 30, "open streams held the shutdown"
        result, error = got[1].get(timeout=10)
        assert error is None, error
        assert result.get_response().id == "busy"  # type: ignore[union-attr]
        for q in got:  # then each stream ends as UNAVAILABLE (tritonclient reports it)
            _, error = q.get(timeout=10)
            assert isinstance(error, InferenceServerException), error
            assert error.status() == "StatusCode.UNAVAILABLE", error
            assert "shutting down" in error.message()
    finally:
        for c in clients:
            c.stop_stream()
            c.close()
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(timeout=10)
        server.close_pipes()


def test_taken_port_is_a_clear_error(server: ServerProcess, tmp_path: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "engine.cli", "serve", "--demo", "--grpc-port",
         str(server.grpc_port), "--metrics-port", "0"],
        capture_output=True, text=True, timeout=60, check=False,
        env={"ENGINE_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 1
    # The system's reason, said once: gRPC's own vaguer line about it is held back.
    assert proc.stderr.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{server.grpc_port}: Address already in use"]


def test_clients_that_move_away_on_unavailable_never_see_cancelled(tmp_path: Path) -> None:
    # Clients behind a load balancer stop sending here once they are told UNAVAILABLE. Calls
    # that reached the transport as it shut down used to be cancelled by grpc-core
    # (grpc/grpc#41785): CANCELLED, which retry policies do not retry (1-3 calls in half of
    # the runs here). The server now waits for its clients to stop first.
    import collections

    server = start_server(["--demo", "--grace-s", "10"], tmp_path)
    codes: collections.Counter[str] = collections.Counter()
    codes_lock = threading.Lock()  # += on a Counter is not atomic across threads
    running = threading.Barrier(9)

    def count(code: str) -> None:
        with codes_lock:
            codes[code] += 1

    def client() -> None:
        c = grpcclient.InferenceServerClient(server.url)
        x = grpcclient.InferInput("x", [1, 32], "FP32")
        x.set_data_from_numpy(np.zeros((1, 32), np.float32))
        running.wait(timeout=30)
        try:
            for _ in range(100_000):  # bounded: the signal comes within a second
                try:
                    c.infer("mlp", [x])
                    count("OK")
                except InferenceServerException as exc:
                    count(str(exc.status()))
                    if exc.status() == "StatusCode.UNAVAILABLE":
                        return  # taken out of the rotation: sends elsewhere from now on
        finally:
            c.close()

    threads = [threading.Thread(target=client) for _ in range(8)]
    try:
        for t in threads:
            t.start()
        running.wait(timeout=30)
        time.sleep(0.5)
        server.proc.send_signal(15)  # SIGTERM
        for t in threads:
            t.join(timeout=60)
        assert server.proc.wait(timeout=30) == 0
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(timeout=10)
        server.close_pipes()
    assert codes["StatusCode.CANCELLED"] == 0, codes
    assert codes["StatusCode.UNAVAILABLE"] == 8 and codes["OK"] > 0, codes
