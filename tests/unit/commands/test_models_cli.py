from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.cli import main

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Run:
    """Runs ``engine models ARGS --home <tmp>`` in-process; returns (code, stdout, stderr)."""
    home = tmp_path / "home"

    def call(*args: str) -> tuple[int, str, str]:
        code = main(["models", *args, "--home", str(home)])
        out, err = capsys.readouterr()
        return code, out, err

    return call


def _json(run: Run, *args: str) -> object:
    code, out, err = run(*args, "--json")
    assert code == 0, err
    return json.loads(out)


def test_register_then_list_show_versions(run: Run, add_model, tmp_path: Path) -> None:
    data = tmp_path / "train.csv"
    data.write_text("a,b\n1,2\n")
    code, out, _ = run(
        "register",
        "churn",
        str(add_model(1.0)),
        "--alias",
        "production",
        "--metric",
        "auc=0.9",
        "--param",
        "depth=4",
        "--param",
        "kind=gbm",
        "--tag",
        "team=risk",
        "--description",
        "first",
        "--data",
        str(data),
        "--code-revision",
        "abc123",
    )
    assert code == 0
    assert out.startswith("registered churn:1 (sha256 ")
    assert out.rstrip().endswith("alias production")
    record = _json(run, "show", "churn@production")
    assert isinstance(record, dict)
    assert record["version"] == 1
    assert record["metrics"] == {"auc": 0.9}
    assert record["params"] == {"depth": 4, "kind": "gbm"}
    assert record["tags"] == {"team": "risk"}
    assert record["lineage"]["data_fingerprint"].startswith("sha256:")
    assert record["lineage"]["code_revision"] == "abc123"
    assert record["inputs"] == [{"name": "x", "dtype": "float32", "shape": [-1, 4]}]

    assert (
        _json(run, "register", "churn", str(add_model(2.0)), "--parent", "churn:1")["version"] == 2
    )  # type: ignore[index]
    listed = _json(run, "list")
    assert listed == [
        {
            "name": "churn",
            "latest_version": 2,
            "version_count": 2,
            "aliases": {"production": 1},
            "updated_at": listed[0]["updated_at"],
            "read_errors": {},
        }
    ]  # type: ignore[index]
    versions = _json(run, "versions", "churn")
    assert [v["version"] for v in versions] == [1, 2]  # type: ignore[union-attr,index]


def test_human_output_is_an_aligned_table(run: Run, add_model) -> None:
    run("register", "a-long-model-name", str(add_model(1.0)))
    run("register", "b", str(add_model(2.0)), "--alias", "production")
    code, out, _ = run("list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "LATEST", "VERSIONS", "ALIASES", "UPDATED_UTC"]
    column = lines[0].index("LATEST")
    assert all(line[column - 2 : column] == "  " for line in lines)
    assert lines[1].startswith("a-long-model-name  1")
    assert "production=1" in lines[2]
    code, out, _ = run("show", "b")
    assert "status:" in out and "TENSOR  NAME  DTYPE    SHAPE" in out
    created = next(line for line in out.splitlines() if line.startswith("created_at:"))
    assert created.endswith(" UTC"), created  # stored times are UTC; the output says so
    code, out, _ = run("versions", "b")
    assert out.splitlines()[0].split()[5] == "CREATED_UTC"


def test_alias_archive_delete_lineage(run: Run, add_model) -> None:
    run("register", "m", str(add_model(1.0)))
    run("register", "m", str(add_model(2.0)), "--parent", "m:1")
    assert _json(run, "alias", "m", "production", "2") == {
        "name": "m",
        "alias": "production",
        "version": 2,
    }
    code, out, _ = run("alias", "m", "production", "1")
    assert (code, out.strip()) == (0, "m@production -> m:1")
    code, _, err = run("delete", "m", "1")
    assert code == 1
    assert "error: cannot delete m:1: aliases ['production'] point at it" in err
    code, out, _ = run("alias", "m", "production", "--delete")
    assert (code, out.strip()) == (0, "removed alias m@production")
    assert _json(run, "archive", "m", "1")["status"] == "archived"  # type: ignore[index]
    assert run("unarchive", "m", "1") == (0, "m:1 is ready\n", "")
    assert _json(run, "archive", "m", "1")["status"] == "archived"  # type: ignore[index]
    chain = _json(run, "lineage", "m:2")
    assert [c["ref"] for c in chain] == ["m:2", "m:1"]  # type: ignore[union-attr,index]
    code, out, _ = run("lineage", "m:2")
    assert out.splitlines()[0].split()[:3] == ["REF", "PARENT", "DATA"]
    assert _json(run, "delete", "m", "1") == {"name": "m", "version": 1, "deleted": True}
    code, _, err = run("show", "m:1")
    assert code == 1 and "error: model 'm' has no version 1" in err


def test_lineage_says_when_a_parent_was_deleted(run: Run, add_model) -> None:
    run("register", "m", str(add_model(1.0)))
    run("register", "m", str(add_model(2.0)), "--parent", "m:1")
    run("register", "m", str(add_model(3.0)), "--parent", "m:2")
    run("delete", "m", "1")
    why = "its parent m:1 cannot be found: model 'm' has no version 1"
    code, out, _ = run("lineage", "m:3")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()[1:3]] == ["m:3", "m:2"]
    assert out.splitlines()[3:] == [f"the chain stops at m:2: {why}"]
    chain = _json(run, "lineage", "m:3")
    assert [(c["ref"], c["parent_error"]) for c in chain] == [  # type: ignore[union-attr,index]
        ("m:3", None), ("m:2", why)]


