"""`engine serve --registry`: serve the models that have an alias, follow alias moves live.

Two versions of ``add`` (y = x + 1, y = x + 2) are registered; the server serves the alias's
target as the default version and versions 1 and 2 by explicit version. Under concurrent
tritonclient load the alias moves from 1 to 2: no request fails and answers switch from 1 to
2. A version 3 whose artifact is damaged after registration is then moved to: it fails to
load, version 2 keeps serving, and the failure is logged and counted.

Also here: RepositoryModelLoad reads only the named model's folder (a broken config beside it
does not matter).
"""

from __future__ import annotations

import os
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Self

import numpy as np
import onnx
import pytest
import tritonclient.grpc as grpcclient
from _server import ServerProcess, start_server
from engine.server.launcher import ServeOptions
from engine.server.registry_serving import parse_version_policy
from onnx import TensorProto, helper, numpy_helper
from tritonclient.utils import InferenceServerException

from engine.errors import InvalidConfigError, InvalidModelNameError
from engine.registry import Registry
from engine.repository import VersionPolicy

pytestmark = pytest.mark.integration

MODEL = "add"
CLIENT_THREADS = 4
WAIT_S = 20.0


def _write_add_model(path: Path, bias: float) -> Path:
    b = numpy_helper.from_array(np.full(4, bias, dtype=np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "b"], ["y"])],
        "add",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _infer(client: grpcclient.InferenceServerClient, version: str = "") -> float:
    x = grpcclient.InferInput("x", [1, 4], "FP32")
    x.set_data_from_numpy(np.zeros((1, 4), dtype=np.float32))
    y = client.infer(MODEL, [x], model_version=version).as_numpy("y")
    assert y is not None
    return float(y[0, 0])


def _metric(server: ServerProcess, prefix: str) -> float | None:
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return None


def _wait_for(what: str, check: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(0.05)


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


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    # start_server sets ENGINE_HOME to tmp_path / "engine-home": the same registry.
    reg = Registry(home=tmp_path / "engine-home")
    yield reg
    reg.close()


def test_alias_move_under_load(tmp_path: Path, registry: Registry) -> None:
    registry.register(MODEL, _write_add_model(tmp_path / "m1.onnx", 1.0), alias="production")
    registry.register(MODEL, _write_add_model(tmp_path / "m2.onnx", 2.0))
    server = start_server(["--registry", "--versions", "1,2", "--poll-s", "0.2"], tmp_path)
    try:
        client = grpcclient.InferenceServerClient(server.url)
        assert _infer(client) == 1.0  # the alias's target is the default version
        assert _infer(client, "1") == 1.0
        assert _infer(client, "2") == 2.0  # selected by the policy, reachable by number
        assert (
            _metric(server, 'engine_model_default_version{alias="production",model="add"}') == 1.0
        )

        with _Load(server.url) as load:
            _wait_for("load on version 1", lambda: load.total() >= 50)
            registry.set_alias(MODEL, "production", 2)
            _wait_for("every client on version 2", lambda: load.latest() == {2.0})
            seen = load.total()
            _wait_for("more load after the move", lambda: load.total() >= seen + 50)
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
        v3 = registry.register(MODEL, _write_add_model(tmp_path / "m3.onnx", 3.0))
        blob = registry.resolve(f"{MODEL}:{v3.version}").path
        os.chmod(blob, 0o644)
        data = bytearray(blob.read_bytes())
        data[len(data) // 2] ^= 0xFF
        blob.write_bytes(bytes(data))
        failures = f'engine_model_load_failures_total{{model="add",version="{v3.version}"}}'
        with _Load(server.url) as load:
            _wait_for("load before the bad move", lambda: load.total() >= 20)
            registry.set_alias(MODEL, "production", v3.version)
            _wait_for("the failure counted", lambda: (_metric(server, failures) or 0) >= 1)
            seen = load.total()
            _wait_for("more load after the failure", lambda: load.total() >= seen + 20)
        assert load.failures == []
        assert {a for answers in load.answers for a in answers} == {2.0}
        assert _infer(client) == 2.0
        assert (
            _metric(server, 'engine_model_default_version{alias="production",model="add"}') == 2.0
        )
        with pytest.raises(InferenceServerException) as info:
            _infer(client, str(v3.version))
        assert info.value.status() == "StatusCode.NOT_FOUND"
        assert f"unknown version {v3.version}" in (info.value.message() or "")
        assert f"model add:{v3.version} failed to load" in server.stderr()

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

        _wait_for("the model removed", gone)
        client.close()
    finally:
        assert server.terminate() == 0, server.stderr()


def test_model_gaining_the_alias_is_added(tmp_path: Path, registry: Registry) -> None:
    registry.register(MODEL, _write_add_model(tmp_path / "m1.onnx", 1.0))
    server = start_server(["--registry", "--alias", "staging", "--poll-s", "0.2"], tmp_path)
    try:
        client = grpcclient.InferenceServerClient(server.url)
        assert not client.is_model_ready(MODEL)
        registry.register(MODEL, _write_add_model(tmp_path / "m2.onnx", 2.0), alias="staging")
        _wait_for("the model added", lambda: client.is_model_ready(MODEL))
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
    _write_add_model(repo / "first" / "1" / "model.onnx", 1.0)
    server = start_server(["--model-repository", str(repo)], tmp_path)
    try:
        _write_add_model(repo / "second" / "1" / "model.onnx", 5.0)
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


def test_version_policy_text() -> None:
    assert parse_version_policy("all") == VersionPolicy("all")
    assert parse_version_policy("latest:3") == VersionPolicy("latest", num_versions=3)
    assert parse_version_policy("3,1,3") == VersionPolicy("specific", versions=(1, 3))
    for bad in ("latest:0", "latest:", "0", "1,,2", "-1", "newest", "1, 2"):
        with pytest.raises(InvalidConfigError, match="version policy"):
            parse_version_policy(bad)


def test_registry_options_are_checked() -> None:
    with pytest.raises(InvalidConfigError, match="exactly one of"):
        ServeOptions(registry=True, demo=True)
    with pytest.raises(InvalidConfigError, match="need --registry"):
        ServeOptions(demo=True, versions="all")
    with pytest.raises(InvalidConfigError, match="version policy"):
        ServeOptions(registry=True, versions="latest:x")
    with pytest.raises(InvalidModelNameError, match="alias"):
        ServeOptions(registry=True, alias="../prod")
    with pytest.raises(InvalidConfigError, match="poll_s"):
        ServeOptions(registry=True, poll_s=0)
