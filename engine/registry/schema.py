"""The registry's tables (SQLAlchemy Core) and its schema migrations.

The tables below always describe the latest schema, :data:`SCHEMA_VERSION`. A new database is
created at that version in one step. A database made by an older release is brought forward by
the steps in :data:`MIGRATIONS`: ``MIGRATIONS[n]`` turns version ``n - 1`` into ``n`` with
explicit DDL. A database newer than this code is refused rather than misread.

Version numbers are per model and never reused: ``models.last_version`` only grows, so a
deleted ``name:3`` can never come back as a different model.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from engine.errors import RegistryError
from engine.registry.records import UnreadableJSON, read_integer

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "TolerantJSON",
    "aliases",
    "metadata",
    "migrate",
    "models",
    "new_registry_id",
    "versions",
]

SCHEMA_VERSION = 2

# Arbitrary constant key of the PostgreSQL advisory lock taken while migrating.
_PG_MIGRATION_LOCK = 0x656E67696E65


class TolerantJSON(sa.types.TypeDecorator[Any]):
    """JSON whose reads never raise: stored text that does not decode (SQLite keeps any text in
    a JSON column) comes back as :class:`UnreadableJSON`, so one damaged row cannot break
    reading the others. Writes, DDL and SQL are plain JSON's; there is no migration."""

    impl = sa.JSON
    cache_ok = True

    def result_processor(self, dialect: sa.Dialect, coltype: Any) -> Any:
        # Overridden, not process_result_value: that runs on what JSON's decoder returns, so
        # it can never see the decoder's error.
        decode = self.impl_instance.result_processor(dialect, coltype)
        if decode is None:
            return None  # the driver decodes (psycopg): PostgreSQL json holds only valid JSON

        def process(value: Any) -> Any:
            try:
                return decode(value)
            except (TypeError, ValueError) as exc:  # JSONDecodeError, UnicodeDecodeError
                return UnreadableJSON(value, str(exc))

        return process


metadata = sa.MetaData()

schema_info = sa.Table(
    "schema_info",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),  # always 1: a one-row table
    sa.Column("version", sa.Integer, nullable=False),
    # Random, set when the database is created (version 2): the name under which this registry
    # records itself in the artifact stores it writes to (see Registry.gc).
    sa.Column("registry_id", sa.String(64)),
)

models = sa.Table(
    "models",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("last_version", sa.Integer, nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("updated_at", sa.String(40), nullable=False),
)

versions = sa.Table(
    "versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("artifact_sha256", sa.String(64), nullable=False, index=True),
    sa.Column("artifact_size", sa.BigInteger, nullable=False),
    sa.Column("signature", TolerantJSON, nullable=False),
    sa.Column("config", TolerantJSON, nullable=False),
    sa.Column("metrics", TolerantJSON, nullable=False),
    sa.Column("params", TolerantJSON, nullable=False),
    sa.Column("tags", TolerantJSON, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("data_fingerprint", sa.String(256)),
    sa.Column("code_revision", sa.String(256)),
    sa.Column("parent", sa.String(160)),
    sa.Column("transform_spec", TolerantJSON),
    sa.Column("created_by", sa.String(256)),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.UniqueConstraint("model_id", "version", name="uq_versions_model_version"),
)

aliases = sa.Table(
    "aliases",
    metadata,
    sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), primary_key=True),
    sa.Column("alias", sa.String(128), primary_key=True),
    sa.Column("version_id", sa.Integer, sa.ForeignKey("versions.id"), nullable=False),
    sa.Column("updated_at", sa.String(40), nullable=False),
)


def new_registry_id() -> str:
    return uuid.uuid4().hex


def _add_registry_id(conn: sa.Connection) -> None:
    conn.execute(sa.text("ALTER TABLE schema_info ADD COLUMN registry_id VARCHAR(64)"))
    conn.execute(schema_info.update().values(registry_id=new_registry_id()))


# Steps for databases created by older releases: MIGRATIONS[n] turns version n - 1 into n.
MIGRATIONS: dict[int, Callable[[sa.Connection], None]] = {2: _add_registry_id}


def migrate(conn: sa.Connection) -> None:
    """Create or upgrade the schema inside the caller's write transaction."""
    if conn.dialect.name == "postgresql":
        # SQLite's BEGIN IMMEDIATE already serialises writers; PostgreSQL needs a lock so two
        # processes opening an empty database do not both create the tables.
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
    if not sa.inspect(conn).has_table("schema_info"):
        if sa.inspect(conn).has_table("models"):
            raise RegistryError(
                "registry database has tables but no schema_info; it was not created by this engine"
            )
        metadata.create_all(conn)
        conn.execute(
            schema_info.insert().values(
                id=1, version=SCHEMA_VERSION, registry_id=new_registry_id()
            )
        )
        return
    stored = conn.execute(sa.select(schema_info.c.version)).scalar_one()
    # SQLite keeps any value in an INTEGER column (PostgreSQL cannot hold a damaged one): a
    # version this engine cannot read leaves no way to tell which schema the tables follow.
    current, error = read_integer(stored, "schema_info.version", 1)
    if current is None:
        raise RegistryError(
            f"registry database cannot be used: {error}, so its schema is unknown (it was "
            f"changed outside the engine; this engine writes {SCHEMA_VERSION})"
        )
    if current > SCHEMA_VERSION:
        raise RegistryError(
            f"registry schema version {current} is newer than this engine supports "
            f"({SCHEMA_VERSION}); upgrade the engine"
        )
    for step in range(current + 1, SCHEMA_VERSION + 1):
        MIGRATIONS[step](conn)
        conn.execute(schema_info.update().values(version=step))
