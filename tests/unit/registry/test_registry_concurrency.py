"""Several processes at once, and processes killed mid-registration."""

from __future__ import annotations

import json
import os
import random
import select
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.registry import Registry
from engine.registry.artifacts import ArtifactStore
from engine.registry.database import normalise_url

# Each worker waits for the "go" file so both register at the same moment.
_WORKER = r"""
import json, os, sys, time
from pathlib import Path
home, url, model, count, workdir = sys.argv[1], sys.argv[2] or None, sys.argv[3], int(sys.argv[4]), Path(sys.argv[5])
from engine.registry import Registry
registry = Registry(home=home, url=url)
(workdir / f"ready-{os.getpid()}").touch()
deadline = time.monotonic() + 30
while not (workdir / "go").exists():
    if time.monotonic() > deadline:
        sys.exit("never got the go signal")
    time.sleep(0.001)
done = [registry.register("m", model, tags={"pid": str(os.getpid())}).version for _ in range(count)]
registry.close()
print(json.dumps(done))
"""


def test_two_processes_registering_at_once_get_distinct_versions(
    home: Path, registry_url: str | None, onnx_model, tmp_path: Path
) -> None:
    count = 5
    workdir = tmp_path / "sync"
    workdir.mkdir()
    Registry(home=home, url=registry_url).close()  # the schema exists before the race
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WORKER,
                str(home),
                registry_url or "",
                str(onnx_model(bias=float(i))),
                str(count),
                str(workdir),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    deadline = time.monotonic() + 60
    while len(list(workdir.glob("ready-*"))) < 2:
        assert time.monotonic() < deadline, "workers did not start"
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.01)
    (workdir / "go").touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    every = sorted(results[0] + results[1])
    assert every == list(range(1, 2 * count + 1))
    with Registry(home=home, url=registry_url) as registry:
        pids = {v.tags["pid"] for v in registry.versions("m")}
        assert len(pids) == 2
        for v in registry.versions("m"):
            registry.resolve(v.ref)


def _register_forever(home: Path, models: list[Path], report_fd: int) -> None:
    """Child body: register as fast as possible until killed, writing one byte when ready and
    one after each registration, so the parent can aim its kills at registrations."""
    try:
        registry = Registry(home=home)
        os.write(report_fd, b"r")
        i = 0
        while True:
            registry.register("m", models[i % len(models)], alias="newest", metrics={"i": i})
            os.write(report_fd, b"v")
            i += 1
    finally:
        os._exit(0)  # never return into pytest in the child


