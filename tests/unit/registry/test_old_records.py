"""Versions written by an older release, whose stored config the current bounds refuse.

The test registers normally, then edits the stored config row with plain SQL (sqlite3, or a
plain PostgreSQL connection), as a database from an older release would hold it. Reading
metadata keeps working and shows the stored values; only loading that version fails, naming
the model, the version, the field, the stored value and the allowed range.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.config import ModelConfig
from engine.errors import InvalidConfigError
from engine.registry import ModelVersion, Registry
from engine.repository import import_repository

RawSql = Callable[..., None]

INSTANCES_REFUSED = "instances must be an int <= 256; was 1000 (allowed: [1, 256])"


def store_config(raw_sql: RawSql, name: str, version: int, **changes: Any) -> None:
    """Overwrite the stored config row of ``name:version`` (registered with the default
    config) outside the engine, with ``changes`` applied."""
    text = json.dumps(ModelConfig().to_dict() | changes).replace("'", "''")
    raw_sql(
        f"UPDATE versions SET config = '{text}' WHERE version = {version} "
        f"AND model_id = (SELECT id FROM models WHERE name = '{name}')"
    )


@pytest.fixture
def old_row(registry: Registry, raw_sql: RawSql, onnx_model) -> Registry:
    """m:1 (@production), m:2 with instances = 1000 stored, other:1 (@production, parent m:2)."""
    registry.register("m", onnx_model(bias=1.0), alias="production")
    registry.register("m", onnx_model(bias=2.0))
    registry.register("other", onnx_model(bias=3.0), alias="production", lineage={"parent": "m:2"})
    store_config(raw_sql, "m", 2, instances=1000)
    return registry


def test_metadata_reads_show_the_stored_values(old_row: Registry) -> None:
    registry = old_row
    assert [(s.name, s.latest_version, s.version_count, s.aliases) for s in registry.list()] == [
        ("m", 2, 2, {"production": 1}),
        ("other", 1, 1, {"production": 1}),
    ]
    for ref in ("m", "m:2"):  # "m" is the latest ready version: the old one
        record = registry.get(ref)
        assert record.version == 2
        assert record.stored_config["instances"] == 1000
        assert record.config_error == INSTANCES_REFUSED
        data = record.to_dict()
        assert data["config"]["instances"] == 1000
        assert data["config_error"] == INSTANCES_REFUSED
    assert registry.get("m:1").config_error is None
    assert registry.get("m:1").to_dict()["config_error"] is None
    assert [v.version for v in registry.versions("m")] == [1, 2]
    assert [r.ref for r in registry.lineage("other:1")] == ["other:1", "m:2"]


def test_writes_to_metadata_keep_working(old_row: Registry, onnx_model) -> None:
    registry = old_row
    assert registry.set_alias("m", "staging", 2).aliases == ("staging",)
    assert registry.get("m@staging").stored_config["instances"] == 1000
    registry.remove_alias("m", "staging")
    assert registry.archive("m", 2).status == "archived"
    assert registry.register("m", onnx_model(bias=4.0)).version == 3
    registry.delete("m", 2)
    assert [v.version for v in registry.versions("m")] == [1, 3]


def test_only_loading_that_version_fails(old_row: Registry) -> None:
    registry = old_row
    message = (
        f"model 'm' version 2 cannot be loaded: its stored config is refused by this engine: "
        f"{INSTANCES_REFUSED} (written by another release; register the model file again with a "
        f"config this engine accepts)"
    )
    with pytest.raises(InvalidConfigError) as info:
        registry.resolve("m:2")
    assert str(info.value) == message
    with pytest.raises(InvalidConfigError) as info:
        registry.get("m").config  # noqa: B018 - the property validates
    assert str(info.value) == message
    assert registry.resolve("m:1").config.instances == 1
    assert registry.resolve("m@production").version.version == 1
    assert registry.resolve("other@production").path.is_file()


def test_an_explicit_config_replaces_a_refused_stored_one(
    old_row: Registry, home: Path, registry_url: str | None
) -> None:
    import numpy as np

    import engine

    def load(config: ModelConfig | None) -> engine.Model:
        return engine.load("m:2", config=config, registry_home=home, registry_url=registry_url)

    with pytest.raises(InvalidConfigError, match="^model 'm' version 2 cannot be loaded"):
        load(None)  # without an explicit config the stored one is needed: the clear error stays
    with load(ModelConfig(instances=2)) as model:
        assert (model.config.instances, model.version) == (2, 2)
        y = model.predict({"x": np.zeros((1, 4), np.float32)})["y"]
        assert y.tolist() == [[2.0] * 4]  # m:2's file (bias 2)
    resolved = old_row.resolve("m:2", config=ModelConfig(instances=2))
    assert (resolved.config.instances, resolved.version.version) == (2, 2)
    # The explicit config is still checked against the model file's signature.
    wrong = ModelConfig.from_dict({"inputs": [{"name": "z", "dtype": "float32", "shape": [-1, 4]}]})
    with pytest.raises(InvalidConfigError, match="'z'"):
        load(wrong)


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"intra_op_threads": 300}, "intra_op_threads must be an int <= 256; was 300"),
        ({"intra_op_threads": "4"}, "intra_op_threads must be an int in [0, 256]; was '4'"),
        (
            {"instances": 200, "intra_op_threads": 100},
            "instances x intra_op_threads must be <= 4096",
        ),
        ({"max_batch_size": 2**31}, "max_batch_size must be an int <= 2147483647; was 2147483648"),
        (
            {"default_timeout_us": 2 * 86_400_000_000},
            "default_timeout_us must be an int <= 86400000000; was 172800000000",
        ),
        ({"retired_field": 1}, "unknown model config fields ['retired_field']"),
    ],
)
def test_each_refusal_names_field_value_and_range(
    registry: Registry, raw_sql: RawSql, onnx_model, changes: dict[str, Any], fragment: str
) -> None:
    registry.register("m", onnx_model(bias=1.0))
    store_config(raw_sql, "m", 1, **changes)
    record = registry.get("m:1")
    assert record.config_error is not None and fragment in record.config_error
    with pytest.raises(InvalidConfigError, match="^model 'm' version 1 cannot be loaded") as info:
        registry.resolve("m:1")
    assert fragment in str(info.value)


def test_import_beside_an_old_row(old_row: Registry, onnx_model, tmp_path: Path) -> None:
    # m:2's bytes with a valid config: a new version, since the stored config differs.
    registry = old_row
    repo = tmp_path / "repo"
    (repo / "m" / "1").mkdir(parents=True)
    shutil.copy(onnx_model(bias=2.0), repo / "m" / "1" / "model.onnx")
    first = import_repository(registry, repo)
    assert [(r.registered_version, r.skipped) for r in first] == [(3, False)]
    assert registry.get("m:3").sha256 == registry.get("m:2").sha256
    again = import_repository(registry, repo)
    assert [(r.registered_version, r.skipped) for r in again] == [(3, True)]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_engine_load_of_that_version_fails_clearly(old_row: Registry, home: Path) -> None:
    import engine

    with pytest.raises(InvalidConfigError, match="model 'm' version 2 cannot be loaded") as info:
        engine.load("m:2", registry_home=home)
    assert INSTANCES_REFUSED in str(info.value)
    model = engine.load("m@production", registry_home=home)
    model.close()


# ---- stored signatures and lineage this engine refuses --------------------------------------
# A newer release may store an element type this one lacks, an older one may have allowed an
# alias as parent; either, or one row edited by hand, must not break reading the others.

BFLOAT16_REFUSED = "signature inputs[0] dtype: unknown element type 'bfloat16'"
ALIAS_PARENT_REFUSED = (
    "lineage parent must name an exact version as name:VERSION; was 'm@production'"
)
SPEC_REFUSED = "lineage transform_spec must be a mapping; was [1, 2]"


JSON_COLUMNS = {"signature", "transform_spec"}


def _sql_text(value: Any) -> str:
    return "NULL" if value is None else "'" + str(value).replace("'", "''") + "'"


def store_columns(raw_sql: RawSql, name: str, version: int, **columns: Any) -> None:
    """Overwrite columns of ``name:version``'s row outside the engine (JSON columns get the
    value's JSON text)."""
    values = ", ".join(
        f"{column} = {_sql_text(json.dumps(v) if column in JSON_COLUMNS else v)}"
        for column, v in columns.items()
    )
    raw_sql(
        f"UPDATE versions SET {values} WHERE version = {version} "
        f"AND model_id = (SELECT id FROM models WHERE name = '{name}')"
    )


