"""Connections to the registry database: SQLite (embedded default) or any SQLAlchemy URL.

SQLite runs in WAL mode with ``synchronous=FULL`` (a committed registration survives power
loss) and a busy timeout. Each process has exactly one writer connection, whose transactions
start with ``BEGIN IMMEDIATE`` so writers queue on the database lock up front instead of failing
mid-transaction; readers use a separate pool and never block the writer (WAL).

PostgreSQL connections get the same bound as ``lock_timeout``: a write waiting on a lock that
another session holds (a stuck or stopped process in the middle of a write) fails after
:data:`BUSY_TIMEOUT_MS` with a RegistryError, as on SQLite, instead of waiting forever.

A SQLite file or folder the process cannot create, read or write fails with a RegistryError
that names the path and why; SQLite's own "unable to open database file" says neither.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError
from sqlalchemy.pool import QueuePool

from engine.errors import RegistryError
from engine.registry import schema
from engine.registry.artifacts import is_registry_id

__all__ = ["Database", "normalise_url"]

BUSY_TIMEOUT_MS = 30_000
# Below this much free space, a "disk I/O error" from SQLite is taken for a full disk.
_LOW_DISK_BYTES = 1 << 20


def normalise_url(url: str) -> URL:
    """Parse a SQLAlchemy URL; a bare ``postgresql://`` uses psycopg 3 (the postgres extra)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise RegistryError(f"invalid registry URL: {exc}") from None
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


class Database:
    """The registry's engines. ``write()`` and ``read()`` each give one transaction."""

    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        self.shown_url = self.url.render_as_string(hide_password=True)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self._registry_id: str | None = None
        if self.is_sqlite and (self.url.database or ":memory:") == ":memory:":
            # Each pooled connection would open its own empty database, gone at exit.
            raise RegistryError(
                f"registry URL {self.shown_url!r} is an in-memory SQLite database: its "
                "connections would not share it and nothing registered would outlive the "
                "process; give a file (sqlite:////path/to/registry.db)"
            )
        try:
            if self.is_sqlite:
                self._writer = sa.create_engine(
                    self.url,
                    poolclass=QueuePool,
                    pool_size=1,
                    max_overflow=0,
                    pool_timeout=BUSY_TIMEOUT_MS / 1e3,
                )
                self._reader = sa.create_engine(self.url, poolclass=QueuePool, pool_size=4)
                _configure_sqlite(self._writer, begin="BEGIN IMMEDIATE")
                _configure_sqlite(self._reader, begin="BEGIN")
            else:
                self._writer = sa.create_engine(self.url, pool_pre_ping=True)
                self._reader = self._writer
                _configure_postgresql(self._writer)
        except (ArgumentError, ImportError) as exc:
            raise RegistryError(f"cannot use registry URL {self.shown_url!r}: {exc}") from exc
        self._migrate()

    def _migrate(self) -> None:
        with self.read() as conn:
            if sa.inspect(conn).has_table("schema_info"):
                version = conn.execute(sa.select(schema.schema_info.c.version)).scalar_one()
                if version == schema.SCHEMA_VERSION:
                    return
        with self.write() as conn:
            schema.migrate(conn)

    def registry_id(self) -> str:
        """The id this registry records itself under in its artifact stores (random, set when
        the database was created). Raises RegistryError if it is damaged."""
        if self._registry_id is not None:
            return self._registry_id  # never changes
        with self.read() as conn:
            value = conn.execute(sa.select(schema.schema_info.c.registry_id)).scalar_one()
        if not isinstance(value, str) or not is_registry_id(value):
            raise RegistryError(
                f"registry database {self.shown_url!r} cannot be used: schema_info.registry_id "
                f"holds {value!r}, not 32 hex digits (it was changed outside the engine)"
            )
        self._registry_id = value
        return value

    @contextmanager
    def write(self) -> Iterator[sa.Connection]:
        """One write transaction: committed on exit, rolled back on error."""
        with self._errors(), self._writer.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[sa.Connection]:
        """One read transaction: a consistent snapshot of the registry."""
        with self._errors(), self._reader.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except IntegrityError:
            raise  # callers retry or translate unique-constraint races themselves
        except DBAPIError as exc:
            detail = str(exc.orig).strip()
            if _is_lock_timeout(exc):
                detail += (
                    f" (another process held a lock on the registry for more than "
                    f"{BUSY_TIMEOUT_MS / 1e3:g} s; the transaction was rolled back; try again)"
                )
            elif getattr(exc.orig, "sqlstate", None) == "40P01":
                detail += " (the transaction was rolled back and wrote nothing; try again)"
            elif self.is_sqlite and (problem := _sqlite_file_problem(exc, self.url)) is not None:
                raise RegistryError(
                    f"registry database {self.shown_url!r} cannot be used: {problem} "
                    f"(SQLite: {detail})"
                ) from exc
            raise RegistryError(f"registry database {self.shown_url!r} failed: {detail}") from exc

    def dispose(self) -> None:
        self._writer.dispose()
        if self._reader is not self._writer:
            self._reader.dispose()


