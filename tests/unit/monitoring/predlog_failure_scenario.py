"""A prediction log whose writes really fail, run in a child process by
test_prediction_log_failures.py (``python predlog_failure_scenario.py MODE DIR``).

MODE ``fsize``: writes fail because RLIMIT_FSIZE is lowered to 1 byte (EFBIG; the limit is
per process, hence the child). MODE ``tmpfs``: DIR is on a small tmpfs the test mounted, and
writes fail because a filler file takes every free byte (ENOSPC). Either way "space comes
back" when the limit is raised or the filler deleted.

The log's clock is a fake one, so the writer's back-off ends exactly when the scenario says.
Prints one JSON object: counters and files after each phase, the rows read back, and the
Prometheus text of the log's counters.
"""

from __future__ import annotations

import json
import logging
import resource
import signal
import sys
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest

from engine.monitoring.collector import DriftCollector
from engine.monitoring.prediction_log import (
    PredictionLog,
    PredictionLogConfig,
    read_prediction_logs,
)

RETRY_INITIAL_S = 10.0
RETRY_MAX_S = 40.0


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def monotonic_s(self) -> float:
        return self.now_s

    def wall_ms(self) -> int:
        return 1_700_000_000_000 + int(self.now_s * 1000)


class Disk:
    """Makes writes under ``directory`` fail (``fill``) and succeed again (``free``)."""

    def __init__(self, mode: str, directory: Path) -> None:
        self.mode = mode
        self.filler = directory.parent / "filler"

    def fill(self) -> None:
        if self.mode == "fsize":
            _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
            resource.setrlimit(resource.RLIMIT_FSIZE, (1, hard))
            return
        with open(self.filler, "ab", buffering=0) as f:
            for chunk in (64 << 10, 4096, 1):  # every free byte, to the last page
                try:
                    while True:
                        f.write(b"\0" * chunk)
                except OSError:
                    pass

    def free(self) -> None:
        if self.mode == "fsize":
            _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
            resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
        else:
            self.filler.unlink()


def main(mode: str, directory: Path) -> dict[str, Any]:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past RLIMIT_FSIZE: EFBIG, not death
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
    rng = np.random.default_rng(0)
    disk = Disk(mode, directory)
    clock = FakeClock()
    config = PredictionLogConfig(
        sample_rate=1.0,
        flush_rows=100_000,  # the scenario decides when to write: flush()
        flush_interval_s=3600.0,
        retry_initial_s=RETRY_INITIAL_S,
        retry_max_s=RETRY_MAX_S,
    )
    log = PredictionLog(directory, model="m", version=1, config=config, clock=clock)
    collector = DriftCollector()
    collector.add_prediction_log(log)
    queued: list[bool] = []
    out: dict[str, Any] = {}
    seq = iter(range(10**6))

    def send(count: int, width: int = 32) -> None:
        for _ in range(count):
            x = rng.normal(size=(4, width)).astype(np.float32)  # random: zstd cannot shrink it
            queued.append(
                log.record({"x": x}, {"y": x[:, :1]}, latency_us=100, request_id=f"r{next(seq)}")
            )

    def snapshot(phase: str) -> None:
        out[phase] = {
            "counters": log.counters(),
            "files": sorted(p.name for p in directory.iterdir()),
        }

    send(30)  # A: a complete file
    log.flush(close_file=True)
    snapshot("A")
    send(25)  # B: 25 rows in the open file
    log.flush()
    snapshot("B")
    disk.fill()  # C: the disk is full
    for _ in range(4):  # fails (file abandoned, back-off), then dropped while backing off
        send(10, width=256)  # 40 KB: no room in the slack of a page
        log.flush()
    snapshot("C-backoff")
    clock.now_s += RETRY_INITIAL_S  # the retry opens a new file: it fails too
    disk.fill()  # (deleting the abandoned file freed some space)
    send(10)
    log.flush()
    snapshot("C-retry")
    disk.free()  # D: space is back; writing resumes after the (doubled) back-off
    clock.now_s += 2 * RETRY_INITIAL_S
    send(20)
    log.flush(close_file=True)
    snapshot("D")
    send(5)  # E: rows in an open file, then the disk fills before shutdown
    log.flush()
    disk.fill()
    send(5, width=1024)  # 80 KB
    log.close()
    snapshot("E")
    disk.free()
    table = read_prediction_logs(directory)
    out["queued"] = queued
    out["rows"] = table.column("request_id").to_pylist()
    registry = CollectorRegistry()
    registry.register(collector)
    out["metrics"] = [
        line
        for line in generate_latest(registry).decode().splitlines()
        if line.startswith("engine_prediction_log_")
    ]
    return out


if __name__ == "__main__":
    result = main(sys.argv[1], Path(sys.argv[2]))
    sys.stdout.write(json.dumps(result) + "\n")