def add_signature(dtype: str = "float32", **changes: Any) -> dict[str, Any]:
    """The signature the tiny Add model is registered with, with the input's dtype and any
    other input fields changed."""
    x = {"name": "x", "dtype": dtype, "shape": [-1, 4]} | changes
    return {"inputs": [x], "outputs": [{"name": "y", "dtype": "float32", "shape": [-1, 4]}]}


@pytest.fixture
def refused_rows(registry: Registry, raw_sql: RawSql, onnx_model) -> Registry:
    """m:1 (@production) valid; m:2 stores a bfloat16 input; m:3 (parent m:2) stores the parent
    'm@production'; other:1 (@production, parent m:3) stores a transform_spec that is a list."""
    registry.register("m", onnx_model(bias=1.0), alias="production")
    registry.register("m", onnx_model(bias=2.0))
    registry.register("m", onnx_model(bias=3.0), lineage={"parent": "m:2"})
    registry.register("other", onnx_model(bias=4.0), alias="production", lineage={"parent": "m:3"})
    store_columns(raw_sql, "m", 2, signature=add_signature("bfloat16"))
    store_columns(raw_sql, "m", 3, parent="m@production")
    store_columns(raw_sql, "other", 1, transform_spec=[1, 2])
    return registry


def test_reads_never_fail_on_a_refused_signature_or_lineage(refused_rows: Registry) -> None:
    registry = refused_rows
    assert [(s.name, s.latest_version, s.version_count) for s in registry.list()] == [
        ("m", 3, 3),
        ("other", 1, 1),
    ]
    m1, m2, m3 = registry.versions("m")
    assert (m1.signature_error, m1.lineage_error) == (None, None)
    assert m2.signature_error is not None and m2.signature_error.startswith(BFLOAT16_REFUSED)
    assert (m2.lineage_error, m2.lineage.parent) == (None, None)
    assert (m3.signature_error, m3.lineage_error) == (None, ALIAS_PARENT_REFUSED)
    assert [t.name for t in m3.inputs] == ["x"]
    assert registry.get("m").version == 3  # the latest: its lineage is the refused one
    assert registry.get("other@production").lineage_error == SPEC_REFUSED

    # The JSON form holds the stored values as they are, and says why they are refused.
    data = registry.get("m:2").to_dict()
    assert data["inputs"] == [{"name": "x", "dtype": "bfloat16", "shape": [-1, 4]}]
    assert data["outputs"] == [{"name": "y", "dtype": "float32", "shape": [-1, 4]}]
    assert data["signature_error"].startswith(BFLOAT16_REFUSED)
    assert data["lineage_error"] is None
    data = registry.get("m:3").to_dict()
    assert (data["lineage"]["parent"], data["lineage_error"]) == (
        "m@production",
        ALIAS_PARENT_REFUSED,
    )
    assert data["signature_error"] is None
    assert registry.get("m:1").to_dict()["signature_error"] is None

    # The chain follows other:1's parent (valid: only its transform_spec is refused) and ends
    # at m:3, whose stored parent is no exact version.
    assert [r.ref for r in registry.lineage("other:1")] == ["other:1", "m:3"]
    assert [r.ref for r in registry.lineage("m:2")] == ["m:2"]


