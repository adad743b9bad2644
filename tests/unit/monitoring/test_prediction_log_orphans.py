"""``*.parquet.partial`` files left by writers that died: a writer starting in the folder (and
``engine monitor report --remove-orphans``) removes them, never a file a live writer holds.

The writers are real processes (predlog_writer_process.py): one keeps its file open, one is
killed with SIGKILL while its file is open, as a killed server would be.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from prometheus_client import CollectorRegistry

from engine.cli import main
from engine.monitoring.collector import DriftCollector
from engine.monitoring.prediction_log import (
    ORPHAN_MIN_AGE_S,
    PredictionLog,
    PredictionLogConfig,
    read_prediction_logs,
)

SCRIPT = Path(__file__).with_name("predlog_writer_process.py")
WAIT_S = 60.0
ORPHANS = "engine_prediction_log_orphans_removed_total"


class Writer:
    """A prediction log in a child process, holding its open ``*.parquet.partial``."""

    def __init__(self, directory: Path, version: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), str(directory), str(version)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=SCRIPT.parent,
        )
        self.partial = directory / self._line()["partial"]

    def _line(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], WAIT_S)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.kill()
            assert self.proc.stderr is not None
            raise AssertionError(f"the writer process said nothing: {self.proc.stderr.read()}")
        return json.loads(line)

    def close(self) -> list[str]:
        """Close the log (its file is published); returns the files it completed."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("close\n")
        self.proc.stdin.flush()
        files = self._line()["files"]
        assert self.proc.wait(timeout=WAIT_S) == 0
        return list(files)

    def kill(self) -> None:
        """SIGKILL: no footer, no rename; the file stays ``*.parquet.partial``."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=WAIT_S)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def writers() -> Iterator[list[Writer]]:
    """Child writers started by a test; killed afterwards if the test left them running."""
    started: list[Writer] = []
    yield started
    for writer in started:
        writer.kill()


def live_and_killed(folder: Path, writers: list[Writer]) -> tuple[Writer, Path]:
    """A live writer (version 2) and the open file of a killed one (version 1)."""
    # The live one starts first: a writer starting later would clean up the killed one's file.
    live = Writer(folder, version=2)
    writers.append(live)
    killed = Writer(folder, version=1)
    writers.append(killed)
    killed.kill()
    assert live.partial.exists() and killed.partial.exists()
    assert killed.partial.stat().st_size > 0  # a row group, but no footer
    backdate(killed.partial)
    return live, killed.partial


def backdate(path: Path, seconds: float = ORPHAN_MIN_AGE_S + 60) -> None:
    """As if nothing had written to ``path`` for ``seconds``: a dead writer's file, later."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_a_starting_writer_removes_only_files_no_live_writer_holds(
    tmp_path: Path, writers: list[Writer], caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "logs"
    live, dead = live_and_killed(folder, writers)
    size = dead.stat().st_size
    foreign = folder / "notes.parquet.partial"  # not a name the writer gives: never touched
    foreign.write_bytes(b"not a log")
    collector = DriftCollector()
    registry = CollectorRegistry()
    registry.register(collector)
    with caplog.at_level(logging.WARNING, logger="engine.monitoring.prediction_log"):
        log = PredictionLog(
            folder, model="m", version=1, config=PredictionLogConfig(sample_rate=1.0)
        )
        collector.add_prediction_log(log)
        assert log.flush()  # the writer cleans up before it takes its first record
    assert not dead.exists()
    assert live.partial.exists() and foreign.exists()
    assert log.counters()["orphans_removed"] == 1
    assert registry.get_sample_value(ORPHANS, {"model": "m", "version": "1"}) == 1
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(dead) in m and f"({size} bytes)" in m for m in warned), warned
    log.close()
    # The live writer never noticed: it completes its file and its record is readable.
    assert live.close() == [live.partial.name.removesuffix(".partial")]
    table = read_prediction_logs(folder)
    assert table.column("request_id").to_pylist() == ["v2"]


