from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.errors import RegistryError
from engine.registry import schema
from engine.registry.database import Database, normalise_url


def _db(tmp_path: Path) -> Database:
    return Database(f"sqlite:///{tmp_path / 'r.db'}")


def test_sqlite_runs_in_wal_with_full_sync_and_busy_timeout(tmp_path: Path) -> None:
    db = _db(tmp_path)
    try:
        for ctx in (db.write, db.read):
            with ctx() as conn:
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
                assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        db.dispose()


def test_one_writer_connection_per_process(tmp_path: Path) -> None:
    db = _db(tmp_path)
    try:
        pool = db._writer.pool
        assert pool.size() == 1  # type: ignore[attr-defined]
        assert pool._max_overflow == 0  # type: ignore[attr-defined]
    finally:
        db.dispose()


def test_new_database_is_stamped_with_the_schema_version(tmp_path: Path) -> None:
    db = _db(tmp_path)
    try:
        with db.read() as conn:
            assert (
                conn.execute(sa.select(schema.schema_info.c.version)).scalar_one()
                == schema.SCHEMA_VERSION
            )
            assert {"models", "versions", "aliases"} <= set(sa.inspect(conn).get_table_names())
    finally:
        db.dispose()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    _db(tmp_path).dispose()
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'r.db'}")
    with engine.begin() as conn:
        conn.execute(schema.schema_info.update().values(version=schema.SCHEMA_VERSION + 1))
    engine.dispose()
    with pytest.raises(
        RegistryError,
        match=f"schema version {schema.SCHEMA_VERSION + 1} is newer than this engine supports",
    ):
        _db(tmp_path)


def test_older_schema_is_migrated_step_by_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _db(tmp_path).dispose()
    applied: list[int] = []
    target = schema.SCHEMA_VERSION + 1

    def step(conn: sa.Connection) -> None:
        conn.exec_driver_sql("CREATE TABLE extra (id INTEGER PRIMARY KEY)")
        applied.append(target)

    monkeypatch.setattr(schema, "SCHEMA_VERSION", target)
    monkeypatch.setitem(schema.MIGRATIONS, target, step)
    db = _db(tmp_path)
    try:
        with db.read() as conn:
            assert (
                conn.execute(sa.select(schema.schema_info.c.version)).scalar_one()
                == schema.SCHEMA_VERSION
            )
            assert sa.inspect(conn).has_table("extra")
        assert applied == [schema.SCHEMA_VERSION]
    finally:
        db.dispose()
    _db(tmp_path).dispose()  # reopening at the current version migrates nothing
    assert len(applied) == 1


def test_foreign_tables_are_not_adopted(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'r.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE models (x INTEGER)")
    engine.dispose()
    with pytest.raises(RegistryError, match="not created by this engine"):
        _db(tmp_path)


def test_urls() -> None:
    assert normalise_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("postgresql+psycopg://u@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("sqlite:///x.db").drivername == "sqlite"
    with pytest.raises(RegistryError, match="invalid registry URL"):
        normalise_url("::nope")


def test_password_is_hidden_in_messages(tmp_path: Path) -> None:
    with pytest.raises(RegistryError) as info:
        Database("postgresql://user:s3cret@127.0.0.1:1/db")
    assert "s3cret" not in str(info.value)
    assert "***" in str(info.value)


def test_a_version_1_database_gets_a_registry_id(tmp_path: Path) -> None:
    """Version 2 added schema_info.registry_id, which the artifact stores record."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'r.db'}")
    with engine.begin() as conn:
        schema.metadata.create_all(conn, tables=[schema.models, schema.versions, schema.aliases])
        conn.exec_driver_sql("CREATE TABLE schema_info (id INTEGER PRIMARY KEY, version INTEGER)")
        conn.exec_driver_sql("INSERT INTO schema_info VALUES (1, 1)")
    engine.dispose()
    db = _db(tmp_path)
    try:
        registry_id = db.registry_id()
        assert len(registry_id) == 32 and int(registry_id, 16) >= 0
        with db.read() as conn:
            assert conn.execute(sa.select(schema.schema_info.c.version)).scalar_one() == 2
    finally:
        db.dispose()
    reopened = _db(tmp_path)
    try:
        assert reopened.registry_id() == registry_id  # set once, never again
    finally:
        reopened.dispose()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_an_in_memory_sqlite_database_is_refused(url: str) -> None:
    with pytest.raises(RegistryError, match="is an in-memory SQLite database: .* give a file"):
        Database(url)


def test_a_full_disk_is_said_when_sqlite_says_only_disk_io_error(tmp_path: Path) -> None:
    """SQLite reports a full file system as "disk I/O error", even on a read: every
    connection writes the WAL index. On a real full tmpfs (a mount needs root)."""
    import shutil
    import subprocess

    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)],
                             check=False, capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        Database(f"sqlite:///{folder / 'r.db'}").dispose()  # created while there is room
        (folder / "r.db-wal").unlink(missing_ok=True)
        (folder / "r.db-shm").unlink(missing_ok=True)
        with open(folder / "filler", "wb") as filler:
            try:
                while True:
                    filler.write(b"\0" * 65536)
                    filler.flush()
            except OSError:
                pass
        assert shutil.disk_usage(folder).free < 65536
        with pytest.raises(
            RegistryError,
            match=f"cannot be used: the file system of '{folder}' is full \\(\\d+ bytes free\\)",
        ):
            db = Database(f"sqlite:///{folder / 'r.db'}")
            db.dispose()
    finally:
        subprocess.run(["umount", str(folder)], check=True)

