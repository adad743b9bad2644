"""The model registry's Python API: :class:`Registry` and :func:`resolve`.

A registration copies each file into a temp file of the artifact store (hashed, fsynced) and
checks it before one database transaction allocates the versions and inserts their rows; still
inside that transaction the files are moved to their final names (durable), then it commits.
So a crash or a database failure at any point leaves either every version of the call or none;
at worst an unreferenced blob (when the commit itself fails after the move) that
:meth:`Registry.gc` reclaims. With a shared artifact store (``artifacts_url``) that move is
an upload to the store (temp key, then its final key), so the transaction, and on SQLite the
database's write lock, is held while the files upload: that is also what lets
:meth:`Registry.gc` delete a shared store's blob without racing a registration that uploads the
same bytes again (it deletes under that lock). Concurrent registrations serialise on
the database (SQLite ``BEGIN IMMEDIATE``, PostgreSQL ``SELECT ... FOR UPDATE`` on the rows of
the models written or named as parents, in name order, so that no two writes deadlock) and
retry unique-constraint races, so every one succeeds with its own version number. A default
(inherited) lineage parent is chosen in that same transaction, after the lock, so concurrent
registrations of one name form a chain; a given parent is checked there too, and its row stays
locked until the commit, so a concurrent delete cannot leave the new version's parent gone.

Reads never validate a stored config, signature or lineage (see
:class:`~engine.registry.records.ModelVersion`): a version another release wrote under other
rules is listed and shown, and fails only where the refused value is needed (its config when
loaded). Likewise an integer column that holds something else (SQLite only: see
:mod:`engine.registry.records`): the record names it, and only what needs the value fails
(loading the version; numbering a new version when ``models.last_version`` is damaged). No
write repairs a damaged value: the operator fixes the row, which the error messages name.
"""

from __future__ import annotations

import builtins
import getpass
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from engine.config import ModelConfig
from engine.errors import (
    ConflictError,
    InvalidConfigError,
    InvalidModelNameError,
    ModelLoadError,
    ModelNotFoundError,
    RegistryError,
)
from engine.names import MAX_VERSION, ModelRef, parse_ref, validate_name
from engine.registry.artifacts import ArtifactStore, StagedArtifact
from engine.registry.database import Database, normalise_url
from engine.registry.fingerprint import fingerprint_file
from engine.registry.onnx_signature import check_model_file
from engine.registry.records import (
    Lineage,
    LineageChain,
    ModelSummary,
    ModelVersion,
    NewVersion,
    OrphanRow,
    ResolvedModel,
    UnreadableJSON,
    check_metrics,
    check_params,
    check_tags,
    read_integer,
    read_mapping,
    read_timestamp,
)
from engine.registry.remote_artifacts import RemoteArtifactStore
from engine.registry.schema import aliases, models, versions
from engine.settings import get_settings

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self needs Python 3.11

__all__ = ["Registry", "missing_database", "resolve"]

_REGISTER_ATTEMPTS = 8
_MAX_DESCRIPTION = 10_000
_MAX_LINEAGE_DEPTH = 1000


def _home_path(home: str | os.PathLike[str] | None) -> Path:
    return (Path(home) if home is not None else get_settings().engine_home).expanduser().absolute()


def _database_url(home: Path, url: str | None) -> str:
    return url or get_settings().registry_url or f"sqlite:///{home / 'registry.db'}"


def missing_database(
    home: str | os.PathLike[str] | None = None, url: str | None = None
) -> Path | None:
    """The SQLite file of the registry at ``home``/``url`` (the defaults of :class:`Registry`)
    if that file does not exist, else None (it exists, or the database is not a SQLite file
    this can check: another server, in memory, a ``file:`` URI). Creates nothing: opening a
    :class:`Registry` creates a missing database and its home, so a command that only reads
    asks this first and, given a path, knows that no model is registered there."""
    home_path = _home_path(home)
    parsed = normalise_url(_database_url(home_path, url))
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = Path(database).absolute()
    return None if path.exists() else path


