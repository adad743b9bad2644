"""`engine serve --registry`: serve the models that have an alias, follow alias moves live.

Two versions of ``add`` (y = x + 1, y = x + 2) are registered; the server serves the alias's
target as the default version and versions 1 and 2 by explicit version. Under concurrent
tritonclient load the alias moves from 1 to 2: no request fails and answers switch from 1 to
2. A version 3 whose artifact is damaged after registration is then moved to: it fails to
load, version 2 keeps serving, and the failure is logged and counted.

Also here: RepositoryModelLoad reads only the named model's folder (a broken config beside it
does not matter).

The registry is driven through the `engine models` command, so this pytest process never loads
``engine._core`` (a leftover of an import-order clash with ``grpc_tools``, which
engine/_load_order.py now turns into an ImportError).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Self

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from _models import write_add_model
from _server import metric_value, start_server, wait_for
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.integration

MODEL = "add"
CLIENT_THREADS = 4




def _infer(client: grpcclient.InferenceServerClient, version: str = "") -> float:
    x = grpcclient.InferInput("x", [1, 4], "FP32")
    x.set_data_from_numpy(np.zeros((1, 4), dtype=np.float32))
    y = client.infer(MODEL, [x], model_version=version).as_numpy("y")
    assert y is not None
    return float(y[0, 0])






class _Load:
    """CLIENT_THREADS threads calling ``add`` without a version until stopped; each records
    its answers in order and every failure."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.answers: list[list[float]] = [[] for _ in range(CLIENT_THREADS)]
        self.failures: list[BaseException] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True)
            for i in range(CLIENT_THREADS)
        ]

    def _run(self, i: int) -> None:
        client = grpcclient.InferenceServerClient(self.url)
        try:
            while not self._stop.is_set():
                try:
                    self.answers[i].append(_infer(client))
                except InferenceServerException as exc:
                    self.failures.append(exc)
        finally:
            client.close()

    def latest(self) -> set[float]:
        return {a[-1] for a in self.answers if a}

    def total(self) -> int:
        return sum(len(a) for a in self.answers)

    def __enter__(self) -> Self:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)