def test_writes_beside_refused_rows_keep_working(
    refused_rows: Registry, onnx_model, tmp_path: Path
) -> None:
    registry = refused_rows
    assert registry.set_alias("m", "staging", 2).signature_error is not None
    assert registry.set_alias("m", "staging", 3).lineage_error == ALIAS_PARENT_REFUSED
    registry.remove_alias("m", "staging")
    assert registry.archive("m", 2).status == "archived"
    assert registry.archive("m", 3).status == "archived"
    # A retrain's default parent is the newest version, however its own lineage is stored.
    assert registry.register("m", onnx_model(bias=5.0), inherit_parent=True).lineage.parent == (
        "m:3"
    )
    # An import that finds m:2's bytes and config registered returns m:2's record.
    repo = tmp_path / "repo"
    (repo / "m" / "1").mkdir(parents=True)
    shutil.copy(onnx_model(bias=2.0), repo / "m" / "1" / "model.onnx")
    assert [(r.registered_version, r.skipped) for r in import_repository(registry, repo)] == [
        (2, True)
    ]
    registry.delete("m", 2)
    assert [v.version for v in registry.versions("m")] == [1, 3, 4]


def test_only_what_needs_the_refused_value_fails(
    refused_rows: Registry, home: Path, registry_url: str | None
) -> None:
    import numpy as np

    import engine

    registry = refused_rows
    m2 = registry.get("m:2")
    for tensors in ("inputs", "outputs"):
        with pytest.raises(InvalidConfigError) as info:
            getattr(m2, tensors)
        assert str(info.value).startswith(
            f"model 'm' version 2: its stored signature is refused by this engine: "
            f"{BFLOAT16_REFUSED}; known: float32"
        )
    with pytest.raises(InvalidConfigError) as info:
        registry.get("m:3").lineage  # noqa: B018 - the property validates
    assert str(info.value).startswith(
        f"model 'm' version 3: its stored lineage is refused by this engine: {ALIAS_PARENT_REFUSED}"
    )
    # Loading reads the tensors from the model file, not the stored signature, and needs no
    # lineage: both versions load and run.
    for ref, bias in (("m:2", 2.0), ("m:3", 3.0), ("other@production", 4.0)):
        assert registry.resolve(ref).path.is_file()
        with engine.load(ref, registry_home=home, registry_url=registry_url) as model:
            y = model.predict({"x": np.zeros((1, 4), np.float32)})["y"]
            assert y.tolist() == [[bias] * 4]


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize(
    ("columns", "field", "fragment"),
    [
        ({"signature": [1]}, "signature", "signature must be a mapping of inputs and outputs"),
        (
            {"signature": {"inputs": []}},
            "signature",
            "signature outputs must be a list of tensor specs; was None",
        ),
        (
            {"signature": {"inputs": [{"name": "x"}], "outputs": []}},
            "signature",
            "signature inputs[0] must be a mapping with name, dtype and shape; was {'name': 'x'}",
        ),
        (
            {"signature": add_signature(shape=["batch", 4])},
            "signature",
            "signature inputs[0] shape must be a list of integers; was ['batch', 4]",
        ),
        ({"parent": "m"}, "lineage", "lineage parent must name an exact version as name:VERSION"),
        ({"parent": "../m:1"}, "lineage", "invalid model name '../m'"),
        (
            {"created_by": "x" * 300},
            "lineage",
            "lineage created_by must be a string of at most 256 characters",
        ),
        ({"transform_spec": "not a spec"}, "lineage", "lineage transform_spec must be a mapping"),
    ],
)
def test_each_refused_signature_or_lineage_names_its_field(
    registry: Registry,
    raw_sql: RawSql,
    onnx_model,
    columns: dict[str, Any],
    field: str,
    fragment: str,
) -> None:
    registry.register("m", onnx_model(bias=1.0))
    store_columns(raw_sql, "m", 1, **columns)
    (record,) = registry.versions("m")
    error = record.signature_error if field == "signature" else record.lineage_error
    assert error is not None and fragment in error
    other = record.lineage_error if field == "signature" else record.signature_error
    assert other is None
    with pytest.raises(
        InvalidConfigError, match=f"^model 'm' version 1: its stored {field} is refused"
    ) as info:
        getattr(record, "inputs" if field == "signature" else "lineage")
    assert fragment in str(info.value)
    assert registry.get("m:1").to_dict()[f"{field}_error"] == error
    assert [r.ref for r in registry.lineage("m:1")] == ["m:1"]
    registry.resolve("m:1")