class Registry:
    """Models, versions, aliases and lineage, backed by a database and an artifact store.

    ``home`` (default ``$ENGINE_HOME``, else ``~/.engine``) holds the artifacts and the default
    SQLite database. ``url`` (default ``$ENGINE_REGISTRY_URL``) is a SQLAlchemy URL selecting
    another database, e.g. ``postgresql+psycopg://user@host/db``. ``artifacts_url`` (default
    ``$ENGINE_ARTIFACTS_URL``) is an fsspec URL (``s3://bucket/prefix``, ``file:///mnt/nfs/x``,
    a path) of an artifact store that several machines share (see
    :mod:`engine.registry.remote_artifacts`); the home then holds only a verified local cache
    of it (``artifact-cache/``). Without one, artifacts live under ``home/artifacts``. Safe to
    use from several processes at once; one instance may be shared by threads. Every method
    blocks on I/O.
    """

    def __init__(
        self,
        home: str | os.PathLike[str] | None = None,
        url: str | None = None,
        artifacts_url: str | None = None,
    ) -> None:
        settings = get_settings()
        self.home = _home_path(home)
        try:
            self.home.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RegistryError(
                f"cannot create registry home {str(self.home)!r}: {exc.strerror}"
            ) from exc
        self._db = Database(_database_url(self.home, url))
        artifacts_url = artifacts_url or settings.artifacts_url
        self._artifacts: ArtifactStore | RemoteArtifactStore
        if artifacts_url is None:
            self._artifacts = ArtifactStore(self.home / "artifacts")
        else:
            try:
                self._artifacts = RemoteArtifactStore(artifacts_url, self.home / "artifact-cache")
            except BaseException:
                self._db.dispose()
                raise
        self._recorded_in_store = False  # this registry's marker is known to be in the store

    @property
    def artifacts_url(self) -> str:
        """Where the artifacts are: the shared store's URL (no credentials), else the local
        folder."""
        return str(self._artifacts.root)

    @property
    def url(self) -> str:
        """The database URL with any password hidden."""
        return self._db.shown_url

    def close(self) -> None:
        self._db.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ---- writes -------------------------------------------------------------------------

    def register(
        self,
        name: str,
        path: str | Path,
        *,
        config: ModelConfig | Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        lineage: Lineage | Mapping[str, Any] | None = None,
        alias: str | None = None,
        description: str | None = None,
        inherit_parent: bool = False,
    ) -> ModelVersion:
        """Store the ONNX file at ``path`` as the next version of ``name``.

        The config is validated as :class:`ModelConfig` validates it (a mapping is read with
        ``ModelConfig.from_dict``) and checked against the file, so a version that is registered
        can be loaded with its config.

        With ``inherit_parent`` and no parent in ``lineage``, the parent is the newest version
        of ``name`` (archived ones included, deleted ones not) when the transaction that numbers
        this version runs; none for a new name. Registrations of one name serialise on that
        transaction, so retrains registering at once each get the one before as parent.

        Raises InvalidModelNameError (bad name or alias), InvalidConfigError (bad config,
        metrics, params, tags or lineage; config inputs/outputs that contradict the model, or
        batching forced on for a model without a dynamic first dimension),
        ModelLoadError (unreadable or invalid ONNX, external data), ModelNotFoundError (lineage
        parent missing), RegistryError (database failure, or the model's stored
        ``models.last_version`` is no integer: nothing is registered then).
        """
        entry = NewVersion(
            name,
            path,
            config=config,
            metrics=metrics,
            params=params,
            tags=tags,
            lineage=lineage,
            description=description,
            inherit_parent=inherit_parent,
        )
        return self.register_all([entry], alias=alias)[0][0]

    def register_all(
        self,
        entries: Sequence[NewVersion],
        *,
        alias: str | None = None,
        skip_registered: bool = False,
    ) -> builtins.list[tuple[ModelVersion, bool]]:
        """Register every entry, in order, in one database transaction: all of them or none.

        Each entry is checked as :meth:`register` checks it, and each file is copied to a temp
        file of the artifact store and checked against its config, before the transaction
        starts: a bad entry registers nothing. The transaction inserts the rows, moves the
        files to their final names (durable), then commits. If the database fails part way (a
        constraint, a full disk, a lost connection) it rolls back and the temp files are
        deleted: nothing of the call remains. Only a failure of the commit itself, after the
        move, leaves blobs; no version references them and :meth:`gc` reclaims them after its
        grace period (they are not deleted at once: a concurrent registration of the same
        bytes may have stored the same blob and be about to reference it).

        With ``skip_registered``, an entry whose bytes and config are already registered under
        its name (any version, archived included, or an earlier entry) is not registered
        again: its result is that version. With ``alias``, the alias points at each name's
        last entry's version when the transaction commits.

        Returns ``(record, skipped)`` per entry, in order. Blocks on file and database I/O.
        Raises as :meth:`register` does; ConflictError when the alias would point at an
        archived version, or a version counted on as registered was deleted meanwhile (run
        again).
        """
        if alias is not None:
            validate_new_alias(alias)
        prepared = [_prepare(entry) for entry in entries]
        if not prepared:
            return []
        known: dict[str, dict[tuple[str, str], int]] = {}
        if skip_registered:
            with self._db.read() as conn:
                for name in {p.name for p in prepared}:
                    known[name] = _registered_keys(conn, name)
        staged: builtins.list[StagedArtifact | None] = []
        committed: set[Path] = set()
        try:
            for item in prepared:
                if skip_registered:
                    item.source_sha256 = _file_sha256(item.source)
                    if (item.source_sha256, item.config_key) in known[item.name]:
                        staged.append(None)  # looked up again inside the transaction
                        continue
                copy = self._artifacts.stage(item.source)
                staged.append(copy)
                inputs, outputs = check_model_file(copy.path, item.config, item.label)
                item.fields.update(
                    artifact_sha256=copy.sha256,
                    artifact_size=copy.size_bytes,
                    signature={
                        "inputs": [t.to_dict() for t in inputs],
                        "outputs": [t.to_dict() for t in outputs],
                    },
                )
            for attempt in range(_REGISTER_ATTEMPTS):
                try:
                    with self._db.write() as conn:
                        ids, skipped = self._insert_all(conn, prepared, staged, skip_registered)
                        if alias is not None:
                            self._point_alias(conn, prepared, ids, alias)
                        for artifact, was_skipped in zip(staged, skipped):
                            if artifact is not None and not was_skipped:
                                self._commit_artifact(artifact, committed)
                        records = [
                            self._load(conn, item.name, self._row_by_id(conn, version_id))
                            for item, version_id in zip(prepared, ids)
                        ]
                    return list(zip(records, skipped))
                except IntegrityError as exc:
                    # Another process created the same model row first; the retry finds it.
                    if attempt == _REGISTER_ATTEMPTS - 1:
                        raise RegistryError(
                            f"could not register {_describe(prepared)} after "
                            f"{_REGISTER_ATTEMPTS} attempts: {exc.orig}"
                        ) from exc
            raise AssertionError("unreachable")
        finally:
            for artifact in staged:
                if artifact is not None and artifact.path not in committed:
                    self._artifacts.discard(artifact)

    def _insert_all(
        self,
        conn: sa.Connection,
        prepared: builtins.list[_Prepared],
        staged: builtins.list[StagedArtifact | None],
        skip_registered: bool,
    ) -> tuple[builtins.list[int], builtins.list[bool]]:
        """Insert the entries' rows (the caller's transaction); their version ids and which
        were skipped as registered already."""
        ids: builtins.list[int] = []
        skipped: builtins.list[bool] = []
        keys: dict[str, dict[tuple[str, str], int]] = {}
        self._lock_models(conn, prepared)
        for item, artifact in zip(prepared, staged):
            if skip_registered:
                if item.name not in keys:
                    # Lock the model row first (PostgreSQL), so a concurrent import of the same
                    # model cannot insert the same bytes and config between this read and ours.
                    conn.execute(
                        sa.select(models.c.id).where(models.c.name == item.name).with_for_update()
                    )
                    keys[item.name] = _registered_keys(conn, item.name)
                sha256 = artifact.sha256 if artifact is not None else item.source_sha256
                found = keys[item.name].get((sha256, item.config_key))
                if found is not None:
                    ids.append(found)
                    skipped.append(True)
                    continue
                if artifact is None:
                    raise ConflictError(
                        f"a version of {item.name!r} with the same file and config was deleted "
                        f"while this import ran; nothing was registered; run it again"
                    )
            version_id = self._insert_version(conn, item.name, item.fields, item.inherit_parent)
            if skip_registered:
                keys[item.name][(item.fields["artifact_sha256"], item.config_key)] = version_id
            ids.append(version_id)
            skipped.append(False)
        return ids, skipped

    def _lock_models(self, conn: sa.Connection, prepared: builtins.list[_Prepared]) -> None:
        """Lock the row of every model the entries write or name as a lineage parent, in name
        order, inserting the rows of new models, before any other lock (PostgreSQL; SQLite's
        ``BEGIN IMMEDIATE`` already serialises writers). Every other write locks one model's
        row, then rows of that model's versions, so no two writes can wait on each other in a
        cycle. In entry order they could: ``[child (parent base:1), base]`` held child's row and
        base:1 while waiting for base's row, which a delete of base:1 held while waiting for
        base:1; two calls naming the same models in opposite orders held one row each."""
        written = {item.name for item in prepared}
        parents = {
            parse_ref(item.fields["parent"]).name for item in prepared if item.fields["parent"]
        }
        now = _now()
        for name in sorted(written | parents):
            found = conn.execute(
                sa.select(models.c.id).where(models.c.name == name).with_for_update()
            ).first()
            if found is None and name in written:
                # A concurrent creation of the same model fails this insert on the unique name;
                # register_all's retry then finds the row.
                conn.execute(
                    models.insert().values(
                        name=name, last_version=0, created_at=now, updated_at=now
                    )
                )

    def _point_alias(
        self,
        conn: sa.Connection,
        prepared: builtins.list[_Prepared],
        ids: builtins.list[int],
        alias: str,
    ) -> None:
        newest = {item.name: version_id for item, version_id in zip(prepared, ids)}
        now = _now()
        for name, version_id in newest.items():
            row = self._row_by_id(conn, version_id)
            if row.status != "ready":
                raise ConflictError(
                    f"cannot point alias {alias!r} at {name}:{row.version}: it is {row.status}"
                )
            _put_alias(conn, row.model_id, alias, row.id, now)
            conn.execute(models.update().where(models.c.id == row.model_id).values(updated_at=now))

    def _commit_artifact(self, artifact: StagedArtifact, committed: set[Path]) -> None:
        if artifact.path in committed:
            return  # moved into place by an earlier attempt of this transaction
        self._record_in_store()
        try:
            self._artifacts.commit(artifact)
        except OSError as exc:
            raise RegistryError(
                f"cannot store artifact {artifact.sha256} in {str(self._artifacts.root)!r}: "
                f"{exc.strerror or exc}"
            ) from exc
        committed.add(artifact.path)

    def _insert_version(
        self, conn: sa.Connection, name: str, fields: dict[str, Any], inherit_parent: bool
    ) -> int:
        """Insert the next version of ``name``; returns the new row's id. With
        ``inherit_parent`` and no parent in ``fields``, the parent is the newest version."""
        now = _now()
        model = conn.execute(
            sa.select(models.c.id, models.c.last_version)
            .where(models.c.name == name)
            .with_for_update()
        ).first()
        if model is None:
            model_id = _new_id(
                conn.execute(
                    models.insert().values(
                        name=name, last_version=0, created_at=now, updated_at=now
                    )
                )
            )
            last = 0
        else:
            model_id = model.id
            stored_last, error = read_integer(
                model.last_version, "models.last_version", 0, MAX_VERSION
            )
            if stored_last is None:
                # Never guessed nor repaired: a wrong number could reuse a deleted version's.
                newest = _newest(conn, model_id, ready_only=False)
                raise RegistryError(
                    f"cannot number a new version of {name!r}: {error}; it was changed outside "
                    f"the engine: set it to the highest version number {name!r} ever had (at "
                    f"least {newest[1] if newest else 0}, the highest it has now), then "
                    f"register again"
                )
            last = stored_last
        parent = fields["parent"]
        if parent is not None:
            # Checked after the model rows' locks (_lock_models) and locked until commit
            # (PostgreSQL), so a concurrent delete of the parent cannot slip in between this
            # check and the insert.
            try:
                self._version_row(conn, parse_ref(parent), lock=True)
            except ModelNotFoundError as exc:
                raise ModelNotFoundError(
                    f"lineage parent {parent!r} cannot be found: {exc}"
                ) from None
        if parent is None and inherit_parent and model is not None:
            # Read after taking the model row's lock (SQLite: the database's), so no other
            # registration of this name commits between this choice and this version's number;
            # under READ COMMITTED this statement sees every version committed before the lock.
            newest = _newest(conn, model_id, ready_only=False)
            if newest is not None:
                parent = f"{name}:{newest[1]}"
        if last >= MAX_VERSION:
            raise RegistryError(f"model {name!r} has reached the maximum version {MAX_VERSION}")
        version = last + 1
        conn.execute(
            models.update()
            .where(models.c.id == model_id)
            .values(last_version=version, updated_at=now)
        )
        return _new_id(
            conn.execute(
                versions.insert().values(
                    model_id=model_id,
                    version=version,
                    status="ready",
                    created_at=now,
                    **{**fields, "parent": parent},
                )
            )
        )

    def set_alias(self, name: str, alias: str, version: int) -> ModelVersion:
        """Point ``name@alias`` at ``version`` (creating or moving the alias).

        Raises ModelNotFoundError (no such version), ConflictError (version archived),
        InvalidModelNameError (an alias that breaks the grammar or reads as something else).
        """
        validate_new_alias(alias)
        with self._db.write() as conn:
            self._model_id(conn, name, lock=True)
            row = self._version_row(conn, ModelRef(name, version=version))
            if row.status != "ready":
                raise ConflictError(
                    f"cannot point alias {alias!r} at {name}:{version}: it is {row.status}"
                )
            _put_alias(conn, row.model_id, alias, row.id, _now())
            _touch(conn, row.model_id)
            return self._load(conn, name, row)

    def remove_alias(self, name: str, alias: str) -> None:
        """Delete ``name@alias``. Raises ModelNotFoundError if it does not exist."""
        validate_name(alias, "alias")
        with self._db.write() as conn:
            model_id = self._model_id(conn, name, lock=True)
            deleted = conn.execute(
                aliases.delete().where(aliases.c.model_id == model_id, aliases.c.alias == alias)
            ).rowcount
            if not deleted:
                raise ModelNotFoundError(f"model {name!r} has no alias {alias!r}")
            _touch(conn, model_id)

    def archive(self, name: str, version: int) -> ModelVersion:
        """Mark a version archived: kept and loadable as ``name:VERSION``, but never the
        latest. Raises ConflictError while an alias points at it."""
        with self._db.write() as conn:
            self._model_id(conn, name, lock=True)
            row = self._version_row(conn, ModelRef(name, version=version))
            self._refuse_if_aliased(conn, row, name, "archive")
            conn.execute(versions.update().where(versions.c.id == row.id).values(status="archived"))
            _touch(conn, row.model_id)
            return self._load(conn, name, self._row_by_id(conn, row.id))

    def unarchive(self, name: str, version: int) -> ModelVersion:
        """Make an archived version ready again: ``name`` resolves to it if it is the newest
        ready one, and aliases may point at it. A version that is not archived is returned
        as it is. Raises ModelNotFoundError."""
        with self._db.write() as conn:
            self._model_id(conn, name, lock=True)
            row = self._version_row(conn, ModelRef(name, version=version))
            if row.status == "archived":
                conn.execute(
                    versions.update().where(versions.c.id == row.id).values(status="ready")
                )
                _touch(conn, row.model_id)
            return self._load(conn, name, self._row_by_id(conn, row.id))

    def delete(self, name: str, version: int) -> None:
        """Delete a version's record; its blob goes at the next :meth:`gc` if unreferenced.
        Raises ConflictError while an alias points at it. The number is never reused."""
        with self._db.write() as conn:
            self._model_id(conn, name, lock=True)
            row = self._version_row(conn, ModelRef(name, version=version))
            self._refuse_if_aliased(conn, row, name, "delete")
            conn.execute(versions.delete().where(versions.c.id == row.id))
            _touch(conn, row.model_id)

    def gc(self, min_age_s: float = 3600.0, *, claim_store: bool = False) -> builtins.list[str]:
        """Remove blobs no version references and leftover temp files older than
        ``min_age_s`` (the grace period protects registrations in flight).

        Every blob this registry does not reference is garbage to it, so gc runs only on a
        store that this registry alone uses: each registry that stores an artifact records
        itself in the store (``registries/<id>``). Raises RegistryError, deleting nothing, when
        another registry is recorded there, or when this one is not and the store holds blobs
        (a mistyped database or home, or a store filled before registries were recorded:
        ``claim_store=True`` records this registry first, when no other one is recorded).
        """
        self._check_sole_user(claim_store)
        with self._db.read() as conn:
            referenced = set(conn.execute(sa.select(versions.c.artifact_sha256)).scalars())
        if isinstance(self._artifacts, RemoteArtifactStore):
            return self._artifacts.gc(
                referenced, min_age_s, deletion_lock=self._unreferenced_while_locked
            )
        return self._artifacts.gc(referenced, min_age_s)

    def _record_in_store(self) -> None:
        if not self._recorded_in_store:
            about = f"engine registry {self._db.shown_url}, recorded {_now()}"
            self._artifacts.record_owner(self._db.registry_id(), about)
            self._recorded_in_store = True

    def _check_sole_user(self, claim_store: bool) -> None:
        mine = self._db.registry_id()
        owners = self._artifacts.owners()
        store = self._artifacts.root
        if others := sorted(owners - {mine}):
            raise RegistryError(
                f"cannot collect garbage in the artifact store {str(store)!r}: another registry "
                f"uses it too ({', '.join(others)}; see {store}/registries/), and gc would "
                f"delete the blobs this registry ({self._db.shown_url}) does not reference, "
                f"theirs included. Check that this is the registry you meant (--home, "
                f"--registry-url); gc runs only where one registry uses the store. If that "
                f"other registry no longer exists, delete its file there first"
            )
        if mine in owners:
            return
        if claim_store:
            self._record_in_store()
        elif self._artifacts.has_blobs():
            raise RegistryError(
                f"cannot collect garbage in the artifact store {str(store)!r}: this registry "
                f"({self._db.shown_url}) never stored an artifact there, so every blob in it "
                f"would be deleted. Check the registry's home and URL and the artifacts URL; "
                f"if this registry is the store's only user (a store filled before registries "
                f"were recorded in it), claim it with 'engine models gc --claim-store'"
            )

    @contextmanager
    def _unreferenced_while_locked(self, sha256: str) -> Iterator[bool]:
        """Hold the lock every registration holds from before its upload until it commits, and
        yield whether no version references ``sha256``: a shared store's gc deletes a blob in
        here, so that it cannot delete one a registration has just uploaded again."""
        with self._db.write() as conn:  # on SQLite, BEGIN IMMEDIATE: the database's write lock
            if not self._db.is_sqlite:
                # A registration inserts its version rows (ROW EXCLUSIVE on versions) before it
                # uploads. SHARE waits for those in flight and holds off new ones until the
                # transaction ends.
                conn.execute(sa.text("LOCK TABLE versions IN SHARE MODE"))
            found = conn.execute(
                sa.select(versions.c.id).where(versions.c.artifact_sha256 == sha256).limit(1)
            ).first()
            yield found is None

    # ---- reads --------------------------------------------------------------------------

    def get(self, ref: str | ModelRef) -> ModelVersion:
        """The version ``ref`` names (``name`` = latest ready, ``name:3``, ``name@alias``).
        Raises InvalidModelNameError or ModelNotFoundError."""
        parsed = ref if isinstance(ref, ModelRef) else parse_ref(ref)
        with self._db.read() as conn:
            return self._load(conn, parsed.name, self._version_row(conn, parsed))

    def resolve(self, ref: str | ModelRef, *, config: ModelConfig | None = None) -> ResolvedModel:
        """What a loader needs for ``ref``: the artifact path (hash verified now), the config
        and the record. ``config``: the caller's explicit config, which replaces the stored
        one (then the stored one is neither read nor validated: a version whose stored config
        this engine refuses still loads with a valid one). Raises ModelNotFoundError,
        InvalidConfigError if no ``config`` is given and this engine refuses the version's
        stored config (naming the version, field, value and allowed range), or ModelLoadError
        if the record's number or size cannot be read (naming the column and stored value), or
        the blob is missing or does not match its hash."""
        record = self.get(ref)
        record.check_loadable()  # a version number or size that cannot be read
        assert record.size_bytes is not None  # check_loadable refuses it otherwise
        if config is None:
            config = record.config  # before hashing the blob: the cheaper refusal first
        elif not isinstance(config, ModelConfig):
            raise InvalidConfigError(f"config must be a ModelConfig; was {type(config).__name__}")
        try:
            path = self._artifacts.verify(record.sha256, record.size_bytes)
        except ModelLoadError as exc:
            raise ModelLoadError(f"{record.ref}: {exc}") from None
        return ResolvedModel(path=path, config=config, version=record)

    def versions(self, name: str) -> builtins.list[ModelVersion]:
        """Every version of ``name``, archived included, oldest first."""
        validate_name(name)
        with self._db.read() as conn:
            model_id = self._model_id(conn, name)
            rows = conn.execute(
                sa.select(versions)
                .where(versions.c.model_id == model_id)
                .order_by(versions.c.version)
            ).all()
            by_version = _aliases_by_version_id(conn, model_id)
            return [_record(name, row, by_version.get(row.id, ())) for row in rows]

    def list(self) -> builtins.list[ModelSummary]:
        """Every model, by name. A version whose number cannot be read is counted but never
        the latest; an alias whose version cannot be told maps to None (see ModelSummary)."""
        with self._db.read() as conn:
            model_rows = conn.execute(sa.select(models).order_by(models.c.name)).all()
            # Aggregated here, not with SQL MAX: SQLite would rank a damaged number stored as
            # text above every integer.
            counts: dict[int, int] = {}
            latest: dict[int, int] = {}
            damaged: dict[int, builtins.list[str]] = {}
            for v in conn.execute(
                sa.select(versions.c.model_id, versions.c.id, versions.c.version, versions.c.status)
            ):
                counts[v.model_id] = counts.get(v.model_id, 0) + 1
                number, error = _read_version(v.version, v.id)
                if number is None:
                    damaged.setdefault(v.model_id, []).append(str(error))
                elif v.status == "ready":
                    latest[v.model_id] = max(number, latest.get(v.model_id, number))
            alias_map: dict[int, dict[str, int | None]] = {}
            alias_errors: dict[int, dict[str, str]] = {}
            for a in conn.execute(
                sa.select(
                    aliases.c.model_id,
                    aliases.c.alias,
                    aliases.c.version_id,
                    versions.c.id,
                    versions.c.version,
                )
                # A version of this model only: one whose model_id is damaged is no one's.
                .outerjoin(
                    versions,
                    (versions.c.id == aliases.c.version_id)
                    & (versions.c.model_id == aliases.c.model_id),
                )
                .order_by(aliases.c.alias)
            ):
                if a.id is None:
                    number, error = None, _dangling_alias(a.version_id)
                else:
                    number, error = _read_version(a.version, a.id)
                    if error is not None:
                        error = f"points at a version whose number cannot be read: {error}"
                alias_map.setdefault(a.model_id, {})[a.alias] = number
                if error is not None:
                    alias_errors.setdefault(a.model_id, {})[f"alias {a.alias}"] = error
        out = []
        for m in model_rows:
            updated_at, error = read_timestamp(m.updated_at, "updated_at")
            read_errors = {"updated_at": error} if error is not None else {}
            if m.id in damaged:
                read_errors["versions"] = "; ".join(sorted(damaged[m.id]))
            read_errors.update(alias_errors.get(m.id, {}))
            out.append(
                ModelSummary(
                    name=m.name,
                    latest_version=latest.get(m.id),
                    version_count=counts.get(m.id, 0),
                    aliases=alias_map.get(m.id, {}),
                    updated_at=updated_at,
                    read_errors=read_errors,
                )
            )
        return out

    def lineage(self, ref: str | ModelRef) -> builtins.list[ModelVersion]:
        """``ref``'s version followed by its parent, grandparent, ... as far as they exist
        (:meth:`lineage_chain` also says why the chain ends early)."""
        return builtins.list(self.lineage_chain(ref).versions)

    def lineage_chain(self, ref: str | ModelRef) -> LineageChain:
        """``ref``'s version followed by its parent, grandparent, ... as far as they can be
        found, and why the chain ends before a version without a parent (``stopped``): a parent
        that was deleted or whose number cannot be read (the message names the column and the
        stored value), a loop, or the length limit. A version whose stored lineage this engine
        refuses is listed; the chain goes on through its stored parent if that alone is a valid
        ``name:VERSION``. Raises ModelNotFoundError for ``ref`` itself only."""
        chain = [self.get(ref)]
        seen = {chain[0].ref}
        stopped = None
        while (parent := _parent_to_follow(chain[-1])) is not None:
            if parent in seen:
                stopped = f"its parent {parent} is already in the chain (a loop)"
                break
            if len(chain) >= _MAX_LINEAGE_DEPTH:
                stopped = f"the chain is cut at {_MAX_LINEAGE_DEPTH} versions"
                break
            try:
                chain.append(self.get(parent))
            except ModelNotFoundError as exc:
                stopped = f"its parent {parent} cannot be found: {exc}"
                break
            seen.add(parent)
        return LineageChain(tuple(chain), stopped)

    def orphans(self) -> builtins.list[OrphanRow]:
        """The ``versions`` and ``aliases`` rows whose ``model_id`` names no model (text, a
        REAL, or the id of no model), by table and row id, in one query. No model's listing
        shows them; they block nothing, and no write touches them: the operator fixes or
        deletes them (``where`` names each row). Always empty on PostgreSQL, which enforces
        both the column's type and the foreign key (no query is made there)."""
        if not self._db.is_sqlite:
            return []
        orphaned = ~sa.exists().where(models.c.id == versions.c.model_id)
        orphaned_alias = ~sa.exists().where(models.c.id == aliases.c.model_id)
        query = sa.union_all(
            sa.select(
                sa.literal("versions").label("tbl"),
                versions.c.id.label("row_id"),
                versions.c.model_id,
                sa.cast(sa.null(), sa.String).label("alias"),
            ).where(orphaned),
            sa.select(
                sa.literal("aliases"),
                sa.literal_column("aliases.rowid"),
                aliases.c.model_id,
                aliases.c.alias,
            ).where(orphaned_alias),
        )
        with self._db.read() as conn:
            rows = conn.execute(query).all()
        out = [OrphanRow(r.tbl, int(r.row_id), r.model_id, r.alias) for r in rows]
        return sorted(out, key=lambda o: (o.table != "versions", o.row_id))

    # ---- helpers ------------------------------------------------------------------------

    def _model_id(self, conn: sa.Connection, name: str, *, lock: bool = False) -> int:
        """The model's id. With ``lock``, its row stays locked until the caller's write
        transaction ends.

        Every write that reads a model's versions or aliases and then changes them takes this
        lock first, as a registration does: under PostgreSQL's READ COMMITTED two such writes
        would otherwise both read, then both write (two inserts of one new alias fail on its
        key; an alias is set on a version a concurrent archive or delete saw unaliased). SQLite
        needs nothing more: its writers' ``BEGIN IMMEDIATE`` already serialises them.
        """
        query = sa.select(models.c.id).where(models.c.name == name)
        model_id = conn.execute(query.with_for_update() if lock else query).scalar()
        if model_id is None:
            raise ModelNotFoundError(f"no model named {name!r}")
        return int(model_id)

    def _version_row(
        self, conn: sa.Connection, ref: ModelRef, *, lock: bool = False
    ) -> sa.Row[Any]:
        """The row ``ref`` names. With ``lock`` (a ``name:VERSION`` ref), the row cannot be
        deleted until the caller's write transaction ends: PostgreSQL's FOR KEY SHARE, the lock a
        foreign key check takes, which blocks a delete but not an archive; SQLite's writers are
        serialised by ``BEGIN IMMEDIATE`` already."""
        model_id = self._model_id(conn, ref.name)
        query = sa.select(versions).where(versions.c.model_id == model_id)
        if ref.version is not None:
            found = query.where(versions.c.version == ref.version)
            if lock:
                found = found.with_for_update(read=True, key_share=True)
            row = conn.execute(found).first()
            missing = f"model {ref.name!r} has no version {ref.version}"
            if row is None:
                # The version may be one whose number was damaged: say so, rather than only
                # that it does not exist.
                damaged = [
                    str(error)
                    for v in conn.execute(
                        sa.select(versions.c.id, versions.c.version).where(
                            versions.c.model_id == model_id
                        )
                    )
                    if (error := _read_version(v.version, v.id)[1]) is not None
                ]
                if len(damaged) == 1:
                    missing += (
                        f" (1 version of {ref.name!r} has a number that cannot be read: "
                        f"{damaged[0]})"
                    )
                elif damaged:
                    missing += (
                        f" ({len(damaged)} versions of {ref.name!r} have numbers that cannot be "
                        f"read: {'; '.join(sorted(damaged))})"
                    )
        elif ref.alias is not None:
            row = conn.execute(
                query.join(aliases, aliases.c.version_id == versions.c.id).where(
                    aliases.c.model_id == model_id, aliases.c.alias == ref.alias
                )
            ).first()
            missing = f"model {ref.name!r} has no alias {ref.alias!r}"
            if row is None:
                version_id = conn.execute(
                    sa.select(aliases.c.version_id).where(
                        aliases.c.model_id == model_id, aliases.c.alias == ref.alias
                    )
                ).first()
                if version_id is not None:  # the alias exists; the version it names does not
                    missing = (
                        f"model {ref.name!r} alias {ref.alias!r} cannot be followed: "
                        f"{_dangling_alias(version_id[0])}"
                    )
        else:
            # The newest ready version whose number can be read (SQLite ranks a damaged
            # number stored as text above every integer).
            newest = _newest(conn, model_id, ready_only=True)
            row = self._row_by_id(conn, newest[0]) if newest is not None else None
            missing = f"model {ref.name!r} has no ready version (all are archived or deleted)"
        if row is None:
            raise ModelNotFoundError(missing)
        return row

    def _row_by_id(self, conn: sa.Connection, version_id: int) -> sa.Row[Any]:
        return conn.execute(sa.select(versions).where(versions.c.id == version_id)).one()

    def _load(self, conn: sa.Connection, name: str, row: sa.Row[Any]) -> ModelVersion:
        names = (
            conn.execute(
                sa.select(aliases.c.alias)
                .where(aliases.c.version_id == row.id)
                .order_by(aliases.c.alias)
            )
            .scalars()
            .all()
        )
        return _record(name, row, tuple(names))

    def _refuse_if_aliased(
        self, conn: sa.Connection, row: sa.Row[Any], name: str, action: str
    ) -> None:
        names = (
            conn.execute(
                sa.select(aliases.c.alias)
                .where(aliases.c.version_id == row.id)
                .order_by(aliases.c.alias)
            )
            .scalars()
            .all()
        )
        if names:
            raise ConflictError(
                f"cannot {action} {name}:{row.version}: aliases {list(names)} point at it; move "
                f"or remove them first"
            )


