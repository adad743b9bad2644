"""The Registry API, run against SQLite and a real PostgreSQL server."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.config import ModelConfig
from engine.errors import (
    ConflictError,
    InvalidConfigError,
    InvalidModelNameError,
    ModelLoadError,
    ModelNotFoundError,
    RegistryError,
)
from engine.registry import Lineage, NewVersion, Registry, resolve
from engine.signature import TensorSpec

RegistryFactory = Callable[[], Registry]


def _blob_count(home: Path) -> int:
    return len(list((home / "artifacts" / "sha256").glob("??/*")))


def test_register_stores_signature_config_and_artifact(registry: Registry, onnx_model) -> None:
    path = onnx_model(bias=1.0)
    v = registry.register("adder", path, description="adds one")
    assert (v.name, v.version, v.status, v.ref) == ("adder", 1, "ready", "adder:1")
    assert v.inputs == (TensorSpec("x", "float32", (-1, 4)),)
    assert v.outputs == (TensorSpec("y", "float32", (-1, 4)),)
    assert v.config == ModelConfig()
    assert v.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert v.size_bytes == path.stat().st_size
    assert v.description == "adds one"
    assert v.lineage.created_by  # filled with the OS user
    assert v.created_at.tzinfo is not None
    assert registry.get("adder") == v


def test_versions_count_up_and_refs_resolve(registry: Registry, onnx_model) -> None:
    v1 = registry.register("m", onnx_model(bias=1.0), alias="production")
    v2 = registry.register("m", onnx_model(bias=2.0))
    assert (v1.version, v2.version) == (1, 2)
    assert v1.aliases == ("production",)
    assert registry.get("m").version == 2
    assert registry.get("m:1").version == 1
    assert registry.get("m@production").version == 1
    assert [v.version for v in registry.versions("m")] == [1, 2]


def test_records_round_trip_every_field(registry: Registry, onnx_model) -> None:
    registry.register("base", onnx_model(bias=0.5))
    config = ModelConfig(
        max_batch_size=8,
        preferred_batch_sizes=(4, 8),
        instances=2,
        max_queue_delay_us=500,
        inputs=(TensorSpec("x", "float32", (-1, 4)),),
    )
    lineage = Lineage(
        data_fingerprint="sha256:" + "ab" * 32,
        code_revision="deadbeef",
        parent="base:1",
        transform_spec={"steps": [{"kind": "scale"}]},
        created_by="alice",
    )
    v = registry.register(
        "m",
        onnx_model(),
        config=config,
        metrics={"auc": 0.91, "n": 3},
        params={"depth": 4, "lr": [0.1, 0.01]},
        tags={"team": "risk"},
        lineage=lineage,
        description="d",
    )
    got = registry.get("m:1")
    assert got == v
    assert got.config == config
    assert got.metrics == {"auc": 0.91, "n": 3.0}
    assert got.params == {"depth": 4, "lr": [0.1, 0.01]}
    assert got.tags == {"team": "risk"}
    assert got.lineage == lineage
    assert got.lineage.transform_spec == {"steps": [{"kind": "scale"}]}
    assert got.to_dict()["lineage"]["parent"] == "base:1"


def test_config_and_lineage_accept_plain_mappings(registry: Registry, onnx_model) -> None:
    v = registry.register(
        "m", onnx_model(), config={"max_batch_size": 4}, lineage={"code_revision": "abc"}
    )
    assert v.config.max_batch_size == 4
    assert v.lineage.code_revision == "abc"


def test_aliases_move_and_are_removed(registry: Registry, onnx_model) -> None:
    registry.register("m", onnx_model(bias=1.0))
    registry.register("m", onnx_model(bias=2.0))
    registry.set_alias("m", "production", 1)
    moved = registry.set_alias("m", "production", 2)
    assert moved.aliases == ("production",)
    assert registry.get("m@production").version == 2
    assert registry.get("m:1").aliases == ()
    registry.remove_alias("m", "production")
    with pytest.raises(ModelNotFoundError, match="model 'm' has no alias 'production'"):
        registry.get("m@production")
    with pytest.raises(ModelNotFoundError, match="no alias 'production'"):
        registry.remove_alias("m", "production")


@pytest.mark.parametrize("alias", ["latest", "1", "007"])
def test_aliases_that_read_as_something_else_are_refused(
    registry: Registry, onnx_model, alias: str
) -> None:
    registry.register("m", onnx_model())
    with pytest.raises(InvalidModelNameError, match=f"alias '{alias}'"):
        registry.set_alias("m", alias, 1)
    with pytest.raises(InvalidModelNameError, match=f"alias '{alias}'"):
        registry.register("m", onnx_model(bias=3.0), alias=alias)
    assert [v.version for v in registry.versions("m")] == [1]  # the refused import left nothing
    registry.set_alias("m", "latest-stable", 1)  # only the exact words are refused
    registry.set_alias("m", "v1", 1)


def test_archive_hides_from_latest_but_keeps_explicit_version(
    registry: Registry, onnx_model
) -> None:
    registry.register("m", onnx_model(bias=1.0))
    registry.register("m", onnx_model(bias=2.0))
    archived = registry.archive("m", 2)
    assert archived.status == "archived"
    assert registry.get("m").version == 1
    assert registry.get("m:2").status == "archived"
    with pytest.raises(ConflictError, match="cannot point alias 'prod' at m:2: it is archived"):
        registry.set_alias("m", "prod", 2)
    registry.archive("m", 1)
    with pytest.raises(ModelNotFoundError, match="has no ready version"):
        registry.get("m")
    assert registry.list()[0].latest_version is None


def test_unarchive_makes_a_version_ready_again(registry: Registry, onnx_model) -> None:
    registry.register("m", onnx_model(bias=1.0))
    registry.register("m", onnx_model(bias=2.0))
    registry.archive("m", 2)
    assert registry.unarchive("m", 2).status == "ready"
    assert registry.get("m").version == 2  # the newest ready one again
    registry.set_alias("m", "prod", 2)
    assert registry.unarchive("m", 1).status == "ready"  # not archived: as it is
    with pytest.raises(ModelNotFoundError):
        registry.unarchive("m", 3)


def test_every_write_to_a_model_moves_its_updated_at(
    registry: Registry, onnx_model, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``list`` shows when a model last changed: a version, an alias or a status."""
    import itertools
    from datetime import datetime, timedelta, timezone

    import engine.registry.registry as registry_module

    clock = [datetime(2026, 1, 1, tzinfo=timezone.utc)]

    def now() -> str:
        clock[0] += timedelta(minutes=1)
        return clock[0].isoformat()

    monkeypatch.setattr(registry_module, "_now", now)
    registry.register("m", onnx_model(bias=1.0))
    registry.register("m", onnx_model(bias=2.0))
    seen = [registry.list()[0].updated_at]
    for write in (
        lambda: registry.set_alias("m", "prod", 1),
        lambda: registry.remove_alias("m", "prod"),
        lambda: registry.archive("m", 2),
        lambda: registry.unarchive("m", 2),
        lambda: registry.delete("m", 2),
    ):
        write()
        seen.append(registry.list()[0].updated_at)
    assert all(a < b for a, b in itertools.pairwise(seen)), seen