# ---- stored values that cannot be read at all --------------------------------------------
# SQLite stores any text in a JSON column, and a timestamp column is plain text: a row edited
# by hand (or damaged) must not break reading its model, let alone the others. PostgreSQL's
# json columns only hold valid JSON, but that JSON need not be a mapping.

NOT_JSON = "{not json"
NOT_JSON_ERROR = (
    "is stored as text that is not JSON (Expecting property name enclosed in double quotes: "
    "line 1 column 2 (char 1)): '{not json'"
)


def store_text(raw_sql: RawSql, name: str, version: int, **texts: str) -> None:
    """Overwrite columns of ``name:version``'s row with ``texts`` exactly as given."""
    values = ", ".join(f"{column} = {_sql_text(text)}" for column, text in texts.items())
    raw_sql(
        f"UPDATE versions SET {values} WHERE version = {version} "
        f"AND model_id = (SELECT id FROM models WHERE name = '{name}')"
    )


@pytest.fixture
def two_models(registry: Registry, onnx_model) -> Registry:
    """m:1, m:2 (@production) and other:1 (parent m:1), all valid as registered."""
    registry.register("m", onnx_model(bias=1.0), metrics={"acc": 0.5}, tags={"t": "v"})
    registry.register("m", onnx_model(bias=2.0), alias="production")
    registry.register("other", onnx_model(bias=3.0), lineage={"parent": "m:1"})
    return registry