def resolve(
    ref: str | ModelRef,
    home: str | os.PathLike[str] | None = None,
    url: str | None = None,
    *,
    config: ModelConfig | None = None,
    artifacts_url: str | None = None,
) -> ResolvedModel:
    """Resolve ``ref`` in the registry at ``home``/``url``/``artifacts_url`` (defaults from
    the environment): the entry point ``engine.load`` uses for registry references.
    ``config`` replaces the stored config (see :meth:`Registry.resolve`)."""
    with Registry(home=home, url=url, artifacts_url=artifacts_url) as registry:
        return registry.resolve(ref, config=config)


@dataclass
class _Prepared:
    """One checked entry of :meth:`Registry.register_all`; ``fields`` are its row's columns
    (the artifact's are added once its file is staged)."""

    name: str
    source: Path
    config: ModelConfig
    config_key: str
    fields: dict[str, Any]
    inherit_parent: bool
    label: str  # names the file in messages
    source_sha256: str = ""  # with skip_registered: the source file's hash, before staging


def _prepare(entry: NewVersion) -> _Prepared:
    """Validate an entry as :meth:`Registry.register` does, before any file is copied."""
    if not isinstance(entry, NewVersion):
        raise InvalidConfigError(f"entries must be NewVersion records; was {entry!r}")
    validate_name(entry.name)
    cfg = _as_config(entry.config)
    fields: dict[str, Any] = {
        "metrics": check_metrics(entry.metrics or {}),
        "params": check_params(entry.params or {}),
        "tags": check_tags(entry.tags or {}),
        "description": _check_description(entry.description),
    }
    lin = _as_lineage(entry.lineage)
    source = Path(entry.path)
    if not source.is_file():
        raise ModelLoadError(f"model file {str(source)!r} does not exist or is not a file")
    fields.update(
        config=cfg.to_dict(),
        data_fingerprint=lin.data_fingerprint,
        code_revision=lin.code_revision,
        parent=lin.parent,
        transform_spec=lin.transform_spec,
        created_by=lin.created_by or _user(),
    )
    return _Prepared(
        entry.name,
        source,
        cfg,
        _config_key(fields["config"]) or "",
        fields,
        entry.inherit_parent,
        label=entry.label if entry.label is not None else str(source),
    )