def test_import_repo(run: Run, add_model, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "mlp" / "1").mkdir(parents=True)
    add_model(1.0).rename(repo / "mlp" / "1" / "model.onnx")
    (repo / "mlp" / "config.pbtxt").write_text(
        'max_batch_size: 8\ninput [{ name: "x" data_type: TYPE_FP32 dims: [4] }]\n'
    )
    results = _json(run, "import-repo", str(repo), "--alias", "production")
    assert results == [
        {"name": "mlp", "repository_version": 1, "registered_version": 1, "skipped": False}
    ]
    config = _json(run, "show", "mlp@production")["config"]  # type: ignore[index]
    assert config["max_batch_size"] == 8
    code, out, _ = run("import-repo", str(repo))
    assert "already registered" in out
    (repo / "mlp" / "config.pbtxt").write_text("max_batch_size: 8\nbogus: 1\n")
    code, _, err = run("import-repo", str(repo))
    assert code == 1
    # Named relative to the repository (a server shows the same messages to its clients).
    assert "error: mlp/config.pbtxt:2: unknown or unsupported field 'bogus'" in err


def test_a_version_with_a_config_refused_by_new_bounds(run: Run, add_model, tmp_path: Path) -> None:
    """A registry written by an older release: m:2's stored config holds instances = 1000,
    over today's bound. Every metadata command works and shows it; only loading it fails."""
    run("register", "m", str(add_model(1.0)), "--alias", "production")
    run("register", "m", str(add_model(2.0)))
    run("register", "other", str(add_model(3.0)), "--parent", "m:2")
    with sqlite3.connect(tmp_path / "home" / "registry.db") as conn:
        conn.execute(
            "UPDATE versions SET config = json_set(config, '$.instances', 1000) "
            "WHERE version = 2 AND model_id = (SELECT id FROM models WHERE name = 'm')"
        )
    conn.close()
    refused = "instances must be an int <= 256; was 1000 (allowed: [1, 256])"

    assert [m["name"] for m in _json(run, "list")] == ["m", "other"]  # type: ignore[union-attr,index]
    record = _json(run, "show", "m")  # the latest: version 2
    assert record["version"] == 2  # type: ignore[index]
    assert record["config"]["instances"] == 1000  # type: ignore[index]
    assert record["config_error"] == refused  # type: ignore[index]
    code, out, _ = run("show", "m:2")
    assert code == 0
    assert f"config:           refused by this engine, so it cannot be loaded: {refused}" in out
    code, out, _ = run("show", "m:1")
    assert "config:           valid" in out
    versions = _json(run, "versions", "m")
    assert [v["config_error"] for v in versions] == [None, refused]  # type: ignore[union-attr,index]
    chain = _json(run, "lineage", "other:1")
    assert [c["ref"] for c in chain] == ["other:1", "m:2"]  # type: ignore[union-attr,index]
    code, out, err = run("alias", "m", "staging", "2")
    assert (code, out.strip()) == (0, "m@staging -> m:2")
    assert f"warning: this engine cannot load m:2: its stored config is refused: {refused}" in err


