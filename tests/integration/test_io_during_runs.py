"""The server keeps answering while model runs fill its instances.

grpc++ runs every reaction on a small pool of threads (two on a 2-core machine), and a request
that finds its model idle runs on the thread that received it. Were each of those threads
inside a run, nothing would be read or answered until a run ended; the server keeps one out.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator

import factories  # tests/, on the path from tests/conftest.py
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from _server import ServerProcess, metric_value, start_server, wait_for

pytestmark = pytest.mark.integration

ROWS = 8192  # about a second per run of the 12-layer, 512-wide MLP


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("repository")
    (root / "wide" / "1").mkdir(parents=True)
    factories.slow_mlp(root / "wide" / "1" / "model.onnx", layers=12)
    (root / "wide" / "config.pbtxt").write_text(
        f'name: "wide"\nmax_batch_size: {ROWS}\ndynamic_batching {{ }}\n'
        "instance_group [{ count: 2 kind: KIND_CPU }]\n")
    srv = start_server(["--model-repository", str(root)], tmp_path_factory.mktemp("srv"))
    yield srv
    assert srv.terminate() == 0, srv.stderr()


def test_server_answers_while_runs_hold_every_instance(server: ServerProcess) -> None:
    client = grpcclient.InferenceServerClient(server.url)
    probe = grpcclient.InferenceServerClient(server.url)
    done: queue.Queue[object] = queue.Queue()
    x = np.random.default_rng(3).standard_normal((ROWS, 512)).astype(np.float32)

    def running() -> float | None:  # scraped over HTTP, which no gRPC thread serves
        return metric_value(server, 'engine_requests_in_flight{model="wide"')

    try:
        for k in range(2):
            i = grpcclient.InferInput("x", list(x.shape), "FP32")
            i.set_data_from_numpy(x)
            client.async_infer("wide", [i], request_id=f"r{k}",
                               callback=lambda result, error: done.put(error))
        wait_for("both requests running on the two instances", lambda: running() == 2,
                 timeout_s=60)
        assert probe.is_server_live()
        assert probe.is_model_ready("wide")
        # Both runs were still going when the checks were answered. Had both gRPC threads been
        # inside the runs, a check would have been read only once a run had ended, and that
        # run's request counted out of flight before it.
        assert running() == 2, "the checks were answered only after a model run ended"
        for _ in range(2):
            error = done.get(timeout=300)
            assert error is None, error
    finally:
        probe.close()
        client.close()