def _reads_of_m1_work(registry: Registry) -> list[ModelVersion]:
    """Every read that touches m:1 works and the other versions are intact; m:1's records."""
    assert [(s.name, s.latest_version, s.version_count) for s in registry.list()] == [
        ("m", 2, 2),
        ("other", 1, 1),
    ]
    m1, m2 = registry.versions("m")
    assert (m2.version, m2.read_errors, m2.config_error, m2.signature_error) == (2, {}, None, None)
    assert registry.get("m@production").version == 2
    chain = registry.lineage("other:1")
    assert [r.ref for r in chain] == ["other:1", "m:1"]
    json.dumps(registry.get("m:1").to_dict())  # the JSON form never holds an unreadable value
    return [m1, registry.get("m:1"), chain[1]]


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("column", ["config", "signature", "transform_spec"])
def test_a_json_column_that_is_not_json_is_named_where_it_is_used(
    two_models: Registry, raw_sql: RawSql, column: str
) -> None:
    store_text(raw_sql, "m", 1, **{column: NOT_JSON})
    for record in _reads_of_m1_work(two_models):
        errors = {
            "config": record.config_error,
            "signature": record.signature_error,
            "lineage": record.lineage_error,
        }
        field = "lineage" if column == "transform_spec" else column
        what = "lineage transform_spec" if column == "transform_spec" else column
        assert errors.pop(field) == f"{what} {NOT_JSON_ERROR}"
        assert set(errors.values()) == {None}  # the other two stored values are valid
        assert record.read_errors == {}
        assert (record.metrics, record.tags) == ({"acc": 0.5}, {"t": "v"})
    data = two_models.get("m:1").to_dict()
    if column == "config":
        assert (data["config"], data["config_error"]) == (None, f"config {NOT_JSON_ERROR}")
        with pytest.raises(InvalidConfigError) as info:
            two_models.resolve("m:1")
        assert str(info.value).startswith(
            f"model 'm' version 1 cannot be loaded: its stored config is refused by this engine: "
            f"config {NOT_JSON_ERROR}"
        )
    else:
        # Loading needs neither the stored signature nor the lineage.
        assert two_models.resolve("m:1").config.instances == 1
    if column == "signature":
        assert (data["inputs"], data["outputs"]) == (None, None)
        with pytest.raises(InvalidConfigError, match="^model 'm' version 1: its stored signature"):
            two_models.get("m:1").inputs  # noqa: B018 - the property validates
    if column == "transform_spec":
        assert data["lineage"]["transform_spec"] is None
        assert data["lineage"]["parent"] is None and data["lineage"]["created_by"]


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("column", ["metrics", "params", "tags"])
def test_metadata_that_is_not_json_is_named_and_not_guessed(
    two_models: Registry, raw_sql: RawSql, column: str
) -> None:
    store_text(raw_sql, "m", 1, **{column: NOT_JSON})
    for record in _reads_of_m1_work(two_models):
        assert record.read_errors == {column: f"{column} {NOT_JSON_ERROR}"}
        assert getattr(record, column) == {}
        assert (record.config_error, record.signature_error, record.lineage_error) == (
            None,
            None,
            None,
        )
    data = two_models.get("m:1").to_dict()
    assert (data[column], data["read_errors"]) == (None, {column: f"{column} {NOT_JSON_ERROR}"})
    assert two_models.resolve("m:1").config.instances == 1  # loading needs none of them


