"""The real `engine serve` as a subprocess on free loopback ports.

Each server is stopped by whoever started it: SIGTERM, then a bounded wait. Ports: the server
binds port 0 and prints the ports it got on its ``ready`` line.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_READY = re.compile(r"ready grpc=([\d.]+):(\d+) metrics=([\d.]+):(\d+)")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


@dataclass
class ServerProcess:
    """A running `engine serve`; ``lines`` collects its stdout."""

    proc: subprocess.Popen[str]
    grpc_port: int
    metrics_port: int
    lines: list[str] = field(default_factory=list)
    stderr_path: Path | None = None
    reader: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def terminate(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM and wait; returns the exit code (kills after the timeout)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise
        finally:
            self.close_pipes()

    def close_pipes(self) -> None:
        if self.reader is not None:
            self.reader.join(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def stderr(self) -> str:
        return self.stderr_path.read_text() if self.stderr_path else ""


def start_server(args: Sequence[str], tmp: Path, env: dict[str, str] | None = None) -> ServerProcess:
    """Start `engine serve ARGS --grpc-port 0 --metrics-port 0`; wait for its ready line."""
    stderr_path = tmp / f"server-{time.monotonic_ns()}.err"
    cmd = [sys.executable, "-m", "engine.cli", "serve", "--grpc-port", "0", "--metrics-port", "0",
           *args]
    full_env = {**os.environ, "ENGINE_HOME": str(tmp / "engine-home"), **(env or {})}
    with open(stderr_path, "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=full_env)
    lines: list[str] = []
    found: list[re.Match[str]] = []
    done = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if not found and (m := _READY.search(line)):
                found.append(m)
                done.set()
        done.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    done.wait(START_TIMEOUT_S)
    if not found:
        proc.kill()
        proc.wait(timeout=10)
        reader.join(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
        raise RuntimeError(f"engine serve did not become ready: {lines}\n{stderr_path.read_text()}")
    m = found[0]
    return ServerProcess(proc, int(m.group(2)), int(m.group(4)), lines, stderr_path, reader)


def wait_for(what: str, check: Callable[[], bool], timeout_s: float = 20.0) -> None:
    """Poll ``check`` until it is true; AssertionError naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(0.05)


def metric_value(server: ServerProcess, prefix: str) -> float | None:
    """The value of the first /metrics sample line starting with ``prefix``, or None."""
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return None
