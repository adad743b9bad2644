"""`engine` (engine/cli.py): expected failures print one `error: ...` line and exit 1;
`--debug` shows the traceback instead."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import main
from engine.errors import InvalidConfigError


def _report_args(tmp_path: Path, out: Path) -> list[str]:
    """`engine monitor report` of a model with one logged request (one with nothing recorded
    is refused before its output is written)."""
    import numpy as np

    from engine.monitoring.prediction_log import PredictionLog, PredictionLogConfig

    if not (tmp_path / "logs").exists():
        log = PredictionLog(
            tmp_path / "logs", model="m", version=1, config=PredictionLogConfig(sample_rate=1.0)
        )
        x = np.ones((1, 2), np.float32)
        log.record({"x": x}, {"y": x}, latency_us=5)
        log.close()
    (tmp_path / "history").mkdir(exist_ok=True)
    return [
        "monitor",
        "report",
        "m",
        "--logs",
        str(tmp_path / "logs"),
        "--history",
        str(tmp_path / "history"),
        "--out",
        str(out),
    ]


def test_os_errors_are_one_line_naming_the_path(tmp_path, capsys) -> None:
    (tmp_path / "file").write_text("")
    # The report's folder would be created inside a regular file: an OSError, not a bug.
    assert main(_report_args(tmp_path, tmp_path / "file" / "r.html")) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert f"{str(tmp_path / 'file')!r}" in err and "[Errno" not in err
    assert "Traceback" not in err


def test_debug_shows_the_traceback(tmp_path) -> None:
    with pytest.raises(InvalidConfigError, match="--logs .* does not exist"):
        main(["--debug", "monitor", "report", "m", "--logs", str(tmp_path / "none")])
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError):
        main(["--debug", *_report_args(tmp_path, tmp_path / "file" / "r.html")])


def test_console_script_exit_code_and_stderr(tmp_path) -> None:
    env = {**os.environ, "ENGINE_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, "-m", "engine.cli", "monitor", "rules", "--for", "abc"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("error: for_duration must be a Prometheus duration")
    assert "Traceback" not in done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "engine.cli", "--debug", "monitor", "rules", "--for", "abc"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1 and "Traceback" in done.stderr


def test_log_json_error_line_is_a_json_record(tmp_path) -> None:
    # Under --log-json every stderr line parses, the CLI's own fatal error included.
    env = {**os.environ, "ENGINE_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine.cli",
            "serve",
            "--log-json",
            "--model-repository",
            str(tmp_path / "missing"),
            "--grpc-port",
            "0",
            "--metrics-port",
            "0",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1 and done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    record = json.loads(lines[0])
    assert record["level"] == "ERROR" and record["logger"] == "engine.cli"
    assert (
        record["message"]
        == f"error: model repository {str(tmp_path / 'missing')!r} is not a folder"
    )


def test_ctrl_c_stops_a_command_without_a_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import engine.commands.tune as tune_command

    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(tune_command, "_tune", interrupted)
    assert main(["tune", str(tmp_path / "m.onnx")]) == 130
    assert capsys.readouterr().err == "interrupted\n"
    with pytest.raises(KeyboardInterrupt):
        main(["--debug", "tune", str(tmp_path / "m.onnx")])


def test_ctrl_c_while_the_commands_load_is_an_interruption_too(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from engine import cli

    def interrupted() -> object:
        raise KeyboardInterrupt  # as if Ctrl-C came while a command's module was imported

    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert main(["models", "list"]) == 130
    assert capsys.readouterr().err == "interrupted\n"
    with pytest.raises(KeyboardInterrupt):
        main(["--debug", "models", "list"])


def test_sigterm_stops_a_command_after_its_cleanup(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`timeout`, `kill` and systemd stop commands with SIGTERM: a registration stopped while
    it holds a staged copy of the file removes that copy, and the command exits 143."""
    import os
    import signal

    import factories

    import engine.registry.registry as registry_module

    real_check = registry_module.check_model_file

    def check_then_terminated(*args: object) -> object:
        result = real_check(*args)  # type: ignore[arg-type]
        os.kill(os.getpid(), signal.SIGTERM)  # the staged copy exists now
        return result

    monkeypatch.setattr(registry_module, "check_model_file", check_then_terminated)
    before = signal.getsignal(signal.SIGTERM)
    home = tmp_path / "home"
    model = factories.mlp(tmp_path / "m.onnx")
    assert main(["models", "register", "m", str(model), "--home", str(home)]) == 143
    assert capsys.readouterr().err == "terminated\n"
    assert list((home / "artifacts" / "tmp").iterdir()) == []  # the staged copy is gone
    assert signal.getsignal(signal.SIGTERM) is before  # the caller's handler is back
    monkeypatch.undo()
    assert main(["models", "list", "--home", str(home), "--json"]) == 0
    assert capsys.readouterr().out.strip() == "[]"  # nothing was registered