def test_versions_with_a_refused_signature_or_lineage(run: Run, add_model, tmp_path: Path) -> None:
    """m:2's stored signature holds an element type this engine lacks; m:3's stored lineage
    names an alias as parent (both written with sqlite3). Every command works, says which
    record it refuses and shows the stored values."""
    run("register", "m", str(add_model(1.0)), "--alias", "production")
    run("register", "m", str(add_model(2.0)))
    run("register", "m", str(add_model(3.0)), "--parent", "m:2")
    run("register", "other", str(add_model(4.0)), "--parent", "m:3")
    with sqlite3.connect(tmp_path / "home" / "registry.db") as conn:
        conn.execute(
            "UPDATE versions SET signature = json_set(signature, '$.inputs[0].dtype', 'bfloat16') "
            "WHERE version = 2 AND model_id = (SELECT id FROM models WHERE name = 'm')"
        )
        conn.execute(
            "UPDATE versions SET parent = 'm@production' "
            "WHERE version = 3 AND model_id = (SELECT id FROM models WHERE name = 'm')"
        )
    conn.close()
    bfloat16 = "signature inputs[0] dtype: unknown element type 'bfloat16'; known: float32"
    alias_parent = "lineage parent must name an exact version as name:VERSION; was 'm@production'"

    assert [m["name"] for m in _json(run, "list")] == ["m", "other"]  # type: ignore[union-attr,index]
    code, out, _ = run("show", "m:2")
    assert code == 0
    assert f"signature:        refused by this engine: {bfloat16}" in out
    assert "lineage:          valid" in out and "config:           valid" in out
    assert "TENSOR" not in out  # no table of tensors this engine cannot read
    code, out, _ = run("show", "m")  # the latest, m:3
    assert code == 0
    assert f"lineage:          refused by this engine (shown as stored): {alias_parent}" in out
    assert "parent:           m@production" in out
    assert "signature:        valid" in out and "TENSOR  NAME  DTYPE    SHAPE" in out
    shown = _json(run, "show", "m:2")
    assert shown["inputs"][0]["dtype"] == "bfloat16"  # type: ignore[index]
    assert shown["signature_error"].startswith(bfloat16)  # type: ignore[index]

    code, out, _ = run("versions", "m")
    assert code == 0
    header, *rows = out.splitlines()
    at = header.index("REFUSED")  # an aligned table: the column starts there in every row
    assert [row[at:].split()[0] for row in rows] == ["-", "signature", "lineage"]
    versions = _json(run, "versions", "m")
    assert [v["lineage_error"] for v in versions] == [None, None, alias_parent]  # type: ignore[union-attr,index]

    chain = _json(run, "lineage", "other:1")
    assert [(c["ref"], c["parent"], c["lineage_error"]) for c in chain] == [  # type: ignore[union-attr,index]
        ("other:1", "m:3", None),
        ("m:3", "m@production", alias_parent),
    ]
    code, out, _ = run("lineage", "other:1")
    assert code == 0
    assert out.splitlines()[2].split()[:2] == ["m:3", "m@production"]
    assert f"m:3: lineage refused by this engine (shown as stored): {alias_parent}" in out

    code, out, err = run("alias", "m", "staging", "2")
    assert (code, out.strip(), err) == (0, "m@staging -> m:2", "")  # it loads: no warning
    code, out, _ = run("alias", "m", "staging", "--delete")
    assert code == 0
    assert _json(run, "archive", "m", "3")["lineage_error"] == alias_parent  # type: ignore[index]
    repo = tmp_path / "repo"
    (repo / "m" / "1").mkdir(parents=True)
    add_model(2.0).rename(repo / "m" / "1" / "model.onnx")
    results = _json(run, "import-repo", str(repo))
    assert results == [
        {"name": "m", "repository_version": 1, "registered_version": 2, "skipped": True}
    ]


