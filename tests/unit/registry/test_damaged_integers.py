"""Integer columns that hold something else: a row edited by hand or by another tool.

SQLite keeps any value in an INTEGER column (type affinity turns '3' into 3, but keeps 'abc',
'' and 3.5 as they are); PostgreSQL refuses them, so every test here runs on SQLite only.

One damaged row must not break reading the others: the damaged value is named (field and
stored value) wherever its version or model is shown, and what really needs it (loading the
version, numbering a new version) fails naming the model, the version, the field and the
value. No write repairs or overwrites a damaged value.
"""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.cli import main
from engine.errors import ModelLoadError, ModelNotFoundError, RegistryError
from engine.registry import Registry
from engine.repository import import_repository
from server.control import ServingControl
from server.registry_serving import RegistryServing

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])

RawSql = Callable[..., None]

# (SQL literal, how the error shows the stored value): text, empty text, a REAL, a BLOB.
DAMAGED = [("'abc'", "'abc'"), ("''", "''"), ("3.5", "3.5"), ("x'00'", "b'\\x00'")]
DAMAGED_IDS = ["text", "empty", "real", "blob"]


def _in_m(version: int) -> str:
    return f"version = {version} AND model_id = (SELECT id FROM models WHERE name = 'm')"


def _raw(home: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(home / "registry.db") as conn:
        rows = conn.execute(sql).fetchall()
    conn.close()
    return rows


@pytest.fixture
def registry_of_three(registry: Registry, onnx_model) -> Registry:
    """m:1, m:2 (@production, version_policy all), m:3 (parent m:2); other:1 (@production,
    parent m:2). versions.id of m:2 is 2."""
    registry.register("m", onnx_model(bias=1.0))
    registry.register("m", onnx_model(bias=2.0), alias="production",
                      tags={"version_policy": "all"})
    registry.register("m", onnx_model(bias=3.0), lineage={"parent": "m:2"})
    registry.register("other", onnx_model(bias=4.0), alias="production",
                      lineage={"parent": "m:2"})
    return registry


def _cli(home: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["models", *args, "--home", str(home)])
    out, err = capsys.readouterr()
    return code, out, err


# ---- versions.artifact_size --------------------------------------------------------------


@pytest.mark.parametrize(("stored", "shown"), DAMAGED, ids=DAMAGED_IDS)
def test_a_size_that_is_no_integer_is_named_and_refuses_only_that_load(
    registry_of_three: Registry, raw_sql: RawSql, stored: str, shown: str
) -> None:
    registry = registry_of_three
    raw_sql(f"UPDATE versions SET artifact_size = {stored} WHERE {_in_m(2)}")
    error = f"versions.artifact_size holds {shown}, not an integer"
    assert [(s.name, s.latest_version, s.version_count, s.aliases, s.read_errors)
            for s in registry.list()] == [
        ("m", 3, 3, {"production": 2}, {}),
        ("other", 1, 1, {"production": 1}, {}),
    ]
    m1, m2, m3 = registry.versions("m")
    assert (m2.version, m2.size_bytes, dict(m2.read_errors)) == (2, None, {"size_bytes": error})
    assert (m1.read_errors, m3.read_errors) == ({}, {})
    for ref in ("m:2", "m@production"):
        record = registry.get(ref)
        assert (record.size_bytes, dict(record.read_errors)) == (None, {"size_bytes": error})
        data = json.loads(json.dumps(record.to_dict()))
        assert (data["size_bytes"], data["read_errors"]) == (None, {"size_bytes": error})
    assert [r.ref for r in registry.lineage("other:1")] == ["other:1", "m:2"]
    with pytest.raises(ModelLoadError) as info:
        registry.resolve("m@production")
    assert str(info.value).startswith(f"model 'm' version 2 cannot be loaded: {error}")
    assert "is corrupt" not in str(info.value)  # the artifact is fine; its record is not
    for ref in ("m:1", "m:3", "other:1"):
        assert registry.resolve(ref).path.is_file()


# ---- versions.version ------------------------------------------------------------------------


@pytest.mark.parametrize(("stored", "shown"), [*DAMAGED, ("0", "0"), ("-7", "-7")],
                         ids=[*DAMAGED_IDS, "zero", "negative"])
def test_a_version_number_that_is_no_integer_is_listed_as_damaged(
    registry_of_three: Registry, raw_sql: RawSql, stored: str, shown: str
) -> None:
    """m:2's own number is damaged: it cannot be addressed by number, is never the latest,
    is listed (with its row id, the only handle left) and shown through its alias."""
    registry = registry_of_three
    raw_sql(f"UPDATE versions SET version = {stored} WHERE {_in_m(2)}")
    wanted = "an integer in [1, 2147483647]" if stored in ("0", "-7") else "an integer"
    error = f"versions.version holds {shown}, not {wanted} (versions.id 2)"
    m, other = registry.list()
    assert (m.name, m.latest_version, m.version_count, m.aliases) == (
        "m", 3, 3, {"production": None})
    assert m.read_errors == {
        "versions": error,
        "alias production": f"points at a version whose number cannot be read: {error}",
    }
    assert (other.aliases, other.read_errors) == ({"production": 1}, {})
    json.dumps([s.to_dict() for s in registry.list()])

    records = registry.versions("m")
    assert sorted(r.version for r in records if r.version is not None) == [1, 3]
    (damaged,) = [r for r in records if r.version is None]
    assert (damaged.ref, damaged.aliases, dict(damaged.read_errors)) == (
        "m:?", ("production",), {"version": error})
    assert json.loads(json.dumps(damaged.to_dict()))["version"] is None

    assert registry.get("m").version == 3  # text sorts above every integer in SQLite
    shown_record = registry.get("m@production")
    assert (shown_record.version, dict(shown_record.read_errors)) == (None, {"version": error})
    with pytest.raises(ModelNotFoundError) as not_found:
        registry.get("m:2")
    assert str(not_found.value) == (
        f"model 'm' has no version 2 (1 version of 'm' has a number that cannot be read: "
        f"{error})")
    with pytest.raises(ModelLoadError) as info:
        registry.resolve("m@production")
    assert str(info.value).startswith(f"model 'm' version ? cannot be loaded: {error}")
    # other:1's parent m:2 cannot be found by number: the chain ends there.
    assert [r.ref for r in registry.lineage("other:1")] == ["other:1"]
    assert [r.ref for r in registry.lineage("m@production")] == ["m:?"]
    assert registry.resolve("m:3").version.version == 3


def test_writes_beside_a_damaged_version_number_never_touch_it(
    registry_of_three: Registry, raw_sql: RawSql, onnx_model, home: Path
) -> None:
    registry = registry_of_three
    raw_sql(f"UPDATE versions SET version = 'abc' WHERE {_in_m(2)}")
    # The inherited parent is the newest version that has a number, never 'm:abc'.
    record = registry.register("m", onnx_model(bias=5.0), inherit_parent=True)
    assert (record.version, record.lineage.parent) == (4, "m:3")
    assert registry.set_alias("m", "staging", 1).version == 1
    registry.remove_alias("m", "staging")
    assert registry.archive("m", 1).status == "archived"
    m1_blob = registry.get("m:1").sha256
    registry.delete("m", 1)
    with pytest.raises(ModelNotFoundError, match="^model 'm' has no version 2 "):
        registry.set_alias("m", "production", 2)
    assert _raw(home, "SELECT version, typeof(version) FROM versions WHERE id = 2") == [
        ("abc", "text")]
    assert registry.gc(min_age_s=0) == [m1_blob]  # the damaged row's blob is still referenced


def test_an_import_never_counts_a_version_without_a_number_as_registered(
    registry_of_three: Registry, raw_sql: RawSql, onnx_model, tmp_path: Path
) -> None:
    """The repository holds m:2's bytes and config, but m:2's number is damaged: the import
    registers a version that can be loaded, instead of answering with the damaged one."""
    raw_sql(f"UPDATE versions SET version = 'abc' WHERE {_in_m(2)}")
    repo = tmp_path / "repo"
    (repo / "m" / "1").mkdir(parents=True)
    shutil.copy(onnx_model(bias=2.0), repo / "m" / "1" / "model.onnx")
    results = import_repository(registry_of_three, repo)
    assert [(r.registered_version, r.skipped) for r in results] == [(4, False)]


# ---- models.last_version ----------------------------------------------------------------------


@pytest.mark.parametrize(("stored", "shown"), DAMAGED, ids=DAMAGED_IDS)
def test_a_damaged_last_version_refuses_to_number_a_new_version(
    registry_of_three: Registry, raw_sql: RawSql, onnx_model, home: Path, stored: str, shown: str
) -> None:
    registry = registry_of_three
    raw_sql(f"UPDATE models SET last_version = {stored} WHERE name = 'm'")
    with pytest.raises(RegistryError) as info:
        registry.register("m", onnx_model(bias=5.0))
    assert str(info.value).startswith(
        f"cannot number a new version of 'm': models.last_version holds {shown}, not an "
        f"integer; ")
    assert "at least 3" in str(info.value)  # what a repair must respect
    # Nothing was written, and the damaged value is left as it was.
    assert _raw(home, "SELECT count(*) FROM versions") == [(4,)]
    before = _raw(home, "SELECT typeof(last_version) FROM models WHERE name = 'm'")
    assert before != [("integer",)]
    # Every read still works, and so do the other models' writes.
    assert [s.latest_version for s in registry.list()] == [3, 1]
    assert registry.register("other", onnx_model(bias=6.0)).version == 2


# ---- aliases.version_id, schema_info.version ---------------------------------------------


def test_an_alias_whose_version_reference_is_damaged(
    registry_of_three: Registry, raw_sql: RawSql
) -> None:
    registry = registry_of_three
    raw_sql("UPDATE aliases SET version_id = 'abc' WHERE alias = 'production' AND model_id = "
            "(SELECT id FROM models WHERE name = 'm')")
    error = "aliases.version_id holds 'abc', not an integer"
    m, other = registry.list()
    assert (m.aliases, m.read_errors) == ({"production": None}, {"alias production": error})
    assert other.aliases == {"production": 1}
    with pytest.raises(ModelNotFoundError) as info:
        registry.get("m@production")
    assert str(info.value) == f"model 'm' alias 'production' cannot be followed: {error}"
    assert [r.aliases for r in registry.versions("m")] == [(), (), ()]


def test_a_damaged_schema_version_is_refused_with_a_reason(
    registry_of_three: Registry, raw_sql: RawSql, home: Path
) -> None:
    raw_sql("UPDATE schema_info SET version = 'abc'")
    with pytest.raises(RegistryError) as info:
        Registry(home=home)
    assert "schema_info.version holds 'abc', not an integer" in str(info.value)


# ---- engine models ... ------------------------------------------------------------------------


def test_the_models_commands_name_a_damaged_version(
    registry_of_three: Registry, raw_sql: RawSql, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw_sql(f"UPDATE versions SET version = x'00' WHERE {_in_m(2)}",
            f"UPDATE versions SET artifact_size = 'abc' WHERE {_in_m(3)}")
    version_error = "versions.version holds b'\\x00', not an integer (versions.id 2)"
    size_error = "versions.artifact_size holds 'abc', not an integer"

    code, out, _ = _cli(home, capsys, "list")
    assert code == 0
    assert out.splitlines()[1].split()[:4] == ["m", "3", "3", "production=?"]
    assert f"m: versions: {version_error}" in out

    code, out, _ = _cli(home, capsys, "versions", "m")
    assert code == 0
    header, *rows = out.splitlines()
    at, size_at = header.index("REFUSED"), header.index("SIZE")
    table = [r for r in rows if r[:1] in ("1", "3", "?")]
    assert [(r.split()[0], r[size_at:].split()[0], r[at:].split()[0]) for r in table] == [
        ("1", "110", "-"), ("3", "?", "size_bytes"), ("?", "110", "version")]
    assert f"m:?: {version_error}" in out and f"m:3: {size_error}" in out

    code, out, _ = _cli(home, capsys, "show", "m@production")
    assert code == 0
    assert f"version:          unreadable: {version_error}" in out
    code, out, _ = _cli(home, capsys, "show", "m:3")
    assert code == 0
    assert f"size_bytes:       unreadable: {size_error}" in out

    for args in (["list"], ["versions", "m"], ["show", "m@production"], ["lineage", "m:3"]):
        code, out, err = _cli(home, capsys, *args, "--json")
        assert code == 0, err
        json.loads(out)

    code, _, err = _cli(home, capsys, "show", "m:2")
    assert code == 1
    assert "model 'm' has no version 2 (1 version of 'm' has a number that cannot be read" in err


# ---- engine serve --registry's watcher ---------------------------------------------------------


def test_the_watcher_skips_a_damaged_version_number_and_serves_the_others(
    registry_of_three: Registry, raw_sql: RawSql
) -> None:
    """m@production is m:2 with version_policy all; m:1's number is damaged."""
    raw_sql(f"UPDATE versions SET version = 'abc' WHERE {_in_m(1)}")
    watcher = RegistryServing(registry_of_three, ServingControl())
    desired = watcher._desired()  # sorted the versions: raised TypeError
    assert {name: (d.target, sorted(d.versions)) for name, d in desired.items()} == {
        "m": (2, [2, 3]),
        "other": (1, [1]),
    }


def test_the_watcher_keeps_serving_when_the_alias_target_cannot_be_read(
    registry_of_three: Registry, raw_sql: RawSql, caplog: pytest.LogCaptureFixture
) -> None:
    raw_sql(f"UPDATE versions SET version = 'abc' WHERE {_in_m(2)}")
    watcher = RegistryServing(registry_of_three, ServingControl())
    error = "versions.version holds 'abc', not an integer (versions.id 2)"
    with caplog.at_level(logging.WARNING, logger="engine.server"):
        for _ in range(3):  # three polls, nothing served yet: m is left out, other is wanted
            assert sorted(watcher._desired()) == ["other"]
        watcher._defaults["m"] = 2  # as if m:2 was served before its row was damaged
        desired = watcher._desired()
    # What serves stays: the same target, so sync() neither loads nor retires anything of m.
    assert (desired["m"].target, desired["m"].versions) == (2, frozenset({2}))
    warnings = [r.getMessage() for r in caplog.records if "cannot be read" in r.getMessage()]
    prefix = ("m@production cannot be followed: points at a version whose number cannot be "
              f"read: {error}; ")
    assert warnings == [prefix + "nothing of it is served", prefix + "what was serving stays"]


def test_the_watcher_names_a_damaged_size_when_the_load_fails(
    registry_of_three: Registry, raw_sql: RawSql, caplog: pytest.LogCaptureFixture
) -> None:
    raw_sql(f"UPDATE versions SET artifact_size = 'abc' WHERE {_in_m(2)}")
    watcher = RegistryServing(registry_of_three, ServingControl())
    with caplog.at_level(logging.ERROR, logger="engine.server"):
        assert watcher._load("m", 2) is False  # refused before any model is loaded
    assert watcher.metrics_snapshot()[0] == {("m", 2): 1}
    assert ("model m:2 failed to load; what was serving stays (retry in 60s): model 'm' version "
            "2 cannot be loaded: versions.artifact_size holds 'abc', not an integer") in caplog.text


def test_lineage_says_why_it_stops_at_a_parent_whose_number_is_damaged(
    registry_of_three: Registry, raw_sql: RawSql, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """m:3's and other:1's parent m:2 has a damaged number: the chain is printed up to the
    child, then why it goes no further (the column and the stored value)."""
    registry = registry_of_three
    raw_sql(f"UPDATE versions SET version = 'abc' WHERE {_in_m(2)}")
    why = ("its parent m:2 cannot be found: model 'm' has no version 2 (1 version of 'm' has a "
           "number that cannot be read: versions.version holds 'abc', not an integer "
           "(versions.id 2))")
    code, out, _ = _cli(home, capsys, "lineage", "m:3")
    assert code == 0
    header, row, *notes = out.splitlines()
    assert (header.split()[:2], row.split()[:2]) == (["REF", "PARENT"], ["m:3", "m:2"])
    assert notes == [f"the chain stops at m:3: {why}"]
    code, out, _ = _cli(home, capsys, "lineage", "m:3", "--json")
    assert code == 0
    assert [(c["ref"], c["parent_error"]) for c in json.loads(out)] == [("m:3", why)]
    chain = registry.lineage_chain("other:1")
    assert ([r.ref for r in chain.versions], chain.stopped) == (["other:1"], why)
    assert [r.ref for r in registry.lineage("other:1")] == ["other:1"]  # unchanged

    # A chain that reaches its root says nothing more.
    chain = registry.lineage_chain("m:1")
    assert ([r.ref for r in chain.versions], chain.stopped) == (["m:1"], None)
    code, out, _ = _cli(home, capsys, "lineage", "m:1")
    assert len(out.splitlines()) == 2


# ---- versions.model_id, aliases.model_id ------------------------------------------------------


def test_rows_whose_model_id_names_no_model_are_reported_by_list(
    registry_of_three: Registry, raw_sql: RawSql, onnx_model, home: Path,
    capsys: pytest.CaptureFixture[str]
) -> None:
    """m:1's row names a model id that does not exist, m:3's holds text, other's alias a
    REAL: they belong to no model, so no model's listing shows them. list names them (row
    ids, column and stored value), in one query; nothing else breaks, and m@staging (m:3)
    is read alike everywhere: as an alias whose version is not m's."""
    registry = registry_of_three
    registry.set_alias("m", "staging", 3)
    assert _raw(home, "SELECT rowid FROM aliases WHERE model_id = "
                      "(SELECT id FROM models WHERE name = 'other')") == [(2,)]
    raw_sql(f"UPDATE versions SET model_id = 99 WHERE {_in_m(1)}",
            f"UPDATE versions SET model_id = 'abc' WHERE {_in_m(3)}",
            "UPDATE aliases SET model_id = 2.5 WHERE rowid = 2")
    errors = [
        ("versions.id 1", "versions.model_id 99 names no model"),
        ("versions.id 3", "versions.model_id holds 'abc', not an integer"),
        ("aliases rowid 2 (alias 'production')", "aliases.model_id holds 2.5, not an integer"),
    ]
    code, out, _ = _cli(home, capsys, "list")
    assert code == 0
    notes = out.splitlines()[3:]
    assert notes == [
        "m: alias staging: aliases.version_id 3 names no version of this model",
        ("3 rows belong to no model (their model_id was changed outside the engine; no other "
         "command shows them):"),
        *(f"  {where}: {error}" for where, error in errors),
    ]
    code, out, err = _cli(home, capsys, "list", "--json")
    assert code == 0
    assert [m["name"] for m in json.loads(out)] == ["m", "other"]
    assert err.startswith("warning: 3 rows belong to no model (their model_id was changed "
                          "outside the engine; no other command shows them): versions.id 1: ")
    assert [(o.where, o.error) for o in registry.orphans()] == errors
    assert [(s.name, s.version_count, s.aliases) for s in registry.list()] == [
        ("m", 1, {"production": 2, "staging": None}), ("other", 1, {})]
    dangling = "aliases.version_id 3 names no version of this model"
    assert registry.list()[0].read_errors == {"alias staging": dangling}

    # Nothing else trips over them.
    assert registry.register("m", onnx_model(bias=5.0)).version == 4
    assert [r.ref for r in registry.versions("m")] == ["m:2", "m:4"]
    # The alias row no longer belongs to other: other@production is gone everywhere alike.
    with pytest.raises(ModelNotFoundError, match="^model 'other' has no alias 'production'$"):
        registry.get("other@production")
    with pytest.raises(ModelNotFoundError) as info:
        registry.get("m@staging")
    assert str(info.value) == f"model 'm' alias 'staging' cannot be followed: {dangling}"
    assert registry.gc(min_age_s=0) == []  # the orphans' blobs are still referenced
    assert sorted(RegistryServing(registry, ServingControl())._desired()) == ["m"]


def test_no_orphan_rows_no_note(
    registry_of_three: Registry, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert registry_of_three.orphans() == []
    code, out, err = _cli(home, capsys, "list")
    assert (code, len(out.splitlines()), err) == (0, 3, "")


# ---- engine monitor report ----------------------------------------------------------------------


@pytest.mark.parametrize(("sql", "error"), [
    (f"UPDATE versions SET version = 'abc' WHERE {_in_m(2)}",
     ("points at a version whose number cannot be read: versions.version holds 'abc', not an "
      "integer (versions.id 2)")),
    ("UPDATE aliases SET version_id = 'abc' WHERE rowid = 1",
     "aliases.version_id holds 'abc', not an integer"),
], ids=["versions.version", "aliases.version_id"])
def test_the_monitor_report_refuses_an_alias_it_cannot_follow(
    registry_of_three: Registry, raw_sql: RawSql, home: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], sql: str, error: str
) -> None:
    """m@production is m:2: a report on it must never be one of version 'None' (the
    aliases.version_id case was already refused by Registry.get)."""
    raw_sql(sql)
    out = tmp_path / "report.html"
    code = main(["monitor", "report", "m@production", "--home", str(home), "--out", str(out)])
    stdout, err = capsys.readouterr()
    assert (code, stdout) == (1, "")
    assert err.startswith(f"error: model 'm' alias 'production' cannot be followed: {error}")
    assert "Traceback" not in err and not out.exists()
