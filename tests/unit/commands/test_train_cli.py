"""`engine train EXAMPLE`: one command from data to a registered, servable version."""

from __future__ import annotations

import json
import os
import stat

import pytest
from engine.training.examples import EXAMPLES
from engine.training.families import FAMILIES

from engine.cli import main
from engine.commands import train as train_command
from engine.registry import Registry


def test_choices_match_the_training_package() -> None:
    assert set(train_command.EXAMPLE_NAMES) == set(EXAMPLES)
    assert tuple(train_command.FAMILY_NAMES) == FAMILIES


def test_train_registers_and_prints_the_reference(tmp_path, capsys) -> None:
    home = tmp_path / "home"
    code = main(
        [
            "train",
            "regression-demo",
            "--rows",
            "200",
            "--family",
            "linear",
            "--home",
            str(home),
            "--alias",
            "production",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "trained linear (sklearn); validation rmse=" in printed
    assert "registered regression-demo:1 (alias production)" in printed
    assert printed.rstrip().endswith("serve it with: regression-demo@production")
    with Registry(home=home) as registry:
        version = registry.get("regression-demo@production")
    assert {"rmse", "mae", "r2", "parity_max_abs_error"} <= set(version.metrics)
    assert version.lineage.data_fingerprint.startswith("sha256:")


def test_train_json_without_registering(tmp_path, capsys) -> None:
    code = main(
        [
            "train",
            "tabular-demo",
            "--rows",
            "200",
            "--family",
            "linear",
            "--no-register",
            "--out-dir",
            str(tmp_path),
            "--json",
        ]
    )
    assert code == 0
    outcome = json.loads(capsys.readouterr().out)
    assert outcome["version"] is None and outcome["export"]["parity"]["passed"] is True
    assert (tmp_path / "model.onnx").is_file()


def test_train_bad_arguments_exit_1(tmp_path, capsys) -> None:
    assert main(["train", "tabular-demo", "--no-register"]) == 1
    assert "error: a run that neither registers nor has an out_dir" in capsys.readouterr().err
    assert (
        main(
            [
                "train",
                "tabular-demo",
                "--no-register",
                "--alias",
                "production",
                "--out-dir",
                str(tmp_path),
            ]
        )
        == 1
    )
    assert "--alias needs registration" in capsys.readouterr().err


def test_train_bad_name_or_alias_fails_before_any_work(tmp_path, capsys) -> None:
    home = tmp_path / "home"
    for option, value, message in (
        ("--name", "../evil", "error: invalid model name '../evil': must not contain a path"),
        ("--alias", "prod/1", "error: invalid alias 'prod/1': must not contain a path"),
        ("--alias", "latest", "error: alias 'latest' is reserved"),
        ("--alias", "2", "error: alias '2' is a number, which reads as a version"),
    ):
        code = main(
            ["train", "tabular-demo", option, value, "--home", str(home), "--out-dir", str(home)]
        )
        assert code == 1
        out, err = capsys.readouterr()
        assert err.startswith(message) and "Traceback" not in err
        assert out == ""  # no "data: ..." progress line: nothing was trained
    assert not home.exists()  # no registry, no out-dir artifacts


def _train(home, *extra: str) -> list[str]:
    return ["train", "diabetes-demo", "--rows", "120", "--home", str(home), *extra]


def test_retrains_record_their_parent(tmp_path, capsys) -> None:
    """A retrain under an existing name records the newest version as its parent (archived
    ones count: they are the training before); --parent names another, --no-parent none."""
    home = tmp_path / "home"
    for _ in range(3):
        assert main(_train(home)) == 0
    assert "parent diabetes-demo:2" in capsys.readouterr().out.splitlines()[-2]
    assert main(["models", "archive", "diabetes-demo", "3", "--home", str(home)]) == 0
    capsys.readouterr()
    assert main(_train(home, "--json")) == 0
    outcome = json.loads(capsys.readouterr().out)
    assert outcome["lineage"]["parent"] == "diabetes-demo:3"
    assert main(_train(home, "--parent", "diabetes-demo:1")) == 0
    assert main(_train(home, "--no-parent")) == 0
    with Registry(home=home) as registry:
        parents = [v.lineage.parent for v in registry.versions("diabetes-demo")]
        chain = [v.ref for v in registry.lineage("diabetes-demo:4")]
    assert parents == [
        None,
        "diabetes-demo:1",
        "diabetes-demo:2",
        "diabetes-demo:3",
        "diabetes-demo:1",
        None,
    ]
    assert chain == [f"diabetes-demo:{v}" for v in (4, 3, 2, 1)]


def test_bad_parent_fails_before_any_work(tmp_path, capsys) -> None:
    home = tmp_path / "home"
    for parent, message in (
        ("nope:1", "error: no model named 'nope'"),
        ("diabetes-demo", "error: lineage parent must name an exact version as name:VERSION"),
    ):
        assert main(_train(home, "--parent", parent)) == 1
        out, err = capsys.readouterr()
        assert err.startswith(message) and out == ""  # nothing was trained
    code = main(_train(home, "--parent", "x:1", "--no-register", "--out-dir", str(tmp_path)))
    assert code == 1
    assert "error: --parent needs registration" in capsys.readouterr().err


def test_train_registers_into_a_shared_artifact_store(tmp_path, capsys) -> None:
    home, store = tmp_path / "home", tmp_path / "shared-store"
    args = ["train", "regression-demo", "--rows", "200", "--family", "linear"]
    code = main([*args, "--home", str(home), "--artifacts-url", store.as_uri()])
    assert code == 0, capsys.readouterr().err
    capsys.readouterr()
    blobs = [p.name for p in (store / "sha256").rglob("*") if p.is_file()]
    with Registry(home=home, artifacts_url=store.as_uri()) as registry:
        assert blobs == [registry.get("regression-demo:1").sha256]
    assert not (home / "artifacts").exists()  # nothing in the home's own store


def test_train_json_without_out_dir_gives_no_paths(tmp_path, capsys) -> None:
    """Without --out-dir the files were in a temporary folder, gone when the command ends."""
    args = ["train", "regression-demo", "--rows", "100", "--family", "linear", "--json"]
    assert main([*args, "--home", str(tmp_path / "home")]) == 0
    outcome = json.loads(capsys.readouterr().out)
    assert outcome["export"]["path"] is None and outcome["profile_path"] is None
    assert outcome["version"]["name"] == "regression-demo"
    out_dir = tmp_path / "out"
    assert main([*args, "--no-register", "--out-dir", str(out_dir)]) == 0
    outcome = json.loads(capsys.readouterr().out)
    assert outcome["export"]["path"] == str(out_dir / "model.onnx")
    assert outcome["profile_path"] == str(out_dir / "profile.json")


def test_train_unreachable_registry_fails_before_training(tmp_path, capsys) -> None:
    url = "postgresql://u:p@127.0.0.1:1/db"  # nothing listens on port 1
    out_dir = tmp_path / "out"
    args = ["train", "regression-demo", "--rows", "100", "--family", "linear"]
    assert main([*args, "--registry-url", url, "--out-dir", str(out_dir)]) == 1
    out, err = capsys.readouterr()
    assert err.startswith("error: registry database 'postgresql+psycopg://u:***@127.0.0.1:1/db'")
    assert out == "" and not out_dir.exists()  # no "data: ..." line: nothing was trained


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--rows", "-5"],
            "--rows must be at least 20 (enough to split and train every family); was -5",
        ),
        (["--rows", "0"], "--rows must be at least 20"),
        (["--rows", "5"], "--rows must be at least 20"),
        (
            ["--rows", "1000000000"],
            (
                "--rows must be at most 1000000 (the examples make their data in memory); "
                "was 1000000000"
            ),
        ),
        (["--seed", "-1"], "--seed must be between 0 and 4294967295; was -1"),
        (["--valid-fraction", "1"], "--valid-fraction must be between 0 and 1, e.g. 0.25; was 1.0"),
        (["--epochs", "0"], "--epochs must be at least 1; was 0"),
    ],
)
def test_train_option_ranges_are_checked_first(tmp_path, capsys, args, message) -> None:
    home = tmp_path / "home"
    assert main(["train", "tabular-demo", *args, "--home", str(home)]) == 1
    out, err = capsys.readouterr()
    assert err.startswith(f"error: {message}") and out == ""
    assert not home.exists()