def test_versions_with_values_that_cannot_be_read(run: Run, add_model, tmp_path: Path) -> None:
    """m:1's row was damaged with sqlite3: text that is not JSON in its config and transform
    spec, tags that are no mapping, a created_at that is no timestamp; the model's updated_at
    too. Every metadata command lists and shows it, naming what cannot be read."""
    run("register", "m", str(add_model(1.0)), "--metric", "acc=0.5")
    run("register", "m", str(add_model(2.0)), "--parent", "m:1", "--alias", "production")
    run("register", "other", str(add_model(3.0)))
    with sqlite3.connect(tmp_path / "home" / "registry.db") as conn:
        conn.execute(
            "UPDATE versions SET config = '{oops', transform_spec = 'nope', tags = '[1]', "
            "created_at = 'yesterday' "
            "WHERE version = 1 AND model_id = (SELECT id FROM models WHERE name = 'm')"
        )
        conn.execute("UPDATE models SET updated_at = 'soon' WHERE name = 'm'")
    conn.close()
    config_error = (
        "config is stored as text that is not JSON (Expecting property name enclosed in double "
        "quotes: line 1 column 2 (char 1)): '{oops'"
    )
    spec_error = (
        "lineage transform_spec is stored as text that is not JSON (Expecting value: line 1 "
        "column 1 (char 0)): 'nope'"
    )
    tags_error = "tags must be a mapping; was [1]"
    created_error = "created_at is not an ISO 8601 timestamp; was 'yesterday'"

    listed = _json(run, "list")
    assert [(m["name"], m["updated_at"], m["read_errors"]) for m in listed] == [  # type: ignore[union-attr,index]
        ("m", None, {"updated_at": "updated_at is not an ISO 8601 timestamp; was 'soon'"}),
        ("other", listed[1]["updated_at"], {}),  # type: ignore[index]
    ]
    code, out, _ = run("list")
    assert code == 0 and out.splitlines()[1].split()[:3] == ["m", "2", "2"]

    code, out, _ = run("show", "m:1")
    assert code == 0
    assert (
        f"config:           refused by this engine, so it cannot be loaded: {config_error}" in out
    )
    assert f"lineage:          refused by this engine (shown as stored): {spec_error}" in out
    assert f"tags:             unreadable: {tags_error}" in out
    assert f"created_at:       unreadable: {created_error}" in out
    assert "metrics:          acc=0.5" in out and "signature:        valid" in out
    shown = _json(run, "show", "m:1")
    assert (shown["config"], shown["config_error"]) == (None, config_error)  # type: ignore[index]
    assert (shown["tags"], shown["created_at"]) == (None, None)  # type: ignore[index]
    assert shown["read_errors"] == {"tags": tags_error, "created_at": created_error}  # type: ignore[index]
    assert shown["lineage"]["transform_spec"] is None  # type: ignore[index]

    code, out, _ = run("versions", "m")
    assert code == 0
    header, *rows = out.splitlines()
    at = header.index("REFUSED")
    assert [row[at:].split()[0] for row in rows] == ["config,lineage,tags,created_at", "-"]
    assert rows[0].split()[5] == "?"  # m:1's CREATED column
    versions = _json(run, "versions", "m")
    assert [v["read_errors"] for v in versions] == [  # type: ignore[union-attr,index]
        {"tags": tags_error, "created_at": created_error},
        {},
    ]

    chain = _json(run, "lineage", "m@production")
    assert [(c["ref"], c["lineage_error"], c["created_at"]) for c in chain] == [  # type: ignore[union-attr,index]
        ("m:2", None, chain[0]["created_at"]),  # type: ignore[index]
        ("m:1", spec_error, None),
    ]
    code, out, _ = run("lineage", "m@production")
    assert code == 0
    assert out.splitlines()[2].split()[-1] == "unreadable"  # m:1's TRANSFORMS cell
    assert f"m:1: lineage refused by this engine (shown as stored): {spec_error}" in out

    code, out, err = run("alias", "m", "staging", "1")
    assert (code, out.strip()) == (0, "m@staging -> m:1")
    assert (
        f"warning: this engine cannot load m:1: its stored config is refused: {config_error}" in err
    )


def test_config_files_json_and_pbtxt(run: Run, add_model, tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"max_batch_size": 16, "instances": 2}))
    record = _json(run, "register", "m", str(add_model(1.0)), "--config", str(cfg))
    assert record["config"]["instances"] == 2  # type: ignore[index]
    pbtxt = tmp_path / "config.pbtxt"
    pbtxt.write_text("max_batch_size: 4\ndynamic_batching { }\n")
    record = _json(run, "register", "m", str(add_model(2.0)), "--config", str(pbtxt))
    assert record["config"]["batching"] is True  # type: ignore[index]


def test_a_config_pbtxt_version_policy_becomes_the_serving_policy_tag(
    run: Run, add_model, tmp_path: Path
) -> None:
    """`engine serve --registry` reads the policy from a version's tag, not its config: a
    pbtxt's policy is kept there (it was dropped), and a tag it cannot read is refused."""
    pbtxt = tmp_path / "config.pbtxt"
    pbtxt.write_text("max_batch_size: 4\nversion_policy: { latest { num_versions: 2 } }\n")
    record = _json(run, "register", "m", str(add_model(1.0)), "--config", str(pbtxt))
    assert record["tags"] == {"version_policy": "latest:2"}  # type: ignore[index]
    code, _, err = run("register", "m", str(add_model(2.0)), "--config", str(pbtxt),
                       "--tag", "version_policy=all")
    assert code == 1 and "has version_policy 'latest:2' but --tag version_policy=all" in err
    for extra in ([], ["--config", str(pbtxt)]):  # with a pbtxt's policy too
        code, _, err = run("register", "m", str(add_model(3.0)), "--tag",
                           "version_policy=garbage", *extra)
        assert code == 1
        assert ("tag 'version_policy': version policy must be latest:N, all, or version "
                "numbers such as 1,3; was 'garbage'") in err
    pbtxt.write_text("version_policy: { specific { versions: [1, 3] } }\n")
    code, _, err = run("register", "m", str(add_model(4.0)), "--config", str(pbtxt))
    assert code == 1 and "names version folders of a model repository" in err
    assert [v["version"] for v in _json(run, "versions", "m")] == [1]  # type: ignore[index]


