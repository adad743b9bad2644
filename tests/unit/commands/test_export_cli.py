"""`engine export sklearn|torch`: the artifact is written, validated and reported; failures
exit 1 with a message saying what to change."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import joblib
import numpy as np
import pytest
from engine.training.datasets import split, synthetic_customers
from engine.training.pipeline import train_tabular

import engine
from engine.cli import main


@pytest.fixture(scope="module")
def customer_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(model.joblib, sample.csv) of a fitted pipeline over numeric + categorical columns."""
    folder = tmp_path_factory.mktemp("sk")
    train, valid = split(synthetic_customers(300, seed=0), 0.25, seed=0)
    trained = train_tabular(train, "random_forest", seed=0, sklearn_params={"n_estimators": 5})
    joblib.dump(trained.model, folder / "model.joblib")
    valid.features.to_csv(folder / "sample.csv", index=False)
    return folder / "model.joblib", folder / "sample.csv"


def test_export_sklearn_table_model(customer_model, tmp_path, capsys) -> None:
    model, sample = customer_model
    out = tmp_path / "model.onnx"
    assert main(["export", "sklearn", str(model), "--sample", str(sample), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    # skl2onnx writes the lowest opset its operators need, below --opset's default 18.
    assert f"wrote {out} (sklearn, opset 11 for the default domain, ai.onnx.ml 1)" in printed
    assert "input  region: string [-1, 1]" in printed
    assert "parity on 75 sample rows (atol 0.0001, rtol 0.001): max abs error" in printed
    with engine.load(out) as loaded:
        assert [t.name for t in loaded.outputs] == ["label", "probabilities"]


def test_export_sklearn_array_model_with_names_and_json(tmp_path, capsys) -> None:
    from sklearn.linear_model import LogisticRegression

    x = np.random.default_rng(0).normal(size=(50, 4))
    joblib.dump(LogisticRegression().fit(x, x[:, 0] > 0), tmp_path / "m.joblib")
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "m.onnx"
    code = main(
        [
            "export",
            "sklearn",
            str(tmp_path / "m.joblib"),
            "--sample",
            str(tmp_path / "x.npy"),
            "--out",
            str(out),
            "--input-names",
            "features",
            "--output-names",
            "cls,proba",
            "--opset",
            "17",
            "--no-dynamic-batch",
            "--json",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["opset"] == 17 and result["parity"]["passed"] is True
    assert result["inputs"] == [{"name": "features", "dtype": "float32", "shape": [50, 4]}]
    assert [o["name"] for o in result["outputs"]] == ["cls", "proba"]


def test_export_sklearn_unsupported_model(tmp_path, capsys) -> None:
    from sklearn.kernel_ridge import KernelRidge

    x = np.random.default_rng(0).normal(size=(20, 2))
    joblib.dump(KernelRidge().fit(x, x[:, 0]), tmp_path / "kr.joblib")
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "kr.onnx"
    assert (
        main(
            [
                "export",
                "sklearn",
                str(tmp_path / "kr.joblib"),
                "--sample",
                str(tmp_path / "x.npy"),
                "--out",
                str(out),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert (
        "error: step 'model' (sklearn.kernel_ridge.KernelRidge) has no ONNX converter in skl2onnx"
    ) in err
    assert not out.exists()


def test_export_sklearn_sample_with_wrong_columns(customer_model, tmp_path, capsys) -> None:
    import pandas as pd

    model, sample = customer_model
    pd.read_csv(sample).drop(columns=["plan"]).to_csv(tmp_path / "bad.csv", index=False)
    assert (
        main(
            [
                "export",
                "sklearn",
                str(model),
                "--sample",
                str(tmp_path / "bad.csv"),
                "--out",
                str(tmp_path / "m.onnx"),
            ]
        )
        == 1
    )
    assert "missing ['plan'], unexpected []" in capsys.readouterr().err


def test_export_sklearn_tolerance_failure(tmp_path, capsys) -> None:
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    # float64 scikit-learn against float32 ONNX: never bit-identical, so atol=rtol=0 fails.
    x = np.random.default_rng(0).normal(size=(64, 8)) * 100
    model = MLPRegressor(hidden_layer_sizes=(64,), max_iter=20, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a deliberately short fit
        model.fit(x, x.sum(axis=1))
    joblib.dump(model, tmp_path / "mlp.joblib")
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "mlp.onnx"
    assert (
        main(
            [
                "export",
                "sklearn",
                str(tmp_path / "mlp.joblib"),
                "--sample",
                str(tmp_path / "x.npy"),
                "--out",
                str(out),
                "--atol",
                "0",
                "--rtol",
                "0",
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "error: parity check failed at atol=0 rtol=0 on 64 rows: variable:" in err
    assert not out.exists()


def _write_module(folder: Path, name: str) -> None:
    (folder / f"{name}.py").write_text(
        "import torch\n"
        "def make():\n"
        "    torch.manual_seed(0)\n"
        "    return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(),"
        " torch.nn.Linear(8, 2))\n"
    )


def test_export_torch_module_path_with_state_dict(tmp_path, monkeypatch, capsys) -> None:
    import torch

    _write_module(tmp_path, "cli_torch_net_a")
    monkeypatch.syspath_prepend(str(tmp_path))
    torch.manual_seed(1)
    weights = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    torch.save({"state_dict": weights.state_dict()}, tmp_path / "ckpt.pt")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(10, 3)))
    out = tmp_path / "net.onnx"
    code = main(
        [
            "export",
            "torch",
            "cli_torch_net_a:make",
            "--state-dict",
            str(tmp_path / "ckpt.pt"),
            "--sample",
            str(tmp_path / "x.npy"),
            "--out",
            str(out),
            "--input-names",
            "x",
            "--output-names",
            "logits",
            "--json",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["inputs"] == [{"name": "x", "dtype": "float32", "shape": [-1, 3]}]
    assert result["outputs"] == [{"name": "logits", "dtype": "float32", "shape": [-1, 2]}]
    x = np.random.default_rng(5).normal(size=(7, 3)).astype(np.float32)
    with engine.load(out) as loaded:
        got = loaded.predict({"x": x})["logits"]
    with torch.no_grad():
        np.testing.assert_allclose(got, weights(torch.from_numpy(x)).numpy(), atol=1e-5)


def test_export_torch_exported_program_file(tmp_path, capsys) -> None:
    import torch

    module = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Tanh())
    example = torch.zeros(4, 3)
    program = torch.export.export(
        module, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},)
    )
    torch.export.save(program, tmp_path / "m.pt2")
    np.savez(tmp_path / "s.npz", features=np.ones((4, 3), np.float32))
    assert (
        main(
            [
                "export",
                "torch",
                str(tmp_path / "m.pt2"),
                "--sample",
                str(tmp_path / "s.npz"),
                "--out",
                str(tmp_path / "m.onnx"),
            ]
        )
        == 0
    )
    assert "input  features: float32 [-1, 3]" in capsys.readouterr().out


def test_export_torch_errors_exit_1(tmp_path, capsys) -> None:
    np.save(tmp_path / "x.npy", np.ones((4, 3)))
    assert (
        main(
            [
                "export",
                "torch",
                "no_such_module_q:make",
                "--sample",
                str(tmp_path / "x.npy"),
                "--out",
                str(tmp_path / "m.onnx"),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "error: cannot import 'no_such_module_q'" in err
    # The console script's sys.path starts at its own folder, not the current directory.
    assert "run it as 'PYTHONPATH=. engine export torch ...'" in err


@pytest.fixture
def array_model(tmp_path) -> tuple[Path, Path]:
    """(model.joblib, x.npy): a LogisticRegression fitted on a plain 4-column array."""
    from sklearn.linear_model import LogisticRegression

    x = np.random.default_rng(0).normal(size=(20, 4))
    joblib.dump(LogisticRegression().fit(x, x[:, 0] > 0), tmp_path / "m.joblib")
    np.save(tmp_path / "x.npy", x)
    return tmp_path / "m.joblib", tmp_path / "x.npy"


def _export(capsys, *args: str) -> tuple[int, str]:
    code = main(["export", *args])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("bad.npy", b"not an array", "is not a plain NumPy .npy file: it is corrupt or holds"),
        ("empty.npy", b"", "cannot read sample file '{path}' as .npy: EOFError"),
        ("bad.npz", b"PK\x03\x04junk", "cannot read sample file '{path}' as .npz: BadZipFile"),
        ("empty.csv", b"", "cannot read sample file '{path}' as .csv: EmptyDataError"),
        ("bad.parquet", b"junk", "cannot read sample file '{path}' as .parquet: ArrowInvalid"),
    ],
)
def test_export_unreadable_sample_exits_1_naming_it(
    array_model, tmp_path, capsys, name, content, fragment
) -> None:
    model, _ = array_model
    sample, out = tmp_path / name, tmp_path / "m.onnx"
    sample.write_bytes(content)
    code, err = _export(capsys, "sklearn", str(model), "--sample", str(sample), "--out", str(out))
    assert code == 1
    assert err.startswith("error: ") and fragment.format(path=sample) in err
    assert not out.exists()


def test_export_out_folder_fails_before_any_work(array_model, tmp_path, capsys) -> None:
    model, sample = array_model
    folder = tmp_path / "exports"
    folder.mkdir()
    for framework, spec in (("sklearn", str(model)), ("torch", "no_such_module_q:make")):
        code, err = _export(capsys, framework, spec, "--sample", str(sample), "--out", str(folder))
        assert code == 1
        # torch's module is never imported: --out is checked first.
        assert f"error: --out {str(folder)!r} is a folder; give the ONNX file to write" in err
    assert list(folder.iterdir()) == []


def test_export_torch_user_code_that_raises(tmp_path, monkeypatch, capsys) -> None:
    (tmp_path / "cli_torch_net_boom.py").write_text(
        "def boom():\n    raise RuntimeError('constructor failed')\n"
    )
    (tmp_path / "cli_torch_net_broken.py").write_text("raise KeyError('at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    np.save(tmp_path / "x.npy", np.ones((4, 3)))
    common = ["--sample", str(tmp_path / "x.npy"), "--out", str(tmp_path / "m.onnx")]
    code, err = _export(capsys, "torch", "cli_torch_net_boom:boom", *common)
    assert code == 1
    assert err.startswith(
        "error: cli_torch_net_boom:boom() raised RuntimeError: constructor failed (in your code"
    )
    code, err = _export(capsys, "torch", "cli_torch_net_broken:make", *common)
    assert code == 1
    assert "error: importing 'cli_torch_net_broken' raised KeyError: 'at import'" in err
    # --debug: the user's own traceback, as the cause of the ExportError.
    from engine.errors import ExportError

    with pytest.raises(ExportError) as info:
        main(["--debug", "export", "torch", "cli_torch_net_boom:boom", *common])
    assert isinstance(info.value.__cause__, RuntimeError)


def test_export_torch_corrupt_pt2_is_named(tmp_path, capsys) -> None:
    (tmp_path / "m.pt2").write_bytes(b"not a zip")
    np.save(tmp_path / "x.npy", np.ones((4, 3)))
    code, err = _export(
        capsys,
        "torch",
        str(tmp_path / "m.pt2"),
        "--sample",
        str(tmp_path / "x.npy"),
        "--out",
        str(tmp_path / "m.onnx"),
    )
    assert code == 1
    assert f"error: {str(tmp_path / 'm.pt2')!r} is not a .pt2 archive (not a zip file)" in err


def test_export_sklearn_bare_estimator_fitted_on_a_dataframe(tmp_path, capsys) -> None:
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    frame["flag"] = rng.random(200) < 0.5
    joblib.dump(LogisticRegression().fit(frame, (frame.a > 0).astype(int)), tmp_path / "m.joblib")
    frame.to_parquet(tmp_path / "s.parquet")
    out = tmp_path / "m.onnx"
    sample = tmp_path / "s.parquet"
    code = main(
        [
            "export",
            "sklearn",
            str(tmp_path / "m.joblib"),
            "--sample",
            str(sample),
            "--out",
            str(out),
        ]
        + ["--json"]
    )
    printed = capsys.readouterr()
    assert code == 0, printed.err
    result = json.loads(printed.out)
    assert result["parity"]["passed"] is True
    assert [(i["name"], i["dtype"]) for i in result["inputs"]] == [
        ("a", "float32"),
        ("b", "float32"),
        ("c", "float32"),
        ("flag", "bool"),
    ]


@pytest.mark.slow  # a process of its own: torch is imported again
def test_export_torch_unexportable_model_prints_one_line(tmp_path) -> None:
    """torch.export prints the partial graph of a model it cannot capture and logs a warning
    through its own stderr handlers: none of it reaches the user without --debug."""
    import subprocess
    import sys

    (tmp_path / "cli_torch_net_datadep.py").write_text(
        "import torch\n"
        "class DataDep(torch.nn.Module):\n"
        "    def forward(self, x):\n"
        "        if x.sum() > 0:\n"
        "            return x * 2\n"
        "        return x - 1\n"
    )
    np.save(tmp_path / "x.npy", np.ones((8, 3), np.float32))
    args = ["export", "torch", "cli_torch_net_datadep:DataDep", "--sample", str(tmp_path / "x.npy")]
    args += ["--out", str(tmp_path / "m.onnx")]
    # A process of its own: torch's log handlers hold the real stderr, which pytest's capture
    # would not see.
    done = subprocess.run(
        [sys.executable, "-m", "engine.cli", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 1 and done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: torch.onnx failed while capturing the model")
    assert not (tmp_path / "m.onnx").exists()


def test_export_torch_unexportable_model_details_under_debug(tmp_path, monkeypatch) -> None:
    from engine.errors import ExportError

    (tmp_path / "cli_torch_net_datadep2.py").write_text(
        "import torch\n"
        "class DataDep(torch.nn.Module):\n"
        "    def forward(self, x):\n"
        "        return x * 2 if x.sum() > 0 else x - 1\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    np.save(tmp_path / "x.npy", np.ones((8, 3), np.float32))
    args = [
        "export",
        "torch",
        "cli_torch_net_datadep2:DataDep",
        "--sample",
        str(tmp_path / "x.npy"),
    ]
    with pytest.raises(ExportError) as info:
        main(["--debug", *args, "--out", str(tmp_path / "m.onnx")])
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert notes.startswith("torch's output while exporting:") and "def forward" in notes


def _opset_imports(path: Path) -> list[tuple[str, int]]:
    import onnx

    return sorted((o.domain, o.version) for o in onnx.load(str(path)).opset_import)


def test_export_reports_the_opsets_the_file_imports(array_model, customer_model, tmp_path, capsys):
    """--opset is the highest the converter may use: the file's own opsets are reported, and a
    domain skl2onnx lists twice is written once."""
    model, sample = array_model
    out = tmp_path / "array.onnx"
    assert main(["export", "sklearn", str(model), "--sample", str(sample), "--out", str(out)]) == 0
    assert f"wrote {out} (sklearn, opset 18 for the default domain, ai.onnx.ml 1)" in (
        capsys.readouterr().out
    )
    assert _opset_imports(out) == [("", 18), ("ai.onnx.ml", 1)]  # not ("", 18) twice
    with engine.load(out) as loaded:
        assert loaded.predict({"input": np.load(sample).astype(np.float32)})["label"].shape == (20,)

    table_model, table_sample = customer_model
    out = tmp_path / "table.onnx"
    args = ["sklearn", str(table_model), "--sample", str(table_sample), "--out", str(out)]
    assert main(["export", *args, "--opset", "7", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert _opset_imports(out) == [("", 5), ("ai.onnx.ml", 1)]
    assert result["opset"] == 5 and result["opsets"] == {"": 5, "ai.onnx.ml": 1}
    assert result["parity"]["passed"] is True


def test_export_writes_files_others_can_read(array_model, tmp_path, capsys) -> None:
    model, sample = array_model
    out = tmp_path / "m.onnx"
    old = os.umask(0o022)
    try:
        code = main(["export", "sklearn", str(model), "--sample", str(sample), "--out", str(out)])
    finally:
        os.umask(old)
    assert code == 0, capsys.readouterr().err
    assert stat.S_IMODE(out.stat().st_mode) == 0o644  # 0o666 less the umask, not mkstemp's 0o600


def test_export_unfitted_estimator_says_so(tmp_path, capsys) -> None:
    from sklearn.linear_model import LogisticRegression

    joblib.dump(LogisticRegression(), tmp_path / "unfitted.joblib")
    np.save(tmp_path / "x.npy", np.ones((4, 3)))
    out = tmp_path / "m.onnx"
    model, sample = tmp_path / "unfitted.joblib", tmp_path / "x.npy"
    code, err = _export(capsys, "sklearn", str(model), "--sample", str(sample), "--out", str(out))
    assert code == 1
    assert err.startswith(
        f"error: {str(tmp_path / 'unfitted.joblib')!r} holds a LogisticRegression that is not "
        "fitted: call fit() on it before joblib.dump"
    )
    assert "--opset" not in err and not out.exists()


def test_export_out_below_a_file_says_it_is_a_file(array_model, tmp_path, capsys) -> None:
    model, sample = array_model
    (tmp_path / "somefile").write_text("x")
    out = tmp_path / "somefile" / "m.onnx"
    code, err = _export(capsys, "sklearn", str(model), "--sample", str(sample), "--out", str(out))
    assert code == 1
    assert err.startswith(
        f"error: --out {str(out)!r}: {str(tmp_path / 'somefile')!r} is a file, not a folder"
    )
