"""`engine serve --registry` and the monitoring of the models it serves, on a real server.

- A model registered with a malformed reference profile is served without monitoring, with a
  warning naming the bad field: at start-up beside a good model, and when it gains the alias
  while the server runs. The good model is monitored.
- The monitoring options of `engine serve` (window, thresholds, webhook, log rotation) reach
  the monitor: a window closes on time, the drift gauge and the webhook use the PSI threshold
  given (a shift the default 0.2 would not flag), a test turned off does not fire, and the
  prediction log becomes readable while the server runs.

The registry is driven through the `engine models` command, so this process never loads
``engine._core`` (see test_registry_serving.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from _models import write_add_model
from _server import ServerProcess, start_server, wait_for

pytestmark = pytest.mark.integration

WAIT_S = 30.0
# x[0]: half the training rows below 1, half at or above it.
GOOD_PROFILE = {
    "schema_version": 1,
    "features": {
        "x[0]": {"kind": "numeric", "bin_edges": [0.0, 1.0, 2.0], "bin_proportions": [0.5, 0.5]}
    },
}




def _register(home: Path, name: str, model: Path, profile: Any) -> None:
    cmd = [
        sys.executable, "-m", "engine.cli", "models", "register", name, str(model),
        "--alias", "production", "--home", str(home),
        "--param", f"reference_profile={json.dumps(profile)}",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def _infer(url: str, name: str, x: np.ndarray) -> None:
    client = grpcclient.InferenceServerClient(url)
    try:
        tensor = grpcclient.InferInput("x", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        y = client.infer(name, [tensor]).as_numpy("y")
        np.testing.assert_array_equal(y, x + 1)
    finally:
        client.close()


def _metrics(server: ServerProcess) -> dict[str, float]:
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out




def _ready(url: str, name: str) -> bool:
    client = grpcclient.InferenceServerClient(url)
    try:
        return bool(client.is_model_ready(name))
    finally:
        client.close()


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        (
            {"features": {"x[0]": {"kind": "numeric", "bin_edges": ["x", 1, 2],
                                   "bin_proportions": [0.5, 0.5]}}},
            "profile['features']['x[0]']['bin_edges'][0] must be a number; was str 'x'",
        ),
        (
            {"features": {"x[0]": {"kind": "categorical", "categories": 5, "proportions": [1]}}},
            "profile['features']['x[0]']['categories'] must be a list; was int 5",
        ),
    ],
)  # fmt: skip
def test_a_malformed_profile_costs_only_that_models_monitoring(
    tmp_path: Path, profile: dict[str, Any], message: str
) -> None:
    home = tmp_path / "engine-home"  # start_server's ENGINE_HOME
    model = write_add_model(tmp_path / "add.onnx")
    _register(home, "good", model, GOOD_PROFILE)
    _register(home, "bad", model, profile)
    server = start_server(["--registry", "--poll-s", "0.2", "--log-sample-rate", "1"], tmp_path)
    try:
        x = np.zeros((1, 4), np.float32)
        _infer(server.url, "good", x)
        _infer(server.url, "bad", x)
        # Added while the server runs: served on the same pass, without monitoring.
        _register(
            home, "late", model, {"features": {"x[0]": {"kind": "numeric", "nan_fraction": "lots"}}}
        )
        wait_for("the model added", lambda: _ready(server.url, "late"), WAIT_S)
        _infer(server.url, "late", x)
        metrics = _metrics(server)
        assert 'engine_prediction_log_records_total{model="good",version="1"}' in metrics
        assert not any('model="bad"' in k and "prediction_log" in k for k in metrics)
    finally:
        assert server.terminate() == 0, server.stderr()
    stderr = server.stderr()
    assert f"model bad:1 is served without drift monitoring: {message}" in stderr, stderr
    assert (
        "model late:1 is served without drift monitoring: "
        "profile['features']['x[0]']['nan_fraction'] must be a number; was str 'lots'"
    ) in stderr, stderr
    assert "good:1 is served without drift monitoring" not in stderr
    assert "registry poll failed" not in stderr and "Traceback" not in stderr


class _Webhook:
    """An HTTP endpoint on 127.0.0.1 that keeps every JSON body POSTed to it."""

    def __init__(self) -> None:
        bodies: list[dict[str, Any]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # the http.server name
                length = int(self.headers.get("Content-Length", 0))
                bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.bodies = bodies
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def webhook() -> Iterator[_Webhook]:
    hook = _Webhook()
    yield hook
    hook.close()


def test_serve_monitoring_options_reach_the_monitor(tmp_path: Path, webhook: _Webhook) -> None:
    home = tmp_path / "engine-home"
    _register(home, "add", write_add_model(tmp_path / "add.onnx"), GOOD_PROFILE)
    server = start_server(
        [
            "--registry", "--poll-s", "0.2", "--log-sample-rate", "1", "--log-rotate-s", "1",
            "--drift-window-rows", "100000", "--drift-window-s", "1", "--drift-min-rows", "100",
            "--psi-threshold", "0.05", "--ks-threshold", "off", "--alert-webhook", webhook.url,
        ],
        tmp_path,
    )  # fmt: skip
    try:
        # 70% of the rows below 1 where training had 50%: PSI 0.17 (under the default 0.2,
        # over 0.05), binned KS 0.2 (over the default 0.15, but turned off).
        x = np.zeros((50, 4), np.float32)
        x[:35, 0], x[35:, 0] = 0.5, 1.5
        _infer(server.url, "add", x)  # two requests: max_batch_size is 64
        _infer(server.url, "add", x)
        mv = 'model="add",version="1"'
        windows = f"engine_drift_windows_total{{{mv}}}"
        # A window of 100 rows closes on time (1 s, at least 100 rows), not at 100,000 rows.
        wait_for("a drift window", lambda: _metrics(server).get(windows, 0) >= 1, WAIT_S)
        metrics = _metrics(server)
        assert metrics[f"engine_drift_window_rows{{{mv}}}"] == 100
        psi = metrics[f'engine_drift_score{{feature="x[0]",metric="psi",{mv}}}']
        assert 0.05 < psi < 0.2 and psi == pytest.approx(0.1695, abs=0.005)
        assert metrics[f'engine_drift_score{{feature="x[0]",metric="ks",{mv}}}'] == (
            pytest.approx(0.2)
        )
        assert metrics[f'engine_drift_alert{{feature="x[0]",{mv}}}'] == 1.0
        wait_for("the webhook's alert", lambda: bool(webhook.bodies), WAIT_S)
        alert = webhook.bodies[0]
        assert (alert["status"], alert["model"], alert["version"]) == ("firing", "add", "1")
        assert [(f["name"], f["breaches"]) for f in alert["features"]] == [("x[0]", ["psi"])]
        # The sampled request is readable while the server runs (the file closed after 1 s).
        records = f"engine_prediction_log_records_total{{{mv}}}"
        wait_for("a complete log file", lambda: _metrics(server).get(records, 0) >= 1, WAIT_S)
        assert list((home / "logs" / "add").glob("*.parquet"))
    finally:
        assert server.terminate() == 0, server.stderr()
    assert '"status": "firing"' in server.stderr()  # the alert's log line, same decision


def test_bad_monitoring_options_exit_1(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "engine.cli", "serve", "--grpc-port", "0", "--registry",
           "--psi-threshold", "0", "--home", str(tmp_path)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("error: --psi-threshold must be > 0, or off; was 0.0")


@pytest.mark.slow  # three servers, each waiting for its writer's first flush (5 s)
def test_the_open_log_of_a_killed_server_is_removed_by_the_next_not_a_running_ones(
    tmp_path: Path,
) -> None:
    import pyarrow.parquet as pq

    from engine.monitoring.prediction_log import ORPHAN_MIN_AGE_S

    home = tmp_path / "engine-home"
    _register(home, "add", write_add_model(tmp_path / "add.onnx"), GOOD_PROFILE)
    logs = home / "logs" / "add"
    args = ["--registry", "--poll-s", "0.2", "--log-sample-rate", "1"]
    orphans = 'engine_prediction_log_orphans_removed_total{model="add",version="1"}'
    x = np.zeros((1, 4), np.float32)

    def partials() -> set[Path]:
        return set(logs.glob("*.parquet.partial"))

    killed = start_server(args, tmp_path)
    try:
        _infer(killed.url, "add", x)
        wait_for("the first server's open log", lambda: len(partials()) == 1, WAIT_S)
    finally:
        killed.proc.kill()  # SIGKILL: no footer, no rename
        killed.proc.wait(timeout=30)
        killed.close_pipes()
    (dead,) = partials()
    size = dead.stat().st_size
    then = time.time() - ORPHAN_MIN_AGE_S - 60  # as if the server had died two hours ago
    os.utime(dead, (then, then))
    running = start_server(args, tmp_path)
    try:
        wait_for("the dead file's removal", lambda: _metrics(running).get(orphans) == 1, WAIT_S)
        assert not dead.exists()
        _infer(running.url, "add", x)
        wait_for("the running server's open log", lambda: len(partials()) == 1, WAIT_S)
        (held,) = partials()
        third = start_server(args, tmp_path)
        try:
            _infer(third.url, "add", x)
            # Its writer cleans up before it opens a file: once its file exists, it has seen
            # the running server's one, and kept it.
            wait_for("the third server's open log", lambda: len(partials()) == 2, WAIT_S)
            assert held.exists()
            assert _metrics(third)[orphans] == 0
        finally:
            assert third.terminate() == 0, third.stderr()
    finally:
        assert running.terminate() == 0, running.stderr()
    assert f"removed {dead} ({size} bytes)" in running.stderr(), running.stderr()
    assert partials() == set()  # both closed their files on SIGTERM
    assert sum(pq.read_metadata(p).num_rows for p in logs.glob("*.parquet")) == 2