def _registered_keys(conn: sa.Connection, name: str) -> dict[tuple[str, str], int]:
    """(sha256, config key) -> version id, for the versions of ``name`` (newest wins). A
    stored config this engine refuses matches nothing: a new, valid one never equals it; nor
    does a version whose number cannot be read (it could never be loaded by number)."""
    rows = conn.execute(
        sa.select(versions.c.id, versions.c.version, versions.c.artifact_sha256, versions.c.config)
        .join(models, models.c.id == versions.c.model_id)
        .where(models.c.name == name)
        .order_by(versions.c.version)
    )
    out: dict[tuple[str, str], int] = {}
    for row in rows:
        key = _config_key(row.config)
        if key is not None and _read_version(row.version, row.id)[0] is not None:
            out[(row.artifact_sha256, key)] = row.id
    return out


def _config_key(stored: Any) -> str | None:
    """A config's canonical JSON (defaults filled in), or None if this engine refuses it."""
    if isinstance(stored, UnreadableJSON):
        return None
    try:
        return json.dumps(ModelConfig.from_dict(stored).to_dict(), sort_keys=True)
    except (TypeError, ValueError):
        return None


def _file_sha256(path: Path) -> str:
    try:
        return fingerprint_file(path).removeprefix("sha256:")
    except OSError as exc:
        raise ModelLoadError(f"cannot read model file {str(path)!r}: {exc.strerror}") from exc


