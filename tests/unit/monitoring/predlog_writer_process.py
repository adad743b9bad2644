"""A prediction log writer in a process of its own, for test_prediction_log_orphans.py
(``python predlog_writer_process.py DIR VERSION``).

Writes one record of model ``m`` to a file it keeps open (``*.parquet.partial``), prints one
JSON line ``{"partial": <file name>}`` and waits. A line ``close`` on stdin closes the log (the
file is published as ``*.parquet``), then it prints ``{"files": [...]}`` and exits. A test that
kills it with SIGKILL leaves its file behind as a killed server does.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

from engine.monitoring.prediction_log import PredictionLog, PredictionLogConfig


def main(directory: Path, version: str) -> None:
    config = PredictionLogConfig(sample_rate=1.0, flush_interval_s=3600.0)
    log = PredictionLog(directory, model="m", version=version, config=config)
    x = np.arange(3, dtype=np.float32).reshape(1, 3)
    log.record({"x": x}, {"y": x[:, :1]}, latency_us=7, request_id=f"v{version}")
    if not log.flush():
        raise SystemExit("the writer did not write in time")
    (partial,) = directory.glob(f"m-v{version}-*-{os.getpid()}-*.parquet.partial")
    print(json.dumps({"partial": partial.name}), flush=True)
    if sys.stdin.readline().strip() == "close":
        log.close()
        print(json.dumps({"files": [p.name for p in log.files]}), flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
