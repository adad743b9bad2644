"""`engine serve --registry` over a registry written by an older release.

``add``'s production alias points at version 2, whose stored config (edited with sqlite3, as
an older release could have written it) holds ``instances = 1000``, over today's bound of 256.
The server must start, serve the other models, report that version as failed (log line and
``engine_model_load_failures_total``) and keep following the registry: when the alias moves
back to a valid version, that one is served.

The registry is driven through the `engine models` command, so this pytest process never loads
``engine._core`` (see test_registry_serving.py).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from _models import write_add_model
from _server import metric_value, start_server, wait_for

pytestmark = pytest.mark.integration

REFUSED = "instances must be an int <= 256; was 1000 (allowed: [1, 256])"


def _models(home: Path, *args: str) -> str:
    cmd = [sys.executable, "-m", "engine.cli", "models", *args, "--home", str(home)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _infer(client: grpcclient.InferenceServerClient, model: str) -> float:
    x = grpcclient.InferInput("x", [1, 4], "FP32")
    x.set_data_from_numpy(np.zeros((1, 4), dtype=np.float32))
    y = client.infer(model, [x]).as_numpy("y")
    assert y is not None
    return float(y[0, 0])


def test_a_lone_refused_production_version_is_reported_as_failed(tmp_path: Path) -> None:
    """The alias exists but its only version cannot load: the start-up warning says so, rather
    than that no model has the alias."""
    home = tmp_path / "engine-home"
    _models(home, "register", "add", str(write_add_model(tmp_path / "a1.onnx", 1.0)),
            "--alias", "production")
    with sqlite3.connect(home / "registry.db") as conn:
        conn.execute("UPDATE versions SET config = json_set(config, '$.instances', 1000)")
    conn.close()
    server = start_server(["--registry", "--poll-s", "0.2"], tmp_path)
    try:
        log = server.stderr()
        assert "no model is served: add:1, with alias 'production', failed to load" in log
        assert "no model has alias" not in log
    finally:
        assert server.terminate() == 0, server.stderr()


def test_a_version_refused_by_new_bounds_fails_alone(tmp_path: Path) -> None:
    home = tmp_path / "engine-home"  # start_server's ENGINE_HOME
    _models(home, "register", "add", str(write_add_model(tmp_path / "a1.onnx", 1.0)))
    _models(home, "register", "add", str(write_add_model(tmp_path / "a2.onnx", 2.0)))
    _models(home, "alias", "add", "production", "2")
    other = write_add_model(tmp_path / "o1.onnx", 5.0)
    _models(home, "register", "other", str(other), "--alias", "production")
    with sqlite3.connect(home / "registry.db") as conn:
        conn.execute(
            "UPDATE versions SET config = json_set(config, '$.instances', 1000) "
            "WHERE version = 2 AND model_id = (SELECT id FROM models WHERE name = 'add')"
        )
    conn.close()
    shown = json.loads(_models(home, "show", "add@production", "--json"))
    assert (shown["config"]["instances"], shown["config_error"]) == (1000, REFUSED)

    server = start_server(["--registry", "--poll-s", "0.2"], tmp_path)
    try:
        client = grpcclient.InferenceServerClient(server.url)
        assert _infer(client, "other") == 5.0
        assert not client.is_model_ready("add")
        failures = 'engine_model_load_failures_total{model="add",version="2"}'
        assert (metric_value(server, failures) or 0) >= 1
        assert metric_value(
            server, 'engine_model_default_version{alias="production",model="other"}'
        )
        log = server.stderr()
        assert "model add:2 failed to load" in log
        assert "model 'add' version 2 cannot be loaded: its stored config is refused" in log
        assert REFUSED in log

        # The watcher still follows the registry: moving the alias to a valid version serves it.
        _models(home, "alias", "add", "production", "1")
        wait_for("add:1 served", lambda: client.is_model_ready("add"))
        assert _infer(client, "add") == 1.0
        assert _infer(client, "other") == 5.0
        client.close()
    finally:
        assert server.terminate() == 0, server.stderr()


def test_a_version_with_a_refused_signature_and_lineage_is_served(tmp_path: Path) -> None:
    """``add``'s production version stores an element type this engine lacks in its signature
    and an alias as its lineage parent. Serving reads neither (the tensors come from the model
    file), so it is served, and so is every other model."""
    home = tmp_path / "engine-home"  # start_server's ENGINE_HOME
    _models(home, "register", "add", str(write_add_model(tmp_path / "a1.onnx", 1.0)))
    _models(
        home,
        "register",
        "add",
        str(write_add_model(tmp_path / "a2.onnx", 2.0)),
        "--parent",
        "add:1",
        "--alias",
        "production",
    )
    _models(
        home,
        "register",
        "other",
        str(write_add_model(tmp_path / "o1.onnx", 5.0)),
        "--alias",
        "production",
    )
    with sqlite3.connect(home / "registry.db") as conn:
        conn.execute(
            "UPDATE versions SET signature = json_set(signature, '$.inputs[0].dtype', 'bfloat16'), "
            "parent = 'add@production' "
            "WHERE version = 2 AND model_id = (SELECT id FROM models WHERE name = 'add')"
        )
    conn.close()
    shown = json.loads(_models(home, "show", "add@production", "--json"))
    assert "unknown element type 'bfloat16'" in shown["signature_error"]
    assert "lineage parent must name an exact version" in shown["lineage_error"]

    server = start_server(["--registry", "--poll-s", "0.2"], tmp_path)
    try:
        client = grpcclient.InferenceServerClient(server.url)
        wait_for("add:2 served", lambda: client.is_model_ready("add"))
        assert _infer(client, "add") == 2.0
        assert _infer(client, "other") == 5.0
        assert "failed to load" not in server.stderr()
        client.close()
    finally:
        assert server.terminate() == 0, server.stderr()


def test_a_damaged_version_number_keeps_what_serves(tmp_path: Path) -> None:
    """SQLite only (PostgreSQL refuses text in an INTEGER column): ``add``'s production version
    gets a version number that is no integer while it is served. The watcher says so and keeps
    serving it (the alias is not taken as gone); ``other`` is served throughout."""
    home = tmp_path / "engine-home"  # start_server's ENGINE_HOME
    _models(home, "register", "add", str(write_add_model(tmp_path / "a1.onnx", 1.0)),
            "--alias", "production")
    _models(home, "register", "other", str(write_add_model(tmp_path / "o1.onnx", 5.0)),
            "--alias", "production")
    server = start_server(["--registry", "--poll-s", "0.2"], tmp_path)
    try:
        client = grpcclient.InferenceServerClient(server.url)
        assert _infer(client, "add") == 1.0
        with sqlite3.connect(home / "registry.db") as conn:
            conn.execute("UPDATE versions SET version = 'abc' WHERE model_id = "
                         "(SELECT id FROM models WHERE name = 'add')")
        conn.close()
        wait_for("the warning", lambda: "add@production cannot be followed" in server.stderr())
        assert ("points at a version whose number cannot be read: versions.version holds 'abc', "
                "not an integer (versions.id 1); what was serving stays") in server.stderr()
        assert _infer(client, "add") == 1.0
        assert _infer(client, "other") == 5.0
        log = server.stderr()
        assert "lost alias" not in log and "Traceback" not in log
        client.close()
    finally:
        assert server.terminate() == 0, server.stderr()


@pytest.mark.parametrize(("sql", "why"), [
    ("UPDATE versions SET version = 'abc'",
     ("points at a version whose number cannot be read: versions.version holds 'abc', not an "
      "integer (versions.id 1)")),
    ("UPDATE aliases SET version_id = 'abc'", "aliases.version_id holds 'abc', not an integer"),
], ids=["version", "version_id"])
def test_a_lone_production_alias_that_cannot_be_followed_is_named(
    tmp_path: Path, sql: str, why: str
) -> None:
    """SQLite only: the only production alias is damaged before the server starts. The
    start-up warning names the model and why its alias cannot be followed, rather than that no
    model has the alias."""
    home = tmp_path / "engine-home"
    _models(home, "register", "add", str(write_add_model(tmp_path / "a1.onnx", 1.0)),
            "--alias", "production")
    with sqlite3.connect(home / "registry.db") as conn:
        conn.execute(sql)
    conn.close()
    server = start_server(["--registry", "--poll-s", "0.2"], tmp_path)
    try:
        log = server.stderr()
        assert (f"no model is served: add@production cannot be followed: {why}; watching the "
                f"registry for a change") in log
        assert "no model has alias" not in log and "Traceback" not in log
    finally:
        assert server.terminate() == 0, server.stderr()