def test_import_repo_keeps_a_latest_or_all_policy_as_the_serving_policy_tag(
    run: Run, add_model, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    for version in (1, 2, 3):
        (repo / "mlp" / str(version)).mkdir(parents=True)
        add_model(float(version)).rename(repo / "mlp" / str(version) / "model.onnx")
    (repo / "mlp" / "config.pbtxt").write_text("version_policy: { latest { num_versions: 2 } }\n")
    results = _json(run, "import-repo", str(repo), "--alias", "production")
    assert [r["repository_version"] for r in results] == [2, 3]  # type: ignore[index]
    for version in (1, 2):
        tags = _json(run, "show", f"mlp:{version}")["tags"]  # type: ignore[index]
        assert tags["version_policy"] == "latest:2"  # type: ignore[index]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["register", "../evil", "x.onnx"], "invalid model name '../evil'"),
        (["register", "m", "missing.onnx"], "does not exist or is not a file"),
        (["register", "m", "MODEL", "--metric", "auc"], "--metric needs KEY=VALUE; was 'auc'"),
        (
            ["register", "m", "MODEL", "--metric", "auc=high"],
            "--metric 'auc' must be a finite number",
        ),
        (["show", "nope"], "no model named 'nope'"),
        (["show", "m%2f..%2f"], "URL-encoded"),
        (["alias", "m", "prod"], "give the VERSION the alias should point at"),
    ],
)
def test_errors_exit_1_with_a_message(run: Run, add_model, args: list[str], fragment: str) -> None:
    run("register", "other", str(add_model(2.0)))  # a registry exists: the error is args'
    args = [str(add_model(1.0)) if a == "MODEL" else a for a in args]
    code, _, err = run(*args)
    assert code == 1
    assert err.startswith("error: ")
    assert fragment in err


def test_bad_version_argument_is_a_usage_error(run: Run) -> None:
    with pytest.raises(SystemExit) as info:
        run("archive", "m", "01")
    assert info.value.code == 2


def test_registry_url_option_and_module_entry_point(tmp_path: Path, add_model) -> None:
    db = tmp_path / "elsewhere.db"
    env = {**os.environ, "ENGINE_HOME": str(tmp_path / "home")}
    env.pop("ENGINE_REGISTRY_URL", None)
    base = [sys.executable, "-m", "engine.cli", "models"]
    done = subprocess.run(
        [
            *base,
            "register",
            "m",
            str(add_model(1.0)),
            "--registry-url",
            f"sqlite:///{db}",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["version"] == 1
    assert db.is_file()
    assert not (tmp_path / "home" / "registry.db").exists()
    assert (tmp_path / "home" / "artifacts").is_dir()  # artifacts stay under ENGINE_HOME
    env["ENGINE_REGISTRY_URL"] = f"sqlite:///{db}"
    done = subprocess.run(
        [*base, "list", "--json"], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert [m["name"] for m in json.loads(done.stdout)] == ["m"]


def test_code_revision_auto_outside_git_is_an_error(
    run: Run, add_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = tmp_path / "not-a-checkout"
    outside.mkdir()
    monkeypatch.chdir(outside)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    code, out, err = run("register", "m", str(add_model()), "--code-revision", "auto")
    assert code == 1 and out == ""
    assert err.startswith(
        f"error: --code-revision auto: {str(outside)!r} is not inside a git checkout"
    )
    assert "--code-revision COMMIT" in err
    code, _, _ = run("versions", "m")
    assert code == 1  # nothing was registered


SPEC = {
    "schema_version": 1,
    "inputs": [{"name": "age", "dtype": "float64"}],
    "features": [
        {"name": "age", "column": "age", "steps": [{"op": "standardize", "mean": 1.0, "std": 2.0}]}
    ],
}


def test_register_checks_the_transform_spec(run: Run, add_model, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"x": 1}))
    code, out, err = run("register", "m", str(add_model()), "--transform-spec", str(bad))
    assert code == 1 and out == ""
    assert err.startswith(
        f"error: --transform-spec {str(bad)!r}: transform spec: top level: missing field(s)"
    )
    assert run("versions", "m")[0] == 1  # nothing was registered
    good = tmp_path / "good.json"
    good.write_text(json.dumps(SPEC))
    record = _json(run, "register", "m", str(add_model()), "--transform-spec", str(good))
    assert record["lineage"]["transform_spec"] == SPEC  # type: ignore[index]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (
            ["--data", "DATA", "--data-fingerprint", "sha256:" + "a" * 64],
            "argument --data-fingerprint: not allowed with argument --data",
        ),
        (
            ["--data-fingerprint", "notahash"],
            "--data-fingerprint must be sha256: and 64 lowercase hex digits; was 'notahash'",
        ),
        (["--data-fingerprint", "sha256:abc"], "--data-fingerprint must be sha256: and 64"),
        (["--data-fingerprint", "sha256:" + "A" * 64], "--data-fingerprint must be sha256: and 64"),
        (
            ["--code-revision", "abc\ndef"],
            (
                "--code-revision must not contain control characters (newlines, tabs, escapes); "
                "was 'abc\\ndef'"
            ),
        ),
        (["--created-by", "me\x1b[31m"], "--created-by must not contain control characters"),
        (
            ["--data", "nope.csv"],
            (
                "--data 'nope.csv': No such file or directory; give the training data file, or "
                "its fingerprint with --data-fingerprint"
            ),
        ),
    ],
)
def test_register_refuses_odd_lineage(
    run: Run, add_model, tmp_path: Path, capsys, args: list[str], fragment: str
) -> None:
    data = tmp_path / "train.csv"
    data.write_text("a\n1\n")
    args = [str(data) if a == "DATA" else a for a in args]
    try:
        code, out, err = run("register", "m", str(add_model()), *args)
    except SystemExit as exc:  # argparse: a usage error
        code, (out, err) = exc.code, capsys.readouterr()
        assert code == 2
    else:
        assert code == 1 and err.startswith("error: ")
    assert fragment in err and out == ""
    assert run("versions", "m")[0] == 1  # nothing was registered