class _Registry:
    """The registry under ENGINE_HOME = home, through the `engine models` command."""

    def __init__(self, home: Path) -> None:
        self.home = home

    def run(self, *args: str) -> Any:
        cmd = [sys.executable, "-m", "engine.cli", "models", *args, "--home", str(self.home)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if "--json" in args else None

    def register(self, name: str, path: Path, *extra: str) -> int:
        return int(self.run("register", name, str(path), "--json", *extra)["version"])

    def set_alias(self, name: str, alias: str, version: int) -> None:
        self.run("alias", name, alias, str(version))

    def remove_alias(self, name: str, alias: str) -> None:
        self.run("alias", name, alias, "--delete")

    def blob(self, ref: str) -> Path:
        sha256 = self.run("show", ref, "--json")["sha256"]
        return self.home / "artifacts" / "sha256" / sha256[:2] / sha256


@pytest.fixture
def registry(tmp_path: Path) -> _Registry:
    # start_server sets ENGINE_HOME to tmp_path / "engine-home": the same registry.
    return _Registry(tmp_path / "engine-home")


def test_alias_move_under_load(tmp_path: Path, registry: _Registry) -> None:
    registry.register(MODEL, write_add_model(tmp_path / "m1.onnx", 1.0), "--alias", "production")
    registry.register(MODEL, write_add_model(tmp_path / "m2.onnx", 2.0))
    server = start_server(["--registry", "--versions", "1,2", "--poll-s", "0.2"], tmp_path)
    try:
        client = grpcclient.InferenceServerClient(server.url)
        assert _infer(client) == 1.0  # the alias's target is the default version
        assert _infer(client, "1") == 1.0
        assert _infer(client, "2") == 2.0  # selected by the policy, reachable by number
        assert (
            metric_value(server, 'engine_model_default_version{alias="production",model="add"}') == 1.0
        )

        with _Load(server.url) as load:
            wait_for("load on version 1", lambda: load.total() >= 50)
            registry.set_alias(MODEL, "production", 2)
            wait_for("every client on version 2", lambda: load.latest() == {2.0})
            seen = load.total()
            wait_for("more load after the move", lambda: load.total() >= seen + 50)
        assert load.failures == []
        for answers in load.answers:
            # Each client's answers switch once, from version 1's to version 2's.
            switch = answers.index(2.0)
            assert set(answers[:switch]) <= {1.0}, answers
            assert set(answers[switch:]) == {2.0}, answers
        # Version 1 stays reachable by number (the policy selects it), v2 is the default.
        assert _infer(client, "1") == 1.0
        assert _infer(client, "2") == 2.0
        assert _infer(client) == 2.0

        # A damaged version 3 moved to the alias: it fails to load, version 2 keeps serving.
        v3 = registry.register(MODEL, write_add_model(tmp_path / "m3.onnx", 3.0))
        blob = registry.blob(f"{MODEL}:{v3}")
        os.chmod(blob, 0o644)
        data = bytearray(blob.read_bytes())
        data[len(data) // 2] ^= 0xFF
        blob.write_bytes(bytes(data))
        failures = f'engine_model_load_failures_total{{model="add",version="{v3}"}}'
        with _Load(server.url) as load:
            wait_for("load before the bad move", lambda: load.total() >= 20)
            registry.set_alias(MODEL, "production", v3)
            wait_for("the failure counted", lambda: (metric_value(server, failures) or 0) >= 1)
            seen = load.total()
            wait_for("more load after the failure", lambda: load.total() >= seen + 20)
        assert load.failures == []
        assert {a for answers in load.answers for a in answers} == {2.0}
        assert _infer(client) == 2.0
        assert (
            metric_value(server, 'engine_model_default_version{alias="production",model="add"}') == 2.0
        )
        with pytest.raises(InferenceServerException) as info:
            _infer(client, str(v3))
        assert info.value.status() == "StatusCode.NOT_FOUND"
        assert f"unknown version {v3}" in (info.value.message() or "")
        assert f"model add:{v3} failed to load" in server.stderr()

        # A model that loses the alias is drained and removed.
        registry.remove_alias(MODEL, "production")

        def gone() -> bool:
            try:
                _infer(client)
            except InferenceServerException as exc:
                assert exc.status() == "StatusCode.NOT_FOUND", exc
                assert "unknown model 'add'" in (exc.message() or "")
                return True
            return False

        wait_for("the model removed", gone)
        client.close()
    finally:
        assert server.terminate() == 0, server.stderr()


def test_model_gaining_the_alias_is_added(tmp_path: Path, registry: _Registry) -> None:
    registry.register(MODEL, write_add_model(tmp_path / "m1.onnx", 1.0))
    server = start_server(["--registry", "--alias", "staging", "--poll-s", "0.2"], tmp_path)
    try:
        client = grpcclient.InferenceServerClient(server.url)
        assert not client.is_model_ready(MODEL)
        registry.register(MODEL, write_add_model(tmp_path / "m2.onnx", 2.0), "--alias", "staging")
        wait_for("the model added", lambda: client.is_model_ready(MODEL))
        assert _infer(client) == 2.0
        assert _infer(client, "2") == 2.0
        with pytest.raises(InferenceServerException) as info:
            _infer(client, "1")  # no version policy: the alias's target only
        assert info.value.status() == "StatusCode.NOT_FOUND"
        assert "unknown version 1" in (info.value.message() or "")
        client.close()
    finally:
        assert server.terminate() == 0, server.stderr()


def test_repository_load_reads_only_that_model(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    write_add_model(repo / "first" / "1" / "model.onnx", 1.0)
    server = start_server(["--model-repository", str(repo)], tmp_path)
    try:
        write_add_model(repo / "second" / "1" / "model.onnx", 5.0)
        (repo / "broken" / "1").mkdir(parents=True)
        (repo / "broken" / "config.pbtxt").write_text("max_batch_size: oops\n")
        client = grpcclient.InferenceServerClient(server.url)
        client.load_model("second")  # the broken folder beside it does not matter
        assert client.is_model_ready("second")
        with pytest.raises(InferenceServerException) as info:
            client.load_model("broken")
        assert info.value.status() == "StatusCode.FAILED_PRECONDITION"
        assert "load of model 'broken' failed" in (info.value.message() or "")
        assert client.is_model_ready("first") and client.is_model_ready("second")
        client.close()
    finally:
        assert server.terminate() == 0, server.stderr()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--registry", "--versions", "latest:0"], "version policy latest:N"),
        (["--registry", "--versions", "1,,2"], "version policy must be"),
        (["--registry", "--alias", "../prod"], "invalid alias"),
        (["--demo", "--versions", "all"], "need --registry"),
    ],
)
def test_bad_registry_options_are_refused(tmp_path: Path, args: list[str], message: str) -> None:
    cmd = [sys.executable, "-m", "engine.cli", "serve", "--grpc-port", "0", *args]
    env = {**os.environ, "ENGINE_HOME": str(tmp_path / "engine-home")}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env, check=False)
    assert done.returncode == 1, done.stderr
    assert message in done.stderr


def test_a_server_on_another_home_serves_from_the_shared_artifact_store(
        tmp_path: Path, registry: _Registry) -> None:
    # "Another machine": the server's home (ENGINE_HOME = tmp_path / "engine-home") has neither
    # the database nor the blob; both are shared (the SQLite file stands in for PostgreSQL).
    other, store = tmp_path / "registering-home", (tmp_path / "shared-store").as_uri()
    database = f"sqlite:///{other / 'registry.db'}"
    registering = _Registry(other)
    registering.run("register", MODEL, str(write_add_model(tmp_path / "m.onnx", 3.0)),
                    "--alias", "production", "--artifacts-url", store)
    server = start_server(["--registry", "--registry-url", database, "--artifacts-url", store],
                          tmp_path)
    try:
        client = grpcclient.InferenceServerClient(server.url)
        assert _infer(client) == 3.0
        client.close()
        cached = list((registry.home / "artifact-cache" / "sha256").rglob("*"))
        assert [p for p in cached if p.is_file()], "the blob was not fetched into the cache"
        assert not (registry.home / "artifacts").exists()
    finally:
        assert server.terminate() == 0, server.stderr()


def test_versions_the_policy_names_that_are_not_registered_are_warned_of_once(
        tmp_path: Path, registry: _Registry) -> None:
    registry.register(MODEL, write_add_model(tmp_path / "m1.onnx", 1.0), "--alias", "production")
    server = start_server(["--registry", "--versions", "1,7,9", "--poll-s", "0.1"], tmp_path)
    try:
        client = grpcclient.InferenceServerClient(server.url)
        assert _infer(client, "1") == 1.0
        client.close()
        warning = "add: versions 7,9 named by the version policy are not registered"
        wait_for("the warning", lambda: warning in server.stderr())
        time.sleep(0.6)  # several more polls at --poll-s 0.1: none repeats it
        assert server.stderr().count(warning) == 1
    finally:
        assert server.terminate() == 0, server.stderr()