def test_archive_and_delete_refuse_while_aliased(registry: Registry, onnx_model) -> None:
    registry.register("m", onnx_model(), alias="production")
    registry.set_alias("m", "staging", 1)
    with pytest.raises(
        ConflictError,
        match=r"cannot delete m:1: aliases \['production', "
        r"'staging'\] point at it",
    ):
        registry.delete("m", 1)
    with pytest.raises(ConflictError, match="cannot archive m:1"):
        registry.archive("m", 1)
    assert registry.get("m:1").status == "ready"


def test_delete_removes_the_record_and_never_reuses_the_number(
    registry: Registry, onnx_model
) -> None:
    registry.register("m", onnx_model(bias=1.0))
    registry.register("m", onnx_model(bias=2.0))
    registry.delete("m", 2)
    with pytest.raises(ModelNotFoundError, match="model 'm' has no version 2"):
        registry.get("m:2")
    assert registry.register("m", onnx_model(bias=3.0)).version == 3
    assert [v.version for v in registry.versions("m")] == [1, 3]


def test_not_found_errors_name_what_is_missing(registry: Registry, onnx_model) -> None:
    with pytest.raises(ModelNotFoundError, match="no model named 'nope'"):
        registry.get("nope")
    with pytest.raises(ModelNotFoundError, match="no model named 'nope'"):
        registry.versions("nope")
    registry.register("m", onnx_model())
    with pytest.raises(ModelNotFoundError, match="has no version 7"):
        registry.get("m:7")
    with pytest.raises(ModelNotFoundError, match="has no version 7"):
        registry.set_alias("m", "a", 7)
    with pytest.raises(ModelNotFoundError, match="has no version 7"):
        registry.delete("m", 7)


