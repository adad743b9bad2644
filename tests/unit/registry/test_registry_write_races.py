"""Writes of one model racing each other on PostgreSQL (READ COMMITTED).

SQLite serialises every write transaction with ``BEGIN IMMEDIATE``; PostgreSQL serialises the
writes of one model only where they lock the model's row. The race tests pause one write right
after it has read the version it is about to change, start the other write, wait until that
one has either finished or is waiting on a lock, then let the first go on. A write waiting on
a lock that is never released fails after the busy timeout, as on SQLite.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from engine.errors import ConflictError, EngineError, ModelNotFoundError, RegistryError
from engine.registry import NewVersion, Registry, database
from engine.registry.database import normalise_url


def _waiting_on_a_lock(url: str) -> Callable[[], int]:
    engine = sa.create_engine(normalise_url(url))

    def count() -> int:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text("SELECT count(*) FROM pg_locks WHERE NOT granted")
                ).scalar_one()
            )

    count.dispose = engine.dispose  # type: ignore[attr-defined]
    return count


def _race(
    first: Registry,
    second: Registry,
    url: str,
    paused: Callable[[Registry], Any],
    other: Callable[[Registry], Any],
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Any, Any]:
    """Run ``paused(first)`` until it has read its version row, then ``other(second)`` to its
    end or until it waits on a lock, then the rest of ``paused``. Returns each one's result or
    exception."""
    read_done, go = threading.Event(), threading.Event()
    original = Registry._version_row

    def version_row(self: Registry, conn: sa.Connection, ref: Any) -> Any:
        row = original(self, conn, ref)
        if self is first and not read_done.is_set():
            read_done.set()
            assert go.wait(30), "the test never let the paused write go on"
        return row

    monkeypatch.setattr(Registry, "_version_row", version_row)
    results: dict[str, Any] = {}

    def run(key: str, fn: Callable[[Registry], Any], registry: Registry) -> None:
        try:
            results[key] = fn(registry)
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            results[key] = exc

    a = threading.Thread(target=run, args=("paused", paused, first))
    a.start()
    assert read_done.wait(30), "the paused write never read its version"
    b = threading.Thread(target=run, args=("other", other, second))
    b.start()
    waiting = _waiting_on_a_lock(url)
    try:
        deadline = time.monotonic() + 30
        while b.is_alive() and waiting() == 0:
            assert time.monotonic() < deadline, "the other write neither finished nor waited"
            time.sleep(0.01)
    finally:
        go.set()
        a.join(30)
        b.join(30)
        waiting.dispose()  # type: ignore[attr-defined]
    assert not a.is_alive() and not b.is_alive()
    return results["paused"], results["other"]


@pytest.mark.parametrize("backend", ["postgresql"])
@pytest.mark.parametrize("action", ["archive", "delete"])
def test_alias_set_while_the_version_is_archived_or_deleted(
    open_registry: Callable[[], Registry],
    registry_url: str,
    onnx_model: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    action: str,
) -> None:
    first, second = open_registry(), open_registry()
    first.register("m", onnx_model(bias=1.0))
    first.register("m", onnx_model(bias=2.0))

    set_result, other_result = _race(
        first,
        second,
        registry_url,
        lambda r: r.set_alias("m", "prod", 1),
        lambda r: getattr(r, action)("m", 1),
        monkeypatch,
    )
    monkeypatch.undo()

    # Never a raw database error, and never an alias on an archived or deleted version: the
    # alias was set first, so the archive or delete is refused.
    for result in (set_result, other_result):
        assert not isinstance(result, Exception) or isinstance(result, EngineError), result
    assert not isinstance(set_result, Exception), set_result
    assert isinstance(other_result, ConflictError), other_result
    assert "aliases ['prod'] point at it" in str(other_result)
    target = first.get("m@prod")
    assert (target.version, target.status) == (1, "ready")


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_write_behind_a_lock_held_too_long_fails_clearly(
    home: Path,
    registry_url: str,
    onnx_model: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A process stuck in the middle of a write (here: a session holding the model row's lock)
    makes the others fail after the busy timeout, as SQLite's busy timeout does, rather than
    wait forever; nothing of theirs is left behind."""
    monkeypatch.setattr(database, "BUSY_TIMEOUT_MS", 300)
    with Registry(home=home, url=registry_url) as registry:
        registry.register("m", onnx_model(bias=1.0), alias="prod")
    holder = sa.create_engine(normalise_url(registry_url))
    outcome: dict[str, Any] = {}

    def writes(registry: Registry) -> None:
        for name, write in (
            ("register", lambda: registry.register("m", onnx_model(bias=2.0))),
            ("set_alias", lambda: registry.set_alias("m", "prod", 1)),
        ):
            try:
                write()
                outcome[name] = None
            except Exception as exc:  # noqa: BLE001 - the test inspects it
                outcome[name] = exc

    try:
        with holder.connect() as conn, conn.begin():
            conn.execute(sa.text("SELECT id FROM models FOR UPDATE"))
            with Registry(home=home, url=registry_url) as registry:
                worker = threading.Thread(target=writes, args=(registry,), daemon=True)
                worker.start()
                worker.join(60)  # a guard against a hang, not a timing assertion
                hung = worker.is_alive()
                conn.rollback()  # lets a hung worker finish
                worker.join(60)
        assert not hung, "the writes waited on the lock forever"
    finally:
        holder.dispose()
    for name in ("register", "set_alias"):
        exc = outcome[name]
        assert isinstance(exc, RegistryError), (name, exc)
        assert "held a lock on the registry for more than 0.3 s" in str(exc)
    with Registry(home=home, url=registry_url) as registry:
        assert [v.version for v in registry.versions("m")] == [1]
    assert list((home / "artifacts" / "tmp").glob("*.part")) == []


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_busy_sqlite_database_says_so(
    home: Path, registry_url: None, onnx_model: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database, "BUSY_TIMEOUT_MS", 300)
    with Registry(home=home) as registry:
        registry.register("m", onnx_model(bias=1.0))
        holder = sqlite3.connect(home / "registry.db", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(RegistryError, match="held a lock on the registry for more than"):
                registry.register("m", onnx_model(bias=2.0))
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert [v.version for v in registry.versions("m")] == [1]
    assert list((home / "artifacts" / "tmp").glob("*.part")) == []


# ---- a registration racing a delete of its lineage parent --------------------------------------


def test_a_delete_of_the_parent_waits_for_a_registration_naming_it(
    open_registry: Callable[[], Registry],
    onnx_model: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A registration holds its parent from the check that it exists to its commit: a delete of
    the parent meanwhile waits, here until the busy timeout, and deletes nothing. Before, on
    PostgreSQL the delete went through while the registration went on to record a version
    whose parent was gone."""
    monkeypatch.setattr(database, "BUSY_TIMEOUT_MS", 300)
    first, second = open_registry(), open_registry()
    first.register("base", onnx_model(bias=1.0))
    checked, go = threading.Event(), threading.Event()
    original = Registry._version_row

    def version_row(self: Registry, *args: Any, **kwargs: Any) -> Any:
        row = original(self, *args, **kwargs)
        if self is first and not checked.is_set():  # the parent's check
            checked.set()
            assert go.wait(30), "the test never let the registration go on"
        return row

    monkeypatch.setattr(Registry, "_version_row", version_row)
    result: dict[str, Any] = {}

    def register() -> None:
        try:
            result["child"] = first.register(
                "child", onnx_model(bias=2.0), lineage={"parent": "base:1"}
            )
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            result["child"] = exc

    worker = threading.Thread(target=register)
    worker.start()
    try:
        assert checked.wait(30), "the registration never checked its parent"
        with pytest.raises(RegistryError, match="held a lock on the registry for more than 0.3 s"):
            second.delete("base", 1)
    finally:
        go.set()
        worker.join(60)
    assert not worker.is_alive()
    monkeypatch.undo()
    assert not isinstance(result["child"], Exception), result["child"]
    chain = first.lineage_chain("child:1")
    assert [v.ref for v in chain.versions] == ["child:1", "base:1"] and chain.stopped is None


def test_a_registration_whose_parent_is_being_deleted_fails_naming_it(
    home: Path, registry_url: str | None, onnx_model: Callable[..., Any]
) -> None:
    """Another session has deleted the parent and not yet committed: the registration waits
    for it (it must not decide on the row the delete is removing), then fails naming the
    missing parent, and leaves nothing behind."""
    with Registry(home=home, url=registry_url) as registry:
        registry.register("base", onnx_model(bias=1.0))
        registry.register("base", onnx_model(bias=2.0))
    blobs = sorted((home / "artifacts" / "sha256").rglob("*"))
    delete = (
        "DELETE FROM versions WHERE version = 1 "
        "AND model_id = (SELECT id FROM models WHERE name = 'base')"
    )
    result: dict[str, Any] = {}

    def register(registry: Registry) -> None:
        try:
            result["child"] = registry.register(
                "child", onnx_model(bias=3.0), lineage={"parent": "base:1"}
            )
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            result["child"] = exc

    with Registry(home=home, url=registry_url) as registry:
        if registry_url is None:
            holder = sqlite3.connect(home / "registry.db", isolation_level=None)
            holder.execute("BEGIN IMMEDIATE")
            holder.execute(delete)
            # A registration stages its file, then waits on the write lock for its transaction.
            at_the_lock: Callable[[], bool] = lambda: any(
                (home / "artifacts" / "tmp").glob("*.part")
            )
            commit, close = (lambda: holder.execute("COMMIT")), holder.close
        else:
            engine = sa.create_engine(normalise_url(registry_url))
            conn = engine.connect()
            conn.exec_driver_sql("BEGIN")
            # As Registry.delete does: the model's row, then the version's.
            conn.exec_driver_sql("SELECT id FROM models WHERE name = 'base' FOR UPDATE")
            conn.exec_driver_sql(delete)
            waiting = _waiting_on_a_lock(registry_url)
            at_the_lock = lambda: waiting() > 0
            commit = conn.commit

            def close() -> None:
                conn.close()
                engine.dispose()
                waiting.dispose()  # type: ignore[attr-defined]

        worker = threading.Thread(target=register, args=(registry,))
        worker.start()
        try:
            deadline = time.monotonic() + 20  # inside the 30 s busy timeout
            while worker.is_alive() and not at_the_lock():
                assert time.monotonic() < deadline, "the registration neither ended nor waited"
                time.sleep(0.005)
            commit()
        finally:
            close()
            worker.join(60)
        assert not worker.is_alive()
        exc = result["child"]
        assert isinstance(exc, ModelNotFoundError), exc
        assert "lineage parent 'base:1' cannot be found: model 'base' has no version 1" in str(exc)
        assert [m.name for m in registry.list()] == ["base"]
        assert [v.version for v in registry.versions("base")] == [2]
    assert sorted((home / "artifacts" / "sha256").rglob("*")) == blobs
    assert list((home / "artifacts" / "tmp").glob("*.part")) == []


# ---- writes that lock several models --------------------------------------------------------


def _run_behind_a_held_parent(registry_url: str, writes: list[Callable[[], Any]]) -> list[Any]:
    """Holds ``base:1``'s row (as a delete in progress would), starts each write in turn once
    the ones before it wait on a lock, then releases the row. Returns each write's result or
    exception. Each write then wakes holding whatever it locked before it waited: the order in
    which a write takes its locks decides whether two of them can deadlock."""
    holder = sa.create_engine(normalise_url(registry_url))
    waiting = _waiting_on_a_lock(registry_url)
    results: list[Any] = [None] * len(writes)

    def run(index: int) -> None:
        try:
            results[index] = writes[index]()
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(writes))]
    try:
        with holder.connect() as conn, conn.begin():
            conn.exec_driver_sql(
                "SELECT v.id FROM versions v JOIN models m ON m.id = v.model_id "
                "WHERE m.name = 'base' AND v.version = 1 FOR UPDATE"
            )
            for count, thread in enumerate(threads, start=1):
                thread.start()
                deadline = time.monotonic() + 20  # inside the 30 s busy timeout
                while waiting() < count:
                    assert time.monotonic() < deadline, f"write {count} did not wait on a lock"
                    assert thread.is_alive(), f"write {count} ended: {results[count - 1]}"
                    time.sleep(0.005)
            conn.rollback()
    finally:
        for thread in threads:
            thread.join(60)
        waiting.dispose()  # type: ignore[attr-defined]
        holder.dispose()
    assert not any(thread.is_alive() for thread in threads)
    return results


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_registration_of_several_models_and_a_delete_of_its_parent_do_not_deadlock(
    open_registry: Callable[[], Registry],
    registry_url: str,
    onnx_model: Callable[..., Any],
) -> None:
    """register_all([child with parent base:1, base]) against delete(base:1). Taking the locks
    in entry order, the registration held child's row and base:1, then waited for base's row,
    which the delete held while it waited for base:1: PostgreSQL aborted one of them with
    "deadlock detected". Both now lock the model rows first, in name order."""
    first, second = open_registry(), open_registry()
    first.register("base", onnx_model(bias=1.0))
    first.register("child", onnx_model(bias=2.0))

    registered, deleted = _run_behind_a_held_parent(
        registry_url,
        [
            lambda: first.register_all(
                [
                    NewVersion("child", onnx_model(bias=3.0), lineage={"parent": "base:1"}),
                    NewVersion("base", onnx_model(bias=4.0)),
                ]
            ),
            lambda: second.delete("base", 1),
        ],
    )

    assert not isinstance(registered, Exception), registered
    assert deleted is None
    assert [v.version for v in first.versions("base")] == [2]
    assert [(v.version, v.lineage.parent) for v in first.versions("child")] == [
        (1, None),
        (2, "base:1"),
    ]


@pytest.mark.parametrize("backend", ["postgresql"])
def test_registrations_of_the_same_models_in_opposite_orders_do_not_deadlock(
    open_registry: Callable[[], Registry],
    registry_url: str,
    onnx_model: Callable[..., Any],
) -> None:
    """register_all([a, b]) and register_all([b, a]), each entry naming base:1 as its parent:
    taken in entry order, each held its first model's row while it waited for the other's."""
    first, second = open_registry(), open_registry()
    for name, bias in (("base", 1.0), ("a", 2.0), ("b", 3.0)):
        first.register(name, onnx_model(bias=bias))
    parent = {"parent": "base:1"}

    results = _run_behind_a_held_parent(
        registry_url,
        [
            lambda: first.register_all(
                [
                    NewVersion("a", onnx_model(bias=4.0), lineage=parent),
                    NewVersion("b", onnx_model(bias=5.0), lineage=parent),
                ]
            ),
            lambda: second.register_all(
                [
                    NewVersion("b", onnx_model(bias=6.0), lineage=parent),
                    NewVersion("a", onnx_model(bias=7.0), lineage=parent),
                ]
            ),
        ],
    )

    for result in results:
        assert not isinstance(result, Exception), result
    for name in ("a", "b"):
        assert [(v.version, v.lineage.parent) for v in first.versions(name)] == [
            (1, None),
            (2, "base:1"),
            (3, "base:1"),
        ]


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_write_chosen_to_break_a_deadlock_says_it_wrote_nothing(
    home: Path, registry_url: str, onnx_model: Callable[..., Any]
) -> None:
    """Another session (not the engine: it locks b's row, then a's) deadlocks with a
    registration of b naming a:1, which locks a's row, then b's. The registration waited first,
    so PostgreSQL's check (after its deadlock_timeout) finds the cycle in its process and aborts
    it: the error says that nothing was written, and nothing was."""
    with Registry(home=home, url=registry_url) as registry:
        registry.register("a", onnx_model(bias=1.0))
        registry.register("b", onnx_model(bias=2.0))
    blobs = sorted((home / "artifacts" / "sha256").rglob("*"))
    other = sa.create_engine(normalise_url(registry_url))
    waiting = _waiting_on_a_lock(registry_url)
    result: dict[str, Any] = {}

    def register(registry: Registry) -> None:
        try:
            result["b"] = registry.register("b", onnx_model(bias=3.0), lineage={"parent": "a:1"})
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            result["b"] = exc

    try:
        with Registry(home=home, url=registry_url) as registry, other.connect() as conn:
            conn.exec_driver_sql("BEGIN")
            conn.exec_driver_sql("SELECT id FROM models WHERE name = 'b' FOR UPDATE")
            worker = threading.Thread(target=register, args=(registry,))
            worker.start()
            deadline = time.monotonic() + 20
            while waiting() == 0:
                assert time.monotonic() < deadline and worker.is_alive(), result
                time.sleep(0.005)
            conn.exec_driver_sql("SELECT id FROM models WHERE name = 'a' FOR UPDATE")
            conn.rollback()
            worker.join(60)
            assert not worker.is_alive()
            assert [v.version for v in registry.versions("b")] == [1]
    finally:
        waiting.dispose()  # type: ignore[attr-defined]
        other.dispose()
    exc = result["b"]
    assert isinstance(exc, RegistryError), exc
    assert "deadlock detected" in str(exc)
    assert "the transaction was rolled back and wrote nothing; try again" in str(exc)
    assert sorted((home / "artifacts" / "sha256").rglob("*")) == blobs
    assert list((home / "artifacts" / "tmp").glob("*.part")) == []