def test_register_keeps_a_well_formed_fingerprint(run: Run, add_model) -> None:
    fingerprint = "sha256:" + "0123456789abcdef" * 4
    record = _json(run, "register", "m", str(add_model()), "--data-fingerprint", fingerprint)
    assert record["lineage"]["data_fingerprint"] == fingerprint  # type: ignore[index]


def test_gc_refuses_a_negative_age(run: Run, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        run("gc", "--min-age-s", "-5")
    assert info.value.code == 2
    assert "argument --min-age-s: must be >= 0 seconds; was '-5'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command",
    [["list"], ["show", "m"], ["versions", "m"], ["lineage", "m"], ["alias", "m", "prod", "1"],
     ["archive", "m", "1"], ["delete", "m", "1"], ["gc"]],
)
def test_commands_that_do_not_register_refuse_a_missing_registry(
    run: Run, tmp_path: Path, command: list[str]
) -> None:
    """A mistyped --home is said, and not created: only register and import-repo create one."""
    code, out, err = run(*command)
    database = tmp_path / "home" / "registry.db"
    assert (code, out) == (1, "")
    assert f"there is no registry database '{database}', so nothing is registered there" in err
    assert not database.exists()


def test_gc_claims_a_store_filled_before_registries_were_recorded(
    run: Run, add_model, tmp_path: Path
) -> None:
    import shutil

    assert run("register", "m", str(add_model()))[0] == 0
    shutil.rmtree(tmp_path / "home" / "artifacts" / "registries")  # as an older engine left it
    code, _, err = run("gc")
    assert code == 1 and "claim it with 'engine models gc --claim-store'" in err
    assert run("gc", "--claim-store") == (0, "removed 0 file(s)\n", "")
    assert run("gc") == (0, "removed 0 file(s)\n", "")


def test_missing_blob_names_the_shared_store_options(run: Run, add_model, tmp_path: Path) -> None:
    from engine.errors import ModelLoadError
    from engine.registry import Registry

    record = _json(run, "register", "m", str(add_model()))
    home = tmp_path / "home"
    blob = home / "artifacts" / "sha256" / record["sha256"][:2] / record["sha256"]  # type: ignore[index]
    blob.unlink()
    with Registry(home=home) as registry, pytest.raises(ModelLoadError) as info:
        registry.resolve("m:1")
    assert str(info.value).endswith(
        "re-register the model (or, if the registry keeps its artifacts in a shared store, pass "
        "--artifacts-url or set ENGINE_ARTIFACTS_URL)"
    )


