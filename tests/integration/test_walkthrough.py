"""README's walk-through, end to end: `engine train tabular-demo --alias production`, then
`engine serve --registry`, then predictions over gRPC (raw columns, strings included) and
in-process, the drift monitor started from the training profile, and the sampled prediction
log written on shutdown."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from _server import start_server

import engine

pytestmark = pytest.mark.integration

ROW = {
    "age": np.array([[35.0]], np.float32), "income": np.array([[42000.0]], np.float32),
    "tenure_months": np.array([[12.0]], np.float32), "balance": np.array([[900.0]], np.float32),
    "region": np.array([["west"]], object), "plan": np.array([["basic"]], object),
    "channel": np.array([["phone"]], object),
}


def test_train_serve_predict(tmp_path: Path) -> None:
    home = tmp_path / "engine-home"
    env = {**os.environ, "ENGINE_HOME": str(home)}
    trained = subprocess.run(
        [sys.executable, "-m", "engine.cli", "train", "tabular-demo", "--alias", "production"],
        env=env, capture_output=True, text=True, timeout=300, check=False)
    assert trained.returncode == 0, trained.stderr
    assert "tabular-demo@production" in trained.stdout

    server = start_server(["--registry", "--log-sample-rate", "1.0", "--log-json"], tmp_path)
    try:
        client = grpcclient.InferenceServerClient(server.url)
        inputs = []
        for name, value in ROW.items():
            tensor = grpcclient.InferInput(name, list(value.shape),
                                           "BYTES" if value.dtype == object else "FP32")
            tensor.set_data_from_numpy(value)
            inputs.append(tensor)
        over_grpc = client.infer("tabular-demo", inputs)
        for _ in range(50):
            client.infer("tabular-demo", inputs)
        metrics = urllib.request.urlopen(
            f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10).read().decode()
        ok = re.search(r'engine_requests_total\{model="tabular-demo",outcome="ok",version="1"\} '
                       r'([0-9.]+)', metrics)
        assert ok is not None, metrics
        assert float(ok.group(1)) >= 51  # ours, plus the warm-up request of the load
    finally:
        assert server.terminate() == 0
    assert "drift monitoring" not in server.stderr()  # the profile was usable: no warning
    records = [json.loads(line) for line in server.stderr().splitlines() if line.strip()]
    assert any("tabular-demo:1 loaded and warmed" in r["message"] for r in records), records

    with engine.load("tabular-demo@production", registry_home=home) as model:
        in_process = model.predict(ROW)
    np.testing.assert_array_equal(over_grpc.as_numpy("label"), in_process["label"])
    np.testing.assert_allclose(over_grpc.as_numpy("probabilities"), in_process["probabilities"],
                               rtol=1e-6)
    # The sampled prediction log was flushed to Parquet when the server stopped.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not list((home / "logs").rglob("*.parquet")):
        time.sleep(0.2)
    assert list((home / "logs").rglob("*.parquet")), "no prediction log was written"