def test_train_out_dir_that_is_a_file(tmp_path, capsys) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out_dir in (afile, afile / "sub"):
        code = main(["train", "tabular-demo", "--no-register", "--out-dir", str(out_dir)])
        assert code == 1
        out, err = capsys.readouterr()
        assert err.startswith(
            f"error: --out-dir {str(out_dir)!r}: {str(afile)!r} is a file, not a folder"
        )
        assert out == ""


def test_train_writes_files_others_can_read(tmp_path, capsys) -> None:
    out_dir = tmp_path / "out"
    args = ["train", "regression-demo", "--rows", "100", "--family", "linear", "--no-register"]
    old = os.umask(0o022)
    try:
        assert main([*args, "--out-dir", str(out_dir)]) == 0
    finally:
        os.umask(old)
    printed = capsys.readouterr().out
    for name in ("model.onnx", "profile.json"):
        assert stat.S_IMODE((out_dir / name).stat().st_mode) == 0o644, name
    # The opsets the file imports, not the --opset ceiling (18).
    assert "(opset 11 for the default domain, ai.onnx.ml 1); parity on" in printed


def test_a_failed_training_leaves_no_empty_out_dir(tmp_path, capsys) -> None:
    # Too few rows of a class to stratify the split: the run fails after it made --out-dir's
    # folders and before it wrote anything there. They go again; a folder that existed stays.
    out_dir = tmp_path / "made" / "out"
    args = ["train", "tabular-demo", "--rows", "20", "--valid-fraction", "0.05", "--no-register"]
    assert main([*args, "--out-dir", str(out_dir)]) == 1
    assert capsys.readouterr().err.startswith(
        "error: a validation share of 0.05 of 20 rows holds out 1 of them and trains on the "
        "other 19; each part needs a row of each of the 2 classes"
    )
    assert not (tmp_path / "made").exists()
    assert tmp_path.exists()
