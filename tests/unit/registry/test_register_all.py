"""Registering many versions in one transaction (``Registry.register_all``, and
``import_repository`` on top of it): all of them or none, on SQLite and PostgreSQL.

The database failures are real ones, raised by the database itself: a trigger that fails the
Nth insert (a constraint error, a non-constraint error, a full disk, a connection killed by
the server), or a deferred constraint that fails the COMMIT.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.errors import ConflictError, RegistryError
from engine.registry import NewVersion, Registry
from engine.repository import import_repository

MODELS = ["aaa", "bbb", "ccc", "ddd", "eee"]

RawSql = Callable[..., None]


def _fail_insert(raw_sql: RawSql, backend: str, nth: int, kind: str) -> None:
    """Make the ``nth`` row inserted into ``versions`` (counting rows already there) fail."""
    if backend == "sqlite":
        # RAISE(ABORT) is a constraint error (IntegrityError); json() of bad text is not.
        action = {
            "constraint": "SELECT RAISE(ABORT, 'injected failure')",
            "error": "SELECT json('injected failure')",
        }[kind]
        raw_sql(
            f"CREATE TRIGGER fail_insert BEFORE INSERT ON versions "
            f"WHEN (SELECT count(*) FROM versions) >= {nth - 1} BEGIN {action}; END"
        )
        return
    action = {
        "constraint": "RAISE EXCEPTION 'injected failure' USING ERRCODE = 'unique_violation'",
        "error": "RAISE EXCEPTION 'injected failure' USING ERRCODE = 'disk_full'",
        # The server ends this very session mid-transaction: a lost connection.
        "disconnect": "PERFORM pg_terminate_backend(pg_backend_pid())",
    }[kind]
    raw_sql(
        f"""CREATE FUNCTION fail_insert() RETURNS trigger AS $$
        BEGIN
            IF (SELECT count(*) FROM versions) >= {nth - 1} THEN {action}; END IF;
            RETURN NEW;
        END $$ LANGUAGE plpgsql""",
        "CREATE TRIGGER fail_insert BEFORE INSERT ON versions "
        "FOR EACH ROW EXECUTE FUNCTION fail_insert()",
    )


def _remove_failure(raw_sql: RawSql, backend: str) -> None:
    if backend == "sqlite":
        raw_sql("DROP TRIGGER fail_insert")
    else:
        raw_sql("DROP TRIGGER fail_insert ON versions", "DROP FUNCTION fail_insert")


def _repository(tmp_path: Path, onnx_model) -> Path:
    """Five models, each with a distinct file (so five new blobs)."""
    repo = tmp_path / "repo"
    for i, name in enumerate(MODELS):
        (repo / name / "1").mkdir(parents=True)
        shutil.copy(onnx_model(bias=10.0 + i), repo / name / "1" / "model.onnx")
    return repo


def _blobs(home: Path) -> set[str]:
    return {p.name for p in (home / "artifacts" / "sha256").glob("??/*")}


def _temp_files(home: Path) -> list[Path]:
    return list((home / "artifacts" / "tmp").glob("*.part"))


def _snapshot(registry: Registry) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for summary in registry.list():
        row = summary.to_dict()
        row["versions"] = [v.to_dict() for v in registry.versions(summary.name)]
        out.append(row)
    return out


@pytest.fixture
def existing(registry: Registry, onnx_model) -> None:
    """A model registered before the import: it must come out untouched."""
    registry.register("aaa", onnx_model(bias=1.0), alias="prod")


@pytest.mark.parametrize(
    ("backend", "kind"),
    [
        ("sqlite", "constraint"),
        ("sqlite", "error"),
        ("postgresql", "constraint"),
        ("postgresql", "error"),
        ("postgresql", "disconnect"),
    ],
)
def test_a_database_failure_mid_import_registers_nothing(
    registry: Registry,
    existing: None,
    home: Path,
    raw_sql: RawSql,
    backend: str,
    kind: str,
    onnx_model,
    tmp_path: Path,
) -> None:
    repo = _repository(tmp_path, onnx_model)
    before, blobs_before = _snapshot(registry), _blobs(home)
    _fail_insert(raw_sql, backend, nth=len(blobs_before) + 3, kind=kind)  # the import's 3rd

    with pytest.raises(RegistryError) as info:
        import_repository(registry, repo, alias="prod")
    if kind == "constraint":
        assert "could not register 5 versions of 'aaa', 'bbb', 'ccc', 'ddd', 'eee'" in str(
            info.value
        )
    # The database's own words reach the message (SQLite's json() says "malformed JSON").
    expected = "malformed JSON" if (backend, kind) == ("sqlite", "error") else "injected failure"
    if kind == "disconnect":
        assert "terminating connection" in str(info.value)
    else:
        assert expected in str(info.value)

    # Nothing of the import is visible: rows, version numbers, aliases, blobs, temp files.
    assert _snapshot(registry) == before
    assert registry.get("aaa@prod").version == 1
    assert _blobs(home) == blobs_before
    assert _temp_files(home) == []

    # The registry still works, on the same instance, and numbers continue without a gap.
    _remove_failure(raw_sql, backend)
    results = import_repository(registry, repo, alias="prod")
    assert [(r.name, r.registered_version, r.skipped) for r in results] == [
        ("aaa", 2, False),
        ("bbb", 1, False),
        ("ccc", 1, False),
        ("ddd", 1, False),
        ("eee", 1, False),
    ]
    assert {s.name: s.aliases for s in registry.list()} == {n: {"prod": 1} for n in MODELS} | {
        "aaa": {"prod": 2}
    }
    for name in MODELS:
        registry.resolve(f"{name}@prod")  # every blob is there and verifies
    assert len(_blobs(home)) == len(blobs_before) + 5


def _fail_commit(raw_sql: RawSql, backend: str) -> None:
    """Let every insert pass but make the COMMIT fail (a deferred constraint)."""
    if backend == "sqlite":
        raw_sql(
            "CREATE TABLE trap_parent (id INTEGER PRIMARY KEY)",
            "CREATE TABLE trap (id INTEGER REFERENCES trap_parent(id) "
            "DEFERRABLE INITIALLY DEFERRED)",
            "CREATE TRIGGER fail_commit AFTER INSERT ON versions "
            "BEGIN INSERT INTO trap VALUES (-1); END",
        )
        return
    raw_sql(
        """CREATE FUNCTION fail_commit() RETURNS trigger AS $$
        BEGIN RAISE EXCEPTION 'injected failure' USING ERRCODE = 'disk_full'; END
        $$ LANGUAGE plpgsql""",
        "CREATE CONSTRAINT TRIGGER fail_commit AFTER INSERT ON versions "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fail_commit()",
    )


def test_a_failed_commit_leaves_only_unreferenced_blobs_that_gc_reclaims(
    registry: Registry,
    existing: None,
    home: Path,
    raw_sql: RawSql,
    backend: str,
    onnx_model,
    tmp_path: Path,
) -> None:
    repo = _repository(tmp_path, onnx_model)
    before, blobs_before = _snapshot(registry), _blobs(home)
    _fail_commit(raw_sql, backend)
    with pytest.raises(RegistryError):
        import_repository(registry, repo, alias="prod")
    assert _snapshot(registry) == before
    assert _temp_files(home) == []
    # The blobs were durable before the COMMIT failed; no version references them.
    leftovers = _blobs(home) - blobs_before
    assert len(leftovers) == 5
    assert sorted(registry.gc(min_age_s=0)) == sorted(leftovers)
    assert _blobs(home) == blobs_before
    registry.resolve("aaa@prod")


def test_register_all_is_one_transaction_in_order(
    registry: Registry, home: Path, onnx_model
) -> None:
    a, b = onnx_model(bias=1.0), onnx_model(bias=2.0)
    out = registry.register_all(
        [
            NewVersion("m", a),
            NewVersion("m", b, lineage={"parent": "m:1"}),  # the parent is in the same call
            NewVersion("n", a, tags={"k": "v"}),
        ],
        alias="prod",
    )
    assert [(r.ref, skipped) for r, skipped in out] == [
        ("m:1", False),
        ("m:2", False),
        ("n:1", False),
    ]
    assert out[1][0].aliases == ("prod",) and out[1][0].lineage.parent == "m:1"
    assert registry.get("n@prod").tags == {"k": "v"}
    assert len(_blobs(home)) == 2  # a's bytes are stored once
    again = registry.register_all([NewVersion("m", b), NewVersion("m", a)], skip_registered=True)
    assert [(r.ref, skipped) for r, skipped in again] == [("m:2", True), ("m:1", True)]
    assert registry.register_all([]) == []


def test_a_bad_entry_registers_nothing_and_leaves_no_file(
    registry: Registry, home: Path, onnx_model, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not onnx")
    with pytest.raises(Exception, match="broken.onnx"):
        registry.register_all([NewVersion("m", onnx_model(bias=1.0)), NewVersion("m", broken)])
    assert registry.list() == []
    assert _blobs(home) == set() and _temp_files(home) == []


def test_alias_on_an_archived_match_refuses_the_whole_import(
    registry: Registry, home: Path, onnx_model, tmp_path: Path
) -> None:
    repo = _repository(tmp_path, onnx_model)
    import_repository(registry, repo)
    registry.archive("ccc", 1)
    shutil.copy(onnx_model(bias=99.0), repo / "aaa" / "1" / "model.onnx")  # new bytes for aaa
    with pytest.raises(ConflictError, match="cannot point alias 'prod' at ccc:1: it is archived"):
        import_repository(registry, repo, alias="prod")
    assert [v.version for v in registry.versions("aaa")] == [1]
    assert all(not s.aliases for s in registry.list())
    assert _temp_files(home) == []


def test_a_version_deleted_during_the_import_fails_it_cleanly(
    registry: Registry, home: Path, onnx_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    (repo / "m" / "1").mkdir(parents=True)
    shutil.copy(onnx_model(bias=1.0), repo / "m" / "1" / "model.onnx")
    (repo / "m" / "config.pbtxt").write_text("version_policy { all { } }\n")
    import_repository(registry, repo)  # m:1
    (repo / "m" / "2").mkdir()
    shutil.copy(onnx_model(bias=2.0), repo / "m" / "2" / "model.onnx")

    # Another process deletes m:1 after the import counted it as registered, before its
    # transaction: the import must not silently drop repository version 1.
    stage = registry._artifacts.stage

    def stage_while_deleting(source: Path):  # type: ignore[no-untyped-def]
        registry.delete("m", 1)
        return stage(source)

    monkeypatch.setattr(registry._artifacts, "stage", stage_while_deleting)
    with pytest.raises(ConflictError, match="was deleted while this import ran"):
        import_repository(registry, repo)
    monkeypatch.undo()
    assert registry.versions("m") == []  # 2 was not registered either
    assert _temp_files(home) == []
    assert [r.registered_version for r in import_repository(registry, repo)] == [2, 3]