def _is_lock_timeout(exc: DBAPIError) -> bool:
    orig = exc.orig
    if isinstance(orig, sqlite3.OperationalError):
        return "database is locked" in str(orig) or "database table is locked" in str(orig)
    # PostgreSQL SQLSTATE 55P03 lock_not_available: what lock_timeout raises.
    return getattr(orig, "sqlstate", None) == "55P03"


def _sqlite_file_problem(exc: DBAPIError, url: URL) -> str | None:
    """Why SQLite cannot open or write the database file, naming the path, when its own error
    ("unable to open database file", "attempt to write a readonly database") does not say; None
    if the files look usable (then SQLite's message stands alone)."""
    message = str(exc.orig)
    known = ("unable to open database file", "readonly database", "disk I/O error")
    if not any(text in message for text in known):
        return None
    if not url.database or url.database == ":memory:" or url.database.startswith("file:"):
        return None
    path = Path(url.database).absolute()
    folder = path.parent
    if "disk I/O error" in message:
        try:
            free = shutil.disk_usage(folder).free
        except OSError:
            return None
        if free < _LOW_DISK_BYTES:
            # SQLite says only "disk I/O error" when it cannot grow its files, even to read
            # (every connection writes the WAL index).
            return (
                f"the file system of {str(folder)!r} is full ({free} bytes free); SQLite "
                f"needs room even to read the registry; free some space"
            )
        return None
    if not path.exists():
        # SQLite creates the file, never its folder: name the part of the path in the way.
        existing = next(p for p in (folder, *folder.parents) if p.exists())
        if not existing.is_dir():
            return f"cannot create {str(path)!r}: {str(existing)!r} is not a directory"
        if existing != folder:
            return f"cannot create {str(path)!r}: directory {str(folder)!r} does not exist"
        if not os.access(folder, os.W_OK | os.X_OK):
            return f"cannot create {str(path)!r}: directory {str(folder)!r} is not writable"
        return None
    if not os.access(path, os.R_OK):
        return f"{str(path)!r} is not readable"
    if "readonly database" in message and not os.access(path, os.W_OK):
        return f"{str(path)!r} is not writable"
    journal = [Path(f"{path}-wal"), Path(f"{path}-shm")]
    if not all(p.exists() for p in journal) and not os.access(folder, os.W_OK | os.X_OK):
        # WAL mode is a property of the file: every reader needs the -wal and -shm files.
        return (
            f"SQLite must create {journal[0].name} and {journal[1].name} beside it (the WAL "
            f"journal, needed even to read), but directory {str(folder)!r} is not writable; "
            f"make it writable"
        )
    if "readonly database" in message:
        unwritable = [p for p in journal if p.exists() and not os.access(p, os.W_OK)]
        if unwritable:
            return f"{str(unwritable[0])!r} is not writable"
    return None


def _configure_postgresql(engine: sa.Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Outside any transaction, so the setting is the session's (SQLAlchemy's recipe).
        autocommit = dbapi_conn.autocommit
        dbapi_conn.autocommit = True
        cursor = dbapi_conn.cursor()
        cursor.execute(f"SET lock_timeout = {int(BUSY_TIMEOUT_MS)}")
        cursor.close()
        dbapi_conn.autocommit = autocommit


def _configure_sqlite(engine: sa.Engine, *, begin: str) -> None:
    # pysqlite's own transaction handling is off (isolation_level=None) so that the BEGIN we
    # emit is the one that runs: SQLAlchemy's documented recipe for SQLite.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql(begin)