@pytest.mark.parametrize(
    ("column", "stored", "error"),
    [
        ("metrics", "[1, 2]", "metrics must be a mapping; was [1, 2]"),
        ("params", '"text"', "params must be a mapping; was 'text'"),
        ("tags", "5", "tags must be a mapping; was 5"),
        ("metrics", "null", "metrics must be a mapping; was None"),
    ],
)
def test_metadata_that_is_json_but_not_a_mapping(
    two_models: Registry, raw_sql: RawSql, column: str, stored: str, error: str
) -> None:
    store_text(raw_sql, "m", 1, **{column: stored})
    for record in _reads_of_m1_work(two_models):
        assert record.read_errors == {column: error}
        assert getattr(record, column) == {}
    assert two_models.get("m:1").to_dict()["read_errors"] == {column: error}
    assert two_models.resolve("m:1").config.instances == 1


def test_a_config_or_signature_that_is_json_but_not_a_mapping(
    two_models: Registry, raw_sql: RawSql
) -> None:
    store_text(raw_sql, "m", 1, config="[1]", signature='"x"')
    m1 = _reads_of_m1_work(two_models)[0]
    assert m1.config_error is not None and "must be a mapping" in m1.config_error
    assert m1.signature_error == "signature must be a mapping of inputs and outputs; was 'x'"
    with pytest.raises(InvalidConfigError, match="^model 'm' version 1 cannot be loaded"):
        two_models.resolve("m:1")


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_created_at_that_is_no_timestamp(two_models: Registry, raw_sql: RawSql) -> None:
    store_text(raw_sql, "m", 1, created_at="yesterday")
    for record in _reads_of_m1_work(two_models):
        assert record.read_errors == {
            "created_at": "created_at is not an ISO 8601 timestamp; was 'yesterday'"
        }
        assert record.created_at is None
    assert two_models.get("m:1").to_dict()["created_at"] is None
    assert two_models.resolve("m:1").config.instances == 1


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_model_updated_at_that_is_no_timestamp(two_models: Registry, raw_sql: RawSql) -> None:
    raw_sql("UPDATE models SET updated_at = 'soon' WHERE name = 'm'")
    m, other = two_models.list()
    assert (m.name, m.updated_at, m.read_errors) == (
        "m",
        None,
        {"updated_at": "updated_at is not an ISO 8601 timestamp; was 'soon'"},
    )
    assert m.to_dict()["updated_at"] is None
    assert (other.updated_at is not None, other.read_errors) == (True, {})


@pytest.mark.parametrize("backend", ["sqlite"])
def test_writes_beside_unreadable_rows_keep_working(
    two_models: Registry, raw_sql: RawSql, onnx_model, tmp_path: Path
) -> None:
    registry = two_models
    store_text(raw_sql, "m", 1, config=NOT_JSON, metrics=NOT_JSON, created_at="x")
    assert registry.set_alias("m", "staging", 1).read_errors.keys() == {"metrics", "created_at"}
    registry.remove_alias("m", "staging")
    assert registry.archive("m", 1).status == "archived"
    # An import finds no registered version with m:1's unreadable config: it registers anew.
    repo = tmp_path / "repo"
    (repo / "m" / "1").mkdir(parents=True)
    shutil.copy(onnx_model(bias=1.0), repo / "m" / "1" / "model.onnx")
    assert [(r.registered_version, r.skipped) for r in import_repository(registry, repo)] == [
        (3, False)
    ]
    assert registry.register("m", onnx_model(bias=5.0), inherit_parent=True).lineage.parent == (
        "m:3"
    )
    registry.delete("m", 1)
    assert [v.version for v in registry.versions("m")] == [2, 3, 4]