def _read_byte(fd: int, timeout_s: float = 60.0) -> bytes:
    ready, _, _ = select.select([fd], [], [], timeout_s)
    assert ready, "the registering child stopped reporting"
    return os.read(fd, 1)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_sigkill_midway_leaves_a_consistent_registry(home: Path, onnx_model, backend: str) -> None:
    """SIGKILL a registering process at random moments, many times; afterwards the database
    is intact, versions are contiguous, and every listed version verifies and loads."""
    models = [onnx_model(bias=float(b)) for b in range(4)]
    Registry(home=home).close()
    rng = random.Random(1234)  # reproducible kill timings
    kills = 20
    for n in range(kills):
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            _register_forever(home, models, write_fd)
        os.close(write_fd)
        assert _read_byte(read_fd) == b"r"
        if n % 2:
            assert _read_byte(read_fd) == b"v"  # let one complete, then kill the next midway
        # A registration takes a few ms; kill somewhere inside the next one.
        time.sleep(rng.uniform(0.0, 0.03))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        os.close(read_fd)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL

    with sqlite3.connect(home / "registry.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with Registry(home=home) as registry:
        listed = registry.versions("m") if registry.list() else []
        numbers = [v.version for v in listed]
        assert len(numbers) >= kills // 2
        assert numbers == list(range(1, len(numbers) + 1))  # no gaps: no half-made version
        for v in listed:
            registry.resolve(v.ref)  # hash verified
        if listed:
            assert registry.get("m@newest").version == numbers[-1]
        # Leftovers (temp files, unreferenced blobs) break nothing and are collectable.
        registry.gc(min_age_s=0)
        for v in listed:
            registry.resolve(v.ref)
        assert registry.register("m", models[0]).version == len(numbers) + 1
        loadable = sorted({str(registry.resolve(v.ref).path) for v in registry.versions("m")})
    assert list((home / "artifacts" / "tmp").glob("*.part")) == []
    _assert_onnxruntime_loads(loadable)


def _assert_onnxruntime_loads(paths: list[str]) -> None:
    """Every path opens in ONNX Runtime. In a child process: importing onnxruntime here would
    put a second copy of ORT beside the one engine._core loads."""
    pytest.importorskip("onnxruntime")
    script = (
        "import sys, onnxruntime as ort\n"
        "for p in sys.argv[1:]:\n"
        "    ort.InferenceSession(p, providers=['CPUExecutionProvider'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, *paths],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("backend", ["sqlite"])
def test_crash_between_artifact_and_record_leaves_no_version(
    registry: Registry, onnx_model, monkeypatch: pytest.MonkeyPatch, home: Path
) -> None:
    registry.register("m", onnx_model(bias=1.0))
    blobs = home / "artifacts" / "sha256"

    def crash(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # as if the process died while inserting the row

    # Dying before the blob is moved into place leaves nothing: no row, blob or temp file.
    monkeypatch.setattr(Registry, "_insert_version", crash)
    with pytest.raises(KeyboardInterrupt):
        registry.register("m", onnx_model(bias=2.0))
    monkeypatch.undo()
    assert [v.version for v in registry.versions("m")] == [1]
    assert len(list(blobs.glob("??/*"))) == 1
    assert list((home / "artifacts" / "tmp").glob("*.part")) == []

    # Dying after the blob is durable but before the commit leaves only an unreferenced blob.
    commit = ArtifactStore.commit

    def commit_then_crash(self: ArtifactStore, staged: object) -> None:
        commit(self, staged)  # type: ignore[arg-type]
        raise KeyboardInterrupt

    monkeypatch.setattr(ArtifactStore, "commit", commit_then_crash)
    with pytest.raises(KeyboardInterrupt):
        registry.register("m", onnx_model(bias=2.0))
    monkeypatch.undo()
    assert [v.version for v in registry.versions("m")] == [1]
    assert len(list(blobs.glob("??/*"))) == 2  # the orphan
    assert registry.register("m", onnx_model(bias=3.0)).version == 2
    old = time.time() - 7200
    for blob in blobs.glob("??/*"):
        os.utime(blob, (old, old))
    assert len(registry.gc()) == 1
    for v in registry.versions("m"):
        registry.resolve(v.ref)


# ---- retrains registering at once: the default parent -----------------------------------------


@contextmanager
def _writers_held(home: Path, registry_url: str | None) -> Iterator[Callable[[], int]]:
    """Hold the registry's write lock (SQLite: the database's, with BEGIN IMMEDIATE; PostgreSQL:
    the models table's, which every registration's SELECT ... FOR UPDATE needs) until the block
    ends. Yields a function counting the registrations that have staged their file (SQLite) or
    wait on that lock (PostgreSQL): the caller waits for all of them before letting go."""
    if registry_url is None:
        conn = sqlite3.connect(home / "registry.db", isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Registrations stage their file before their transaction starts; the default
            # parent used to be read before that, outside the transaction.
            yield lambda: len(list((home / "artifacts" / "tmp").glob("*.part")))
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    engine = sa.create_engine(normalise_url(registry_url))
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("BEGIN")
            conn.exec_driver_sql("LOCK TABLE models IN EXCLUSIVE MODE")
            waiting = sa.text(
                "SELECT count(DISTINCT pid) FROM pg_locks "
                "WHERE NOT granted AND relation = 'models'::regclass"
            )
            try:
                yield lambda: int(conn.execute(waiting).scalar_one())
            finally:
                conn.exec_driver_sql("ROLLBACK")
    finally:
        engine.dispose()


@pytest.mark.parametrize("existing", [True, False], ids=["retrain", "first-version"])
def test_retrains_registering_at_once_record_a_chain_of_parents(
    home: Path, registry_url: str | None, onnx_model, existing: bool
) -> None:
    """``engine train``'s registration (``register_model`` with ``inherit_parent``) from three
    threads, each on its own connections, all released at once: every new version's parent is
    the version just before it, as if they had run one after another."""
    from engine.training.lineage import register_model

    workers = 3
    with Registry(home=home, url=registry_url) as registry:
        if existing:
            registry.register("m", onnx_model(bias=0.0))
        first = len(registry.versions("m")) + 1 if existing else 1
    files = [onnx_model(bias=float(i + 1)) for i in range(workers)]

    def retrain(path: Path) -> int:
        record = register_model(
            path,
            "m",
            metrics={},
            params={},
            tags={},
            lineage={"parent": None},
            home=home,
            registry_url=registry_url,
            inherit_parent=True,
        )
        return int(record.version)

    with ThreadPoolExecutor(workers) as pool:
        with _writers_held(home, registry_url) as at_the_lock:
            futures = [pool.submit(retrain, path) for path in files]
            # Well inside SQLite's 30 s busy timeout, which the waiting registrations are on.
            deadline = time.monotonic() + 20
            while at_the_lock() < workers:
                assert time.monotonic() < deadline, "the registrations never reached the lock"
                for future in futures:
                    if future.done():
                        future.result()  # raises a worker's error; else it ran past the lock
                        pytest.fail("a registration finished while the write lock was held")
                time.sleep(0.005)
        created = sorted(future.result(timeout=60) for future in futures)

    assert created == list(range(first, first + workers))
    with Registry(home=home, url=registry_url) as registry:
        parents = {v.version: v.lineage.parent for v in registry.versions("m")}
        chain = [r.ref for r in registry.lineage(f"m:{created[-1]}")]
    assert parents == {v: (f"m:{v - 1}" if v > 1 else None) for v in range(1, created[-1] + 1)}
    assert chain == [f"m:{v}" for v in range(created[-1], 0, -1)]
