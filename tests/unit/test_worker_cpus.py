"""ModelConfig.worker_cpus: each worker thread runs only on its CPU (read back from the
kernel's view of the process's threads), and the model's other threads keep off it, as does
the Python thread that resolves futures; CPUs the process may not use are refused at load."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import engine
from engine._completion import completer
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


def _threads_by_name() -> dict[str, tuple[str, str]]:
    """This process's threads: id -> (name, the CPUs it may run on, as the kernel lists them)."""
    threads = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            lines = (task / "status").read_text().splitlines()
        except FileNotFoundError:
            continue
        fields = dict(line.split(":", 1) for line in lines if ":" in line)
        threads[task.name] = (fields["Name"].strip(), fields["Cpus_allowed_list"].strip())
    return threads


def _cpu_list(cpus: set[int]) -> str:
    """A set of CPUs as the kernel lists them ("0-2,5")."""
    ranges: list[str] = []
    ordered = sorted(cpus)
    start = prev = ordered[0]
    for cpu in ordered[1:] + [None]:
        if cpu is not None and cpu == prev + 1:
            prev = cpu
            continue
        ranges.append(str(start) if start == prev else f"{start}-{prev}")
        if cpu is not None:
            start = prev = cpu
    return ",".join(ranges)


_NEEDS_A_SECOND_CPU = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs Linux and a second CPU to keep the drain thread on")


def _pinned_and_delivering(mlp_path: Path, cpu: int) -> engine.Model:
    """A model with its worker pinned to `cpu` that has resolved a future: the drain thread
    runs."""
    model = engine.load(mlp_path, config=engine.ModelConfig(worker_cpus=(cpu,)))
    assert model.submit(np.ones((2, 32), np.float32)).result(timeout=10)["y"].shape == (2, 1)
    return model


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


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs Linux and a second CPU to keep the other threads on")
def test_the_models_other_threads_keep_off_the_workers_cpu(mlp_path: Path) -> None:
    # A completion or expiry thread woken on the worker's CPU would preempt its ORT run.
    allowed = os.sched_getaffinity(0)
    cpu = min(allowed)
    before = set(_threads_by_name())
    with engine.load(mlp_path, config=engine.ModelConfig(worker_cpus=(cpu,))) as model:
        assert model.submit(np.ones((3, 32), np.float32)).result(timeout=10)["y"].shape == (3, 1)

        def named() -> dict[str, str]:  # each thread names itself once it runs
            return {name: cpus for tid, (name, cpus) in _threads_by_name().items()
                    if tid not in before and name.startswith("engine-")}

        assert _wait_for(lambda: len(named()) == 3)
        new = named()
    assert new == {"engine-worker": str(cpu), "engine-complete": _cpu_list(allowed - {cpu}),
                   "engine-expiry": _cpu_list(allowed - {cpu})}


@_NEEDS_A_SECOND_CPU
def test_the_python_drain_thread_keeps_off_pinned_cpus_while_their_models_are_open(
        mlp_path: Path) -> None:
    # The thread that resolves submit()'s futures, read back from the kernel: it keeps off
    # every CPU that an open model pinned a worker to, and comes back when the last closes.
    allowed = frozenset(os.sched_getaffinity(0))
    cpu = min(allowed)
    drain = completer()
    rows = np.ones((2, 32), np.float32)
    first = engine.load(mlp_path, config=engine.ModelConfig(worker_cpus=(cpu,)))
    second = engine.load(mlp_path, config=engine.ModelConfig(worker_cpus=(cpu,)))
    try:
        assert first.submit(rows).result(timeout=10)["y"].shape == (2, 1)  # the thread runs
        assert drain.thread_cpus() == allowed - {cpu}
        first.close()
        assert drain.thread_cpus() == allowed - {cpu}  # the second still pins it
        second.close()
        assert drain.thread_cpus() == allowed
        # Every CPU pinned: the thread stays where it may run rather than nowhere.
        with engine.load(mlp_path, config=engine.ModelConfig(worker_cpus=tuple(allowed))) as m:
            assert m.submit(rows).result(timeout=10)["y"].shape == (2, 1)
            assert drain.thread_cpus() == allowed
        assert drain.thread_cpus() == allowed
    finally:
        first.close()
        second.close()


@_NEEDS_A_SECOND_CPU
def test_a_pinned_model_dropped_unclosed_releases_its_cpus(mlp_path: Path) -> None:
    allowed = frozenset(os.sched_getaffinity(0))
    cpu = min(allowed)
    model = _pinned_and_delivering(mlp_path, cpu)
    assert completer().thread_cpus() == allowed - {cpu}
    del model
    gc.collect()
    assert completer().thread_cpus() == allowed


@_NEEDS_A_SECOND_CPU
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_never_moves_the_parents_drain_thread(mlp_path: Path) -> None:
    # Thread ids are system-wide: the child's copy of the drain thread's id names the parent's
    # thread. A model the child inherited and drops must not release the parent's CPUs.
    allowed = frozenset(os.sched_getaffinity(0))
    cpu = min(allowed)
    # Not a `with` block: its exit method would keep the model alive in the child.
    model = _pinned_and_delivering(mlp_path, cpu)
    closer = model.close
    try:
        pid = os.fork()
        if pid == 0:  # the child: drop the inherited model, then leave at once
            code = 1
            try:
                del model, closer
                gc.collect()
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert completer().thread_cpus() == allowed - {cpu}
    finally:
        closer()
    assert completer().thread_cpus() == allowed


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="Linux-only API")
def test_with_only_the_workers_cpu_to_use_the_other_threads_share_it(mlp_path: Path) -> None:
    # In a process confined to the worker's CPU (a child, so that this one keeps its CPUs),
    # the other threads cannot keep off it and stay where they may run.
    script = f"""
import os, pathlib, time, engine
cpu = min(os.sched_getaffinity(0))
os.sched_setaffinity(0, {{cpu}})
def named():
    found = []
    for task in pathlib.Path("/proc/self/task").iterdir():
        fields = dict(l.split(":", 1) for l in (task / "status").read_text().splitlines())
        if fields["Name"].strip().startswith("engine-"):
            found.append((fields["Name"].strip(), fields["Cpus_allowed_list"].strip()))
    return found
with engine.load({str(mlp_path)!r}, config=engine.ModelConfig(worker_cpus=(cpu,))):
    end = time.monotonic() + 10
    while len(named()) < 3 and time.monotonic() < end:  # each thread names itself once it runs
        time.sleep(0.01)
    for name, cpus in named():
        print(name, cpus, cpu)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    rows = sorted(line.split() for line in out.splitlines())
    assert [name for name, _, _ in rows] == ["engine-complete", "engine-expiry", "engine-worker"]
    assert all(cpus == cpu for _, cpus, cpu in rows)


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