def test_list_summarises_models(registry: Registry, onnx_model) -> None:
    registry.register("b", onnx_model(bias=1.0))
    registry.register("a", onnx_model(bias=2.0), alias="production")
    registry.register("a", onnx_model(bias=3.0))
    summaries = registry.list()
    assert [s.name for s in summaries] == ["a", "b"]
    a = summaries[0]
    assert (a.latest_version, a.version_count, a.aliases) == (2, 2, {"production": 1})
    assert a.to_dict()["aliases"] == {"production": 1}


# Validation happens before the database is touched: one backend is enough.
SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"])


@SQLITE_ONLY
@pytest.mark.parametrize("name", ["../evil", "/abs", "a%2f", ".hidden", "a\x00"])
def test_bad_names_are_refused_before_anything_is_written(
    registry: Registry, onnx_model, home: Path, name: str
) -> None:
    with pytest.raises(InvalidModelNameError):
        registry.register(name, onnx_model())
    with pytest.raises(InvalidModelNameError):
        registry.register("ok", onnx_model(), alias=name)
    assert _blob_count(home) == 0
    assert registry.list() == []


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"metrics": {"auc": float("nan")}}, "metric 'auc' must be a finite number"),
        ({"metrics": {"auc": "high"}}, "metric 'auc' must be a finite number"),
        ({"tags": {"team": 3}}, "tag 'team' must be a string"),
        ({"params": {"f": object()}}, "params must be JSON-serialisable"),
        ({"config": {"max_batch_size": -1}}, "max_batch_size must be an int >= 0"),
        ({"config": {"bogus": 1}}, "unknown model config fields"),
        # Configs that could never load are refused here, not at engine.load("m").
        ({"config": {"transforms": {"bad": 1}}}, "transforms: transform spec: top level"),
        ({"config": {"allow_spinning": "yes"}}, "allow_spinning must be True or False"),
        ({"config": {"max_batch_size": 2**70}}, "max_batch_size must be an int <= 2147483647"),
        (
            {"config": {"batching": True}, "path_kwargs": {"dims": (2, 4)}},
            "config turns batching on but ['x', 'y'] have no dynamic first dimension",
        ),
        ({"lineage": {"parent": "m"}}, "lineage parent must name an exact version"),
        ({"lineage": {"who": "x"}}, "unknown lineage fields"),
        (
            {"config": ModelConfig(inputs=(TensorSpec("z", "float32", (-1, 4)),))},
            "config declares input 'z' but the model's inputs are ['x']",
        ),
        (
            {"config": ModelConfig(inputs=(TensorSpec("x", "int64", (-1, 4)),))},
            "config declares input 'x' as int64 but the model has float32",
        ),
        (
            {"config": ModelConfig(outputs=(TensorSpec("y", "float32", (-1, 5)),))},
            "with shape [-1, 5] but the model has [-1, 4]",
        ),
    ],
)
def test_invalid_fields_are_refused(
    registry: Registry, onnx_model, home: Path, kwargs: dict[str, object], fragment: str
) -> None:
    kwargs = dict(kwargs)  # the parameter's own dict is shared between runs
    path = onnx_model(**kwargs.pop("path_kwargs", {}))  # type: ignore[arg-type]
    with pytest.raises(InvalidConfigError) as info:
        registry.register("m", path, **kwargs)  # type: ignore[arg-type]
    assert fragment in str(info.value)
    assert registry.list() == []


def test_lineage_parent_must_exist(registry: Registry, onnx_model) -> None:
    with pytest.raises(ModelNotFoundError, match="no model named 'base'"):
        registry.register("m", onnx_model(), lineage=Lineage(parent="base:1"))


def test_lineage_follows_parents(registry: Registry, onnx_model) -> None:
    registry.register("base", onnx_model(bias=1.0))
    registry.register("tuned", onnx_model(bias=2.0), lineage={"parent": "base:1"})
    registry.register("tuned", onnx_model(bias=3.0), lineage={"parent": "tuned:1"})
    assert [v.ref for v in registry.lineage("tuned")] == ["tuned:2", "tuned:1", "base:1"]


