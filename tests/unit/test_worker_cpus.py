"""ModelConfig.worker_cpus: each worker thread runs only on its CPU (read back from the
kernel's view of the process's threads); CPUs the process may not use are refused at load."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

import engine
from engine.errors import InvalidConfigError


def _threads_pinned_to(cpu: int) -> int:
    """Threads of this process that may run on `cpu` only."""
    count = 0
    for task in Path("/proc/self/task").iterdir():
        try:
            status = (task / "status").read_text()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        allowed = next(line for line in status.splitlines()
                       if line.startswith("Cpus_allowed_list:"))
        count += allowed.split(":", 1)[1].strip() == str(cpu)
    return count


def _wait_for(condition: object, timeout_s: float = 10.0) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="Linux-only API")
def test_each_worker_runs_only_on_its_cpu(mlp_path: Path) -> None:
    cpu = min(os.sched_getaffinity(0))
    before = _threads_pinned_to(cpu)
    config = engine.ModelConfig(instances=2, worker_cpus=(cpu,))
    with engine.load(mlp_path, config=config) as model:
        assert _wait_for(lambda: _threads_pinned_to(cpu) == before + 2)  # both workers
        rows = np.ones((3, 32), np.float32)
        assert model.submit(rows).result(timeout=10)["y"].shape == (3, 1)
    assert _wait_for(lambda: _threads_pinned_to(cpu) == before)  # the workers are gone


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="Linux-only API")
def test_a_cpu_the_process_may_not_use_is_refused_at_load(mlp_path: Path) -> None:
    allowed = sorted(os.sched_getaffinity(0))
    missing = max(allowed) + 1
    with pytest.raises(InvalidConfigError) as info:
        engine.load(mlp_path, config=engine.ModelConfig(worker_cpus=(allowed[0], missing)))
    listed = ",".join(str(c) for c in allowed)
    assert str(info.value) == (f"worker_cpus names CPU {missing}, which this process may not "
                               f"run on (it may run on: {listed})")


def test_worker_cpus_round_trip_through_a_dict() -> None:
    config = engine.ModelConfig(worker_cpus=[1, 0])
    assert config.worker_cpus == (1, 0)
    assert config.to_dict()["worker_cpus"] == [1, 0]
    assert engine.ModelConfig.from_dict(config.to_dict()) == config