def test_stdout_closed_early_exits_quietly(tmp_path: Path, add_model) -> None:
    """`engine models show m:1 | head -1`: the reader goes away; no "Broken pipe" error."""
    home = tmp_path / "home"
    assert main(["models", "register", "m", str(add_model()), "--home", str(home)]) == 0
    env = {**os.environ, "ENGINE_HOME": str(home)}
    env.pop("ENGINE_REGISTRY_URL", None)
    env.pop("ENGINE_ARTIFACTS_URL", None)
    read_end, write_end = os.pipe()
    os.close(read_end)  # closed before the command writes a byte
    try:
        done = subprocess.run(
            [sys.executable, "-m", "engine.cli", "models", "show", "m:1"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)
    assert done.stderr == ""
    assert done.returncode == 141  # 128 + SIGPIPE, as `seq 100000 | head -1` reports for seq


def test_show_says_when_the_parent_is_no_longer_registered(run: Run, add_model) -> None:
    run("register", "m", str(add_model(1.0)))
    run("register", "m", str(add_model(2.0)), "--parent", "m:1")
    code, out, _ = run("show", "m:2")
    assert code == 0 and re.search(r"^parent: +m:1$", out, re.MULTILINE), out
    assert run("delete", "m", "1")[0] == 0
    code, out, _ = run("show", "m:2")
    assert code == 0 and re.search(r"^parent: +m:1 \(no longer registered\)$", out, re.MULTILINE), out


def test_show_cuts_long_values_that_json_keeps_whole(run: Run, add_model) -> None:
    profile = "x" * 5000  # as a trained model's reference profile in its params
    run("register", "m", str(add_model(1.0)), "--param", f"profile={profile}", "--param", "k=1")
    code, out, _ = run("show", "m:1")
    line = next(line for line in out.splitlines() if line.startswith("params:"))
    assert code == 0 and len(line) < 300, line
    assert "... (5000 characters; --json shows all), k=1" in line
    assert _json(run, "show", "m:1")["params"]["profile"] == profile  # type: ignore[index]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (
            ["--description", "two\nlines"],
            (
                "--description must not contain control characters (newlines, tabs, escapes); "
                "was 'two\\nlines'"
            ),
        ),
        (["--tag", "te\tam=risk"], "--tag key must not contain control characters"),
        (
            ["--tag", "team=ri\x1b[31msk"],
            "the value of --tag 'team' must not contain control characters",
        ),
        (["--param", "de\npth=4"], "--param key must not contain control characters"),
        (["--metric", "a\nuc=0.9"], "--metric key must not contain control characters"),
    ],
)
def test_register_refuses_control_characters_in_shown_text(
    run: Run, add_model, args: list[str], fragment: str
) -> None:
    """A newline or escape in these would break the one-line tables and `show` lines."""
    code, out, err = run("register", "m", str(add_model()), *args)
    assert (code, out) == (1, "") and err.startswith("error: ")
    assert fragment in err
    assert run("versions", "m")[0] == 1  # nothing was registered


@pytest.mark.parametrize(
    ("param", "fragment"),
    [
        ("x=NaN", "error: --param x=NaN: NaN and infinite numbers cannot be stored"),
        ("x=-Infinity", "error: --param x=-Infinity: NaN and infinite numbers cannot be stored"),
        ("z=1e999", "error: --param z=1e999: NaN and infinite numbers cannot be stored"),
        ("y=[1, NaN]", "error: --param y=[1, NaN]: NaN and infinite numbers cannot be stored"),
        ("x=" + "[" * 1000 + "]" * 1000, "error: --param x: the value nests more than 100 levels"),
        ("x=" + "[" * 101 + "]" * 101, "error: --param x: the value nests more than 100 levels"),
    ],
)
def test_register_names_the_param_it_refuses(
    run: Run, add_model, param: str, fragment: str
) -> None:
    code, out, err = run("register", "m", str(add_model()), "--param", param)
    assert (code, out) == (1, "")
    assert err.startswith(fragment), err
    assert "Traceback" not in err
    assert run("versions", "m")[0] == 1  # nothing was registered


def test_register_keeps_a_param_nested_100_levels(run: Run, add_model) -> None:
    value = "[" * 100 + "]" * 100
    record = _json(run, "register", "m", str(add_model()), "--param", f"x={value}")
    assert json.dumps(record["params"]["x"], separators=(",", ":")) == value  # type: ignore[index]


@pytest.mark.parametrize(
    "version", ["\u0661", "\uff11", "1\n", " 1", "+1", "0", "01", "-1", "1.0", "1_0"]
)
def test_version_argument_takes_only_ascii_digits(
    run: Run, add_model, capsys, version: str
) -> None:
    run("register", "u", str(add_model()))
    with pytest.raises(SystemExit) as info:
        run("delete", "u", version)
    assert info.value.code == 2
    assert (
        f"version must be a positive integer in ASCII digits 0-9 without leading zeros; "
        f"was {version!r}" in capsys.readouterr().err
    )
    assert _json(run, "show", "u:1")["version"] == 1  # type: ignore[index]


@pytest.mark.parametrize("version", ["2147483648", "9999999999", "99999999999", "1" * 40])
def test_version_argument_out_of_range_names_the_bound(run: Run, capsys, version: str) -> None:
    with pytest.raises(SystemExit) as info:
        run("delete", "m", version)
    assert info.value.code == 2
    assert f"version must be in [1, 2147483647]; was {version}" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command",
    [
        ["archive", "m:1", "1"],
        ["delete", "m:1", "1"],
        ["alias", "m:1", "production", "1"],
        ["alias", "m:1", "production", "--delete"],
        ["versions", "m:1"],
    ],
)
def test_commands_taking_a_name_refuse_an_invalid_one(
    run: Run, add_model, command: list[str]
) -> None:
    run("register", "m", str(add_model()))
    code, out, err = run(*command)
    assert (code, out) == (1, "")
    assert err.startswith("error: invalid model name 'm:1': character ':' is not allowed"), err