def test_inherit_parent_names_the_newest_version_when_registering(
    registry: Registry, onnx_model
) -> None:
    """``inherit_parent``: the newest version of the name at registration (archived ones
    count, deleted ones do not), none for a new name; an explicit parent wins."""
    assert registry.register("m", onnx_model(), inherit_parent=True).lineage.parent is None
    assert registry.register("m", onnx_model(), inherit_parent=True).lineage.parent == "m:1"
    registry.archive("m", 2)
    assert registry.register("m", onnx_model(), inherit_parent=True).lineage.parent == "m:2"
    registry.delete("m", 3)
    assert registry.register("m", onnx_model(), inherit_parent=True).lineage.parent == "m:2"
    explicit = registry.register("m", onnx_model(), lineage={"parent": "m:1"}, inherit_parent=True)
    assert explicit.lineage.parent == "m:1"
    assert registry.register("m", onnx_model()).lineage.parent is None  # the default: none


def test_inherit_parent_chains_the_entries_of_one_transaction(
    registry: Registry, onnx_model
) -> None:
    registry.register("m", onnx_model(bias=1.0))
    same = onnx_model(bias=3.0)
    results = registry.register_all(
        [
            NewVersion("m", onnx_model(bias=2.0), inherit_parent=True),
            NewVersion("n", onnx_model(bias=1.0), inherit_parent=True),
            NewVersion("m", same, inherit_parent=True),
            NewVersion("m", same, inherit_parent=True),  # skipped: m:3 already has these bytes
            NewVersion("n", onnx_model(bias=2.0), inherit_parent=True),
        ],
        skip_registered=True,
    )
    assert [(r.ref, r.lineage.parent, skipped) for r, skipped in results] == [
        ("m:2", "m:1", False),
        ("n:1", None, False),
        ("m:3", "m:2", False),
        ("m:3", "m:2", True),
        ("n:2", "n:1", False),
    ]


@SQLITE_ONLY
def test_external_data_is_refused(registry: Registry, onnx_model, home: Path) -> None:
    path = onnx_model("ext.onnx", external_data=True)
    with pytest.raises(ModelLoadError, match="references external data.*refused"):
        registry.register("m", path)
    assert _blob_count(home) == 0
    assert not list((home / "artifacts" / "tmp").glob("*"))