def test_report_remove_orphans_removes_only_files_no_live_writer_holds(
    tmp_path: Path, writers: list[Writer], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, out = tmp_path / "logs", tmp_path / "r.html"
    live, dead = live_and_killed(folder, writers)
    size = dead.stat().st_size
    args = ["monitor", "report", "m", "--logs", str(folder), "--history", str(tmp_path)]
    assert main([*args, "--out", str(out)]) == 0
    assert dead.exists()  # a report alone changes nothing
    capsys.readouterr()
    assert main([*args, "--out", str(out), "--remove-orphans"]) == 0
    assert not dead.exists() and live.partial.exists()
    err = capsys.readouterr().err
    assert f"removed {str(dead)!r} ({size} bytes)" in err, err
    assert str(live.partial) not in err
    # What is left open is the live writer's file, and the report says so.
    assert "1 prediction log file(s) are not readable yet" in out.read_text()
    live.close()


def test_a_name_another_writer_holds_is_never_truncated(tmp_path: Path) -> None:
    # Two servers in two containers can both be pid 1: the name the writer would pick (same
    # model, version, second and sequence number) may be another live writer's file.
    now_ms = 1_700_000_000_000

    class Clock:
        def monotonic_s(self) -> float:
            return 100.0

        def wall_ms(self) -> int:
            return now_ms

    stamp = datetime.fromtimestamp(now_ms / 1000, timezone.utc)
    theirs = tmp_path / f"m-v1-{stamp:%Y%m%dT%H%M%S}-{os.getpid()}-0001.parquet.partial"
    theirs.write_bytes(b"another writer's rows")
    with open(theirs, "rb") as held:  # its writer is alive: it holds the lock
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        log = PredictionLog(
            tmp_path, model="m", version=1, clock=Clock(), config=PredictionLogConfig(1.0)
        )
        x = np.ones((1, 3), np.float32)
        log.record({"x": x}, {"y": x}, latency_us=1)
        log.close()
        assert theirs.read_bytes() == b"another writer's rows"
    assert [f.name[-13:] for f in log.files] == ["-0002.parquet"]
    assert pq.read_metadata(log.files[0]).num_rows == 1
    assert log.counters()["orphans_removed"] == 0


def test_an_unlocked_file_written_recently_is_kept(
    tmp_path: Path, writers: list[Writer], capsys: pytest.CaptureFixture[str]
) -> None:
    """A writer that holds no lock (an older release, a filesystem where flock fails) writes
    or closes its file within its rotation age: an unlocked file that is not two hours idle
    is kept, by a starting writer and by --remove-orphans alike."""
    folder, out = tmp_path / "logs", tmp_path / "r.html"
    unheld = Writer(folder, version=1)
    writers.append(unheld)
    unheld.kill()  # its file: unlocked, as an older release's would be, and written just now
    backdate(unheld.partial, ORPHAN_MIN_AGE_S - 600)  # ten minutes short of the age
    log = PredictionLog(folder, model="m", version=2, config=PredictionLogConfig(sample_rate=1.0))
    assert log.flush()
    assert unheld.partial.exists() and log.counters()["orphans_removed"] == 0
    log.close()
    args = ["monitor", "report", "m", "--logs", str(folder), "--history", str(tmp_path)]
    assert main([*args, "--out", str(out), "--remove-orphans"]) == 0
    assert unheld.partial.exists()
    assert "removed '" not in capsys.readouterr().err  # the line naming a removed file
    backdate(unheld.partial)  # two hours idle: now it goes
    # ... and with it the folder's only records: nothing is left to report (exit 1).
    assert main([*args, "--out", str(out), "--remove-orphans"]) == 1
    assert not unheld.partial.exists()
    err = capsys.readouterr().err
    assert f"removed {str(unheld.partial)!r}" in err
    assert "error: no traffic recorded for model 'm': " in err