def test_show_prints_params_as_compact_json(run: Run, add_model) -> None:
    run(
        "register",
        "m",
        str(add_model()),
        *("--param", "x=[1, 2]", "--param", 'y={"a": 1}', "--param", "n=null"),
        *("--param", "kind=gbm", "--param", 's="4"', "--param", "t=a\nb", "--param", "e="),
    )
    code, out, _ = run("show", "m:1")
    line = next(line for line in out.splitlines() if line.startswith("params:"))
    assert code == 0
    # What is shown is what --param takes: a string --param would read as JSON is quoted.
    assert line.split(None, 1)[1] == 'x=[1,2], y={"a":1}, n=null, kind=gbm, s="4", t="a\\nb", e='
    params = _json(run, "show", "m:1")["params"]  # type: ignore[index]
    assert params == {
        "x": [1, 2],
        "y": {"a": 1},
        "n": None,
        "kind": "gbm",
        "s": "4",
        "t": "a\nb",
        "e": "",
    }


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (
            ["--created-by", ""],
            "--created-by must not be empty; was ''; leave the option out to record the OS user",
        ),
        (["--created-by", "  "], "--created-by must not be empty; was '  '"),
        (
            ["--metric", "acc=0.9", "--metric", "acc=0.8"],
            "--metric 'acc' is given twice ('0.9', then '0.8'); give each key once",
        ),
        (["--param", "k=1", "--param", "k=2"], "--param 'k' is given twice ('1', then '2')"),
        (["--tag", "t=a", "--tag", "t=a"], "--tag 't' is given twice ('a', then 'a')"),
        (
            ["--metric", "a=1_000"],
            (
                "--metric 'a' must be a finite number such as 0.93, -2 or 1e-3 (ASCII digits, no "
                "'_'); was '1_000'"
            ),
        ),
        (["--metric", "a=nan"], "--metric 'a' must be a finite number such as 0.93"),
        (["--metric", "a=inf"], "--metric 'a' must be a finite number such as 0.93"),
        (["--metric", "a=1e999"], "--metric 'a' must be a finite number such as 0.93"),
        (["--metric", "a=\u0661"], "--metric 'a' must be a finite number such as 0.93"),
        (["--metric", "a= 1"], "--metric 'a' must be a finite number such as 0.93"),
        (["--metric", "a="], "--metric 'a' must be a finite number such as 0.93"),
    ],
)
def test_register_refuses_what_it_would_silently_change(
    run: Run, add_model, args: list[str], fragment: str
) -> None:
    code, out, err = run("register", "m", str(add_model()), *args)
    assert (code, out) == (1, "") and err.startswith("error: ")
    assert fragment in err, err
    assert run("versions", "m")[0] == 1  # nothing was registered


@pytest.mark.parametrize("metric", ["1", "-2", "+0.5", "1.", ".5", "1e-3", "2E+2"])
def test_register_takes_decimal_metrics(run: Run, add_model, metric: str) -> None:
    record = _json(run, "register", "m", str(add_model()), "--metric", f"a={metric}")
    assert record["metrics"] == {"a": float(metric)}  # type: ignore[index]


def test_json_file_errors_name_the_option(run: Run, add_model, tmp_path: Path) -> None:
    code, out, err = run("register", "m", str(add_model()), "--transform-spec", "nosuch.json")
    assert (code, out) == (1, "")
    assert err.startswith(
        "error: --transform-spec 'nosuch.json': cannot read: No such file or directory"
    ), err
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100000 + "]" * 100000)
    code, _, err = run("register", "m", str(add_model()), "--transform-spec", str(deep))
    assert code == 1 and err.startswith(f"error: --transform-spec {str(deep)!r}: "), err
    assert "nested too deeply" in err
    broken = tmp_path / "broken.json"
    broken.write_text("{oops")
    code, _, err = run("register", "m", str(add_model()), "--config", str(broken))
    assert code == 1 and err.startswith(f"error: --config {str(broken)!r}: not JSON: "), err
    listed = tmp_path / "list.json"
    listed.write_text("[]")
    code, _, err = run("register", "m", str(add_model()), "--config", str(listed))
    assert code == 1
    assert f"error: --config {str(listed)!r} must hold a JSON object of ModelConfig fields" in err
    assert run("versions", "m")[0] == 1  # nothing was registered