@SQLITE_ONLY
def test_invalid_files_are_refused(registry: Registry, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\xff\x00not a model" * 10)
    with pytest.raises(ModelLoadError, match="garbage.onnx"):
        registry.register("m", garbage)
    with pytest.raises(ModelLoadError, match="does not exist or is not a file"):
        registry.register("m", tmp_path / "missing.onnx")
    with pytest.raises(ModelLoadError, match="does not exist or is not a file"):
        registry.register("m", tmp_path)


def _graph_file(path: Path, node: object, inputs: list, outputs: list, **extra: object) -> Path:
    from onnx import helper

    graph = helper.make_graph([node], "g", inputs, outputs, **extra)
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("example.unknown", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


@SQLITE_ONLY
def test_files_onnx_runtime_cannot_load_are_refused(
    registry: Registry, tmp_path: Path, home: Path
) -> None:
    """onnx's checker passes each of these; ONNX Runtime refuses to load them. Registered, they
    would fail at every load (and an alias would point at them)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    def value(name: str, elem_type: int) -> object:
        return helper.make_tensor_value_info(name, elem_type, ["batch", 4])

    x = value("x", TensorProto.FLOAT)
    mismatched = _graph_file(  # Add of float and int64
        tmp_path / "mismatched.onnx", helper.make_node("Add", ["x", "b"], ["y"]), [x],
        [value("y", TensorProto.FLOAT)],
        initializer=[numpy_helper.from_array(np.ones(4, np.int64), "b")],
    )
    wrong_output = _graph_file(  # Identity of a float declared int64
        tmp_path / "wrong_output.onnx", helper.make_node("Identity", ["x"], ["y"]), [x],
        [value("y", TensorProto.INT64)],
    )
    unknown_op = _graph_file(
        tmp_path / "unknown_op.onnx",
        helper.make_node("Frobnicate", ["x"], ["y"], domain="example.unknown"), [x],
        [value("y", TensorProto.FLOAT)],
    )
    for path in (mismatched, wrong_output, unknown_op):
        with pytest.raises(
            ModelLoadError,
            match=f"^'{path}': ONNX Runtime cannot load this model on the CPU: .+",
        ):
            registry.register("m", path, alias="production")
    assert registry.list() == []
    assert _blob_count(home) == 0


def test_resolve_verifies_the_artifact(registry: Registry, onnx_model) -> None:
    v = registry.register("m", onnx_model(), alias="production")
    resolved = registry.resolve("m@production")
    assert resolved.version == v
    assert resolved.config == v.config
    assert resolved.path.read_bytes() == onnx_model("again.onnx").read_bytes()
    assert not os.access(resolved.path, os.W_OK) or os.geteuid() == 0
    assert resolved.path.stat().st_mode & 0o777 == 0o444


def test_a_flipped_byte_is_refused(registry: Registry, onnx_model) -> None:
    registry.register("m", onnx_model())
    blob = registry.resolve("m:1").path
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x01
    os.chmod(blob, 0o644)
    blob.write_bytes(bytes(data))
    with pytest.raises(
        ModelLoadError,
        match=r"m:1: artifact [0-9a-f]{64} is corrupt: its "
        r"content hashes to sha256 [0-9a-f]{64}",
    ):
        registry.resolve("m:1")


def test_a_truncated_or_missing_blob_is_refused(registry: Registry, onnx_model) -> None:
    registry.register("m", onnx_model())
    blob = registry.resolve("m").path
    os.chmod(blob, 0o644)
    blob.write_bytes(blob.read_bytes()[:-1])
    with pytest.raises(ModelLoadError, match="is corrupt: expected .* bytes"):
        registry.resolve("m")
    blob.unlink()
    with pytest.raises(ModelLoadError, match="is missing"):
        registry.resolve("m")


def test_re_registering_repairs_a_damaged_blob(registry: Registry, onnx_model) -> None:
    path = onnx_model()
    registry.register("m", path)
    blob = registry.resolve("m").path
    os.chmod(blob, 0o644)
    blob.write_bytes(b"x")
    registry.register("m", path)
    assert registry.resolve("m:1").path == blob


def test_identical_files_share_one_blob(registry: Registry, onnx_model, home: Path) -> None:
    path = onnx_model()
    a = registry.register("a", path)
    b = registry.register("b", path)
    assert a.sha256 == b.sha256
    assert _blob_count(home) == 1


def test_gc_removes_only_unreferenced_old_files(registry: Registry, onnx_model, home: Path) -> None:
    registry.register("m", onnx_model(bias=1.0))
    registry.register("m", onnx_model(bias=2.0))
    kept = registry.get("m:1").sha256
    gone = registry.get("m:2").sha256
    registry.delete("m", 2)
    leftover = home / "artifacts" / "tmp" / "123-abc.part"
    leftover.write_bytes(b"partial")
    assert registry.gc() == []  # everything is younger than the grace period
    old = time.time() - 7200
    for p in [leftover, *(home / "artifacts" / "sha256").glob("??/*")]:
        os.utime(p, (old, old))
    assert sorted(registry.gc()) == sorted([gone, leftover.name])
    assert registry.resolve("m:1").version.sha256 == kept


def test_gc_refuses_a_home_whose_artifacts_another_registry_stored(
    registry: Registry, onnx_model, home: Path, tmp_path: Path
) -> None:
    """``--home A --registry-url B``: B references none of A's blobs; gc would delete them."""
    sha256 = registry.register("m", onnx_model()).sha256
    blob = registry.resolve("m:1").path
    old = time.time() - 7200
    os.utime(blob, (old, old))
    with (
        Registry(home=home, url=f"sqlite:///{tmp_path / 'other.db'}") as other,
        pytest.raises(RegistryError, match="another registry uses it too"),
    ):
        other.gc()
    assert blob.is_file() and blob.name == sha256


def test_module_level_resolve_uses_home(home: Path, registry_url: str | None, onnx_model) -> None:
    with Registry(home=home, url=registry_url) as registry:
        registry.register("m", onnx_model(), alias="production")
    resolved = resolve("m@production", home=home, url=registry_url)
    assert resolved.version.version == 1
    assert resolved.path.is_file()


def test_two_instances_see_each_others_writes(open_registry: RegistryFactory, onnx_model) -> None:
    first, second = open_registry(), open_registry()
    first.register("m", onnx_model(bias=1.0))
    assert second.register("m", onnx_model(bias=2.0)).version == 2
    assert first.get("m").version == 2


def test_home_defaults_to_engine_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, onnx_model
) -> None:
    from engine.settings import get_settings

    monkeypatch.setenv("ENGINE_HOME", str(tmp_path / "envhome"))
    get_settings.cache_clear()
    with Registry() as registry:
        registry.register("m", onnx_model())
        assert registry.home == tmp_path / "envhome"
    assert (tmp_path / "envhome" / "registry.db").is_file()


def test_bad_urls_are_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="invalid registry URL"):
        Registry(home=tmp_path, url="not a url")
    with pytest.raises(RegistryError, match="cannot use registry URL 'nosuchdb://h/d'"):
        Registry(home=tmp_path, url="nosuchdb://h/d")