def _describe(prepared: Sequence[_Prepared]) -> str:
    names = sorted({item.name for item in prepared})
    if len(prepared) == 1:
        return repr(names[0])
    shown = ", ".join(repr(n) for n in names[:5]) + (", ..." if len(names) > 5 else "")
    return f"{len(prepared)} versions of {shown}"


def _new_id(result: sa.CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None  # single-row INSERT into a table with an integer primary key
    return int(key[0])


def _touch(conn: sa.Connection, model_id: int) -> None:
    """A write to a model's versions or aliases: its ``updated_at`` (what ``list`` shows)."""
    conn.execute(models.update().where(models.c.id == model_id).values(updated_at=_now()))


def validate_new_alias(alias: str) -> str:
    """Return ``alias`` unchanged if it may be set; raise InvalidModelNameError otherwise.

    An alias being set follows the name grammar and does not read as something else:
    ``latest`` (a bare model name already means its latest ready version, which the alias
    would not follow) or a number (``m@3`` reads as version 3, which is ``m:3``). Aliases
    set before this rule still resolve and can be removed."""
    validate_name(alias, "alias")
    if alias == "latest":
        raise InvalidModelNameError(
            "alias 'latest' is reserved: a bare model name (m) already means its latest ready "
            "version, and an alias would not follow new versions; pick another name"
        )
    if alias.isdigit():
        raise InvalidModelNameError(
            f"alias {alias!r} is a number, which reads as a version: name the version as "
            f"NAME:{alias}, or pick an alias that is not a number"
        )
    return alias


def _put_alias(conn: sa.Connection, model_id: int, alias: str, version_id: int, now: str) -> None:
    conn.execute(aliases.delete().where(aliases.c.model_id == model_id, aliases.c.alias == alias))
    conn.execute(
        aliases.insert().values(
            model_id=model_id, alias=alias, version_id=version_id, updated_at=now
        )
    )


def _aliases_by_version_id(conn: sa.Connection, model_id: int) -> dict[int, tuple[str, ...]]:
    out: dict[int, tuple[str, ...]] = {}
    for a in conn.execute(
        sa.select(aliases.c.alias, aliases.c.version_id)
        .where(aliases.c.model_id == model_id)
        .order_by(aliases.c.alias)
    ):
        out[a.version_id] = out.get(a.version_id, ()) + (a.alias,)
    return out


def _record(name: str, row: sa.Row[Any], alias_names: tuple[str, ...]) -> ModelVersion:
    """The row as a record. Never raises on a stored value: what cannot be read is named in
    the record (``*_error``, ``read_errors``), so one bad row cannot hide the others."""
    version, version_error = _read_version(row.version, row.id)
    size_bytes, size_error = read_integer(row.artifact_size, "versions.artifact_size", 0)
    metrics, metrics_error = read_mapping(row.metrics, "metrics", check_metrics)
    params, params_error = read_mapping(row.params, "params", check_params)
    tags, tags_error = read_mapping(row.tags, "tags", check_tags)
    created_at, created_at_error = read_timestamp(row.created_at, "created_at")
    read_errors = {
        what: error
        for what, error in (
            ("version", version_error),
            ("size_bytes", size_error),
            ("metrics", metrics_error),
            ("params", params_error),
            ("tags", tags_error),
            ("created_at", created_at_error),
        )
        if error is not None
    }
    return ModelVersion(
        name=name,
        version=version,
        status=row.status,
        sha256=row.artifact_sha256,
        size_bytes=size_bytes,
        stored_signature=row.signature,
        stored_config=row.config,
        metrics=metrics,
        params=params,
        tags=tags,
        description=row.description,
        stored_lineage={
            "data_fingerprint": row.data_fingerprint,
            "code_revision": row.code_revision,
            "parent": row.parent,
            "transform_spec": row.transform_spec,
            "created_by": row.created_by,
        },
        created_at=created_at,
        aliases=alias_names,
        read_errors=read_errors,
    )


def _read_version(stored: Any, row_id: int) -> tuple[int | None, str | None]:
    """A stored ``versions.version``, or ``(None, why)``; ``why`` names the row's id, the only
    handle left on a version whose number cannot be read."""
    version, error = read_integer(stored, "versions.version", 1, MAX_VERSION)
    return version, None if error is None else f"{error} (versions.id {row_id})"


def _dangling_alias(version_id: Any) -> str:
    """Why an alias row's ``version_id`` finds no version of the alias's model."""
    _, error = read_integer(version_id, "aliases.version_id", 1)
    return error or f"aliases.version_id {version_id} names no version of this model"


def _newest(conn: sa.Connection, model_id: int, *, ready_only: bool) -> tuple[int, int] | None:
    """(row id, number) of the model's highest version whose number can be read, or None.
    Versions whose number cannot be read are skipped: SQLite orders them among (a REAL) or
    above (text, a BLOB) the integers, so SQL's MAX or ORDER BY alone cannot be trusted."""
    query = sa.select(versions.c.id, versions.c.version).where(versions.c.model_id == model_id)
    if ready_only:
        query = query.where(versions.c.status == "ready")
    for v in conn.execute(query.order_by(versions.c.version.desc())).all():
        number, _ = _read_version(v.version, v.id)
        if number is not None:
            return int(v.id), number
    return None


def _parent_to_follow(record: ModelVersion) -> str | None:
    """``record``'s lineage parent, or None. When this engine refuses the stored lineage, the
    stored parent still counts if it alone is valid (another field may be the refused one)."""
    if record.lineage_error is None:
        return record.lineage.parent
    try:
        return Lineage(parent=record.stored_lineage.get("parent")).parent
    except (TypeError, ValueError):
        return None


def _as_config(config: ModelConfig | Mapping[str, Any] | None) -> ModelConfig:
    if config is None:
        return ModelConfig()
    if isinstance(config, ModelConfig):
        return config
    if isinstance(config, Mapping):
        return ModelConfig.from_dict(dict(config))
    raise InvalidConfigError(f"config must be a ModelConfig or a mapping; was {config!r}")


def _as_lineage(lineage: Lineage | Mapping[str, Any] | None) -> Lineage:
    if lineage is None:
        return Lineage()
    if isinstance(lineage, Lineage):
        return lineage
    if isinstance(lineage, Mapping):
        return Lineage.from_dict(lineage)
    raise InvalidConfigError(f"lineage must be a Lineage or a mapping; was {lineage!r}")


def _check_description(description: str | None) -> str:
    if description is None:
        return ""
    if not isinstance(description, str) or len(description) > _MAX_DESCRIPTION:
        raise InvalidConfigError(
            f"description must be a string of at most {_MAX_DESCRIPTION} "
            f"characters; was {str(description)[:80]!r}"
        )
    return description


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None  # no passwd entry and no USER variable (some containers)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")
