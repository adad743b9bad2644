"""Export failures: each raises ExportError saying what is wrong and what to do, and leaves no
file at the output path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
import torch  # module scope: torch.library reads the custom op's annotations from here
from engine.training.export_options import ExportOptions
from engine.training.export_sklearn import export_sklearn
from engine.training.export_torch import export_torch, load_torch_model
from engine.training.pipeline import train_tabular
from engine.training.samples import Sample, read_sample
from engine.training.validate import ParityReport, compare_labels, compare_values

from engine.errors import ExportError


def _no_file_left(out: Path) -> None:
    assert not out.exists()
    assert list(out.parent.glob(f".{out.name}.*")) == []


def test_unconvertible_sklearn_step_is_named(tmp_path) -> None:
    from sklearn.kernel_ridge import KernelRidge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    model = make_pipeline(StandardScaler(), KernelRidge()).fit(x, x[:, 0])
    out = tmp_path / "m.onnx"
    with pytest.raises(
        ExportError,
        match=r"step 'model\.kernelridge' \(sklearn\.kernel_ridge\."
        r"KernelRidge\) has no ONNX converter",
    ) as info:
        export_sklearn(model, Sample("s", arrays={"input": x}), out)
    assert "update_registered_converter" in str(info.value)
    _no_file_left(out)


def test_sample_with_wrong_columns(customers, tmp_path) -> None:
    train, valid = customers
    trained = train_tabular(train, "linear", seed=0)
    frame = valid.features.rename(columns={"age": "years"})
    out = tmp_path / "m.onnx"
    with pytest.raises(ExportError, match=r"missing \['age'\], unexpected \['years'\]"):
        export_sklearn(trained.model, Sample("bad.csv", table=frame), out)
    _no_file_left(out)


def test_array_sample_of_wrong_width(tmp_path) -> None:
    from sklearn.linear_model import LinearRegression

    x = np.ones((10, 3), dtype=np.float32)
    model = LinearRegression().fit(x, x[:, 0])
    with pytest.raises(ExportError, match=r"has shape \(10, 2\); the model expects \[rows, 3\]"):
        export_sklearn(model, Sample("s", arrays={"input": x[:, :2]}), tmp_path / "m.onnx")


def test_table_model_needs_a_table_sample(customers, tmp_path) -> None:
    train, _ = customers
    trained = train_tabular(train, "linear", seed=0)
    with pytest.raises(ExportError, match="give a .csv or .parquet sample"):
        export_sklearn(
            trained.model, Sample("s", arrays={"input": np.ones((2, 7))}), tmp_path / "m.onnx"
        )


def test_tolerance_failure_reports_the_figures(tmp_path) -> None:
    import torch

    torch.manual_seed(0)
    module = torch.nn.Linear(256, 64)
    x = np.random.default_rng(0).normal(size=(32, 256)).astype(np.float32)
    out = tmp_path / "m.onnx"
    with pytest.raises(
        ExportError,
        match=r"parity check failed at atol=0 rtol=0 on 32 rows: "
        r"output: \d+ of 2048 values differ \(max abs",
    ) as info:
        export_torch(module, Sample("s", arrays={"input": x}), out, ExportOptions(atol=0, rtol=0))
    assert "raise --atol/--rtol" in str(info.value)
    _no_file_left(out)


def test_unsupported_torch_operator_is_named(tmp_path) -> None:
    @torch.library.custom_op("enginetest::unexportable", mutates_args=())
    def unexportable(x: torch.Tensor) -> torch.Tensor:
        return x * 2

    @unexportable.register_fake
    def _(x: torch.Tensor) -> torch.Tensor:
        return torch.empty_like(x)

    class Model(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return unexportable(x) + 1

    out = tmp_path / "m.onnx"
    with pytest.raises(
        ExportError,
        match=r"no ONNX translation at opset 18 for operator "
        r"enginetest\.unexportable\.default",
    ) as info:
        export_torch(Model(), Sample("s", arrays={"input": np.ones((4, 2), np.float32)}), out)
    assert "custom_translation_table" in str(info.value)
    _no_file_left(out)


def test_torch_sample_of_wrong_width(tmp_path) -> None:
    import torch

    with pytest.raises(
        ExportError,
        match=r"the model fails on the sample \(\(4, 3\) "
        r"torch.float32\): RuntimeError",
    ):
        export_torch(
            torch.nn.Linear(4, 1),
            Sample("s", arrays={"input": np.ones((4, 3), np.float32)}),
            tmp_path / "m.onnx",
        )


def test_dynamic_batch_needs_two_rows(tmp_path) -> None:
    import torch

    with pytest.raises(ExportError, match="at least 2 rows; this one has 1"):
        export_torch(
            torch.nn.Linear(4, 1),
            Sample("s", arrays={"input": np.ones((1, 4), np.float32)}),
            tmp_path / "m.onnx",
        )


class _RowSum(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(dim=-1, keepdim=True)


@pytest.mark.parametrize("model", [torch.nn.Linear(4, 2), _RowSum()], ids=["linear", "rowsum"])
def test_one_dimensional_sample_of_a_matrix_model_is_refused(tmp_path, model) -> None:
    """A 1-D sample is rows of one value each. Given to a model of [rows, features] input,
    its values were one row's features: Linear(4, 2) was written with input [4] (no batch
    axis, though a dynamic one was asked for), the row sum with its feature axis dynamic."""
    out = tmp_path / "m.onnx"
    sample = Sample("s.npy", arrays={"input": np.arange(4, dtype=np.float32)})
    with pytest.raises(ExportError) as info:
        export_torch(model, sample, out, ExportOptions(dynamic_batch=True))
    message = str(info.value)
    assert message.startswith(
        "sample 's.npy': input 'input' has shape (4,), one dimension, which is read as 4 rows "
        "of one value each (axis 0 is the batch axis); but the model's output 'output' has "
        "shape ("
    ), message
    assert "pass a 2-D [rows, features] sample" in message
    _no_file_left(out)


def test_one_dimensional_sample_without_a_batch_axis_exports_that_shape(tmp_path) -> None:
    """--no-dynamic-batch exports the sample's shape as it is: a model of one [4] vector."""
    out = tmp_path / "m.onnx"
    sample = Sample("s.npy", arrays={"input": np.arange(4, dtype=np.float32)})
    export_torch(torch.nn.Linear(4, 2), sample, out, ExportOptions(dynamic_batch=False))
    graph = onnx.load(str(out)).graph
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim] == [4]


def test_a_batch_axis_torch_fixes_is_refused(tmp_path) -> None:
    """torch.export silently fixes a dynamic axis the model constrains to the sample's size:
    the export would have no batch axis. A 1-D sample says how to give rows instead."""
    out = tmp_path / "m.onnx"
    with pytest.raises(ExportError) as info:
        export_torch(
            torch.nn.Linear(4, 4), Sample("s", arrays={"input": np.ones(4, np.float32)}), out
        )
    message = str(info.value)
    assert message.startswith(
        "input 'input': torch fixed the batch axis to 4 (the sample's shape is (4,))"
    ), message
    assert "pass a 2-D [rows, features] sample" in message
    _no_file_left(out)

    class AddTable(torch.nn.Module):  # broadcasts against a [3, 2] weight: exactly 3 rows
        def __init__(self) -> None:
            super().__init__()
            self.table = torch.nn.Parameter(torch.ones(3, 2))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.table

    with pytest.raises(ExportError) as info:
        export_torch(AddTable(), Sample("s", arrays={"input": np.ones((3, 2), np.float32)}), out)
    message = str(info.value)
    assert message.startswith(
        "input 'input': torch fixed the batch axis to 3 (the sample's shape is (3, 2))"
    ), message
    assert "--no-dynamic-batch" in message and "[rows, features]" not in message
    _no_file_left(out)


def test_one_dimensional_sample_of_a_model_of_one_value_rows(tmp_path) -> None:
    """A model that takes one value per row (elementwise here; ids for an embedding) is
    exported from a 1-D sample with a dynamic batch axis."""

    class Affine(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2 + 1

    out = tmp_path / "m.onnx"
    result = export_torch(
        Affine(), Sample("s", arrays={"input": np.arange(5, dtype=np.float32)}), out
    )
    assert [i.shape for i in result.inputs] == [(-1,)]
    assert [o.shape for o in result.outputs] == [(-1,)]
    assert result.parity.rows == 5


def test_torchscript_files_are_refused_with_the_alternative(tmp_path) -> None:
    import zipfile

    path = tmp_path / "scripted.pt"
    with zipfile.ZipFile(path, "w") as archive:  # the layout torch.jit.save writes
        archive.writestr("scripted/code/__torch__.py", "")
        archive.writestr("scripted/constants.pkl", b"")
    with pytest.raises(ExportError, match="TorchScript archive.*torch.export.save"):
        load_torch_model(str(path))


def test_bad_module_paths_are_named() -> None:
    with pytest.raises(ExportError, match="cannot import 'no_such_pkg_xyz'"):
        load_torch_model("no_such_pkg_xyz:model")
    with pytest.raises(ExportError, match="has no attribute 'nope'"):
        load_torch_model("json:nope")
    with pytest.raises(ExportError, match="neither an existing file nor"):
        load_torch_model("model.bin")


def test_sample_files(tmp_path) -> None:
    np.save(tmp_path / "a.npy", np.ones((3, 2)))
    sample = read_sample(tmp_path / "a.npy")
    assert sample.arrays is not None and sample.arrays["input"].dtype == np.float32
    np.savez(tmp_path / "b.npz", x=np.ones((3, 2)), y=np.zeros((3, 1)))
    assert list(read_sample(tmp_path / "b.npz").arrays or {}) == ["x", "y"]
    pd.DataFrame({"a": [1.0], "c": ["x"]}).to_parquet(tmp_path / "t.parquet")
    assert list(read_sample(tmp_path / "t.parquet").table.columns) == ["a", "c"]
    (tmp_path / "t.txt").write_text("1")
    with pytest.raises(ExportError, match="unknown suffix '.txt'"):
        read_sample(tmp_path / "t.txt")
    with pytest.raises(ExportError, match="does not exist"):
        read_sample(tmp_path / "missing.csv")


def test_output_path_that_is_a_folder(tmp_path) -> None:
    from sklearn.linear_model import LinearRegression

    x = np.random.default_rng(0).normal(size=(10, 2)).astype(np.float32)
    model = LinearRegression().fit(x, x[:, 0])
    with pytest.raises(ExportError, match="is a folder; give the ONNX file to write"):
        export_sklearn(model, Sample("s", arrays={"input": x}), tmp_path)
    assert list(tmp_path.iterdir()) == []  # no staged file left beside it either


def test_output_path_with_a_trailing_slash_is_a_folder(tmp_path) -> None:
    from sklearn.linear_model import LinearRegression

    x = np.random.default_rng(0).normal(size=(10, 2)).astype(np.float32)
    model = LinearRegression().fit(x, x[:, 0])
    with pytest.raises(ExportError, match="names a folder; give the ONNX file to write"):
        export_sklearn(model, Sample("s", arrays={"input": x}), f"{tmp_path}/models/")
    assert list(tmp_path.iterdir()) == []  # no file called 'models'


def test_a_failed_export_removes_the_folders_it_made(tmp_path) -> None:
    from sklearn.linear_model import LinearRegression

    x = np.random.default_rng(0).normal(size=(10, 2)).astype(np.float32)
    model = LinearRegression().fit(x, x[:, 0])
    (tmp_path / "kept").mkdir()
    out = tmp_path / "kept" / "new" / "deeper" / "m.onnx"
    with pytest.raises(ExportError, match="parity check failed"):
        # A tolerance nothing meets: the failure comes after the folders were made.
        export_sklearn(model, Sample("s", arrays={"input": x}), out, ExportOptions(atol=0, rtol=0))
    assert list(tmp_path.iterdir()) == [tmp_path / "kept"]
    assert list((tmp_path / "kept").iterdir()) == []


def test_parity_rules() -> None:
    exact = compare_values("y", np.array([1.0, 2.0]), np.array([1.0, 2.0]), 0.0, 0.0)
    assert exact.passed and exact.max_abs_error == 0.0
    off = compare_values("y", np.array([1.0, 2.2]), np.array([1.0, 2.0]), 0.1, 0.0)
    assert off.mismatches == 1 and off.max_abs_error == pytest.approx(0.2)
    assert off.max_rel_error == pytest.approx(0.1)
    nan = compare_values("y", np.array([np.nan]), np.array([np.nan]), 0.0, 0.0)
    assert nan.passed
    # A label flip on a near-tie row is tolerated; a flip on a confident row is not.
    labels = compare_labels(
        "label", np.array([1, 0]), np.array([0, 0]), np.array([1e-6, 0.9]), 1e-4, 1e-3
    )
    assert labels.passed
    labels = compare_labels(
        "label", np.array([0, 1]), np.array([0, 0]), np.array([1e-6, 0.9]), 1e-4, 1e-3
    )
    assert labels.mismatches == 1
    report = ParityReport(0.1, 0.0, 2, (off,))
    with pytest.raises(ExportError, match="y: 1 of 2 values differ"):
        report.raise_if_failed()


@pytest.mark.parametrize(
    ("engine_value", "framework_value"),
    [
        (-np.inf, np.inf),  # the wrong sign of infinity
        (1e30, np.inf),  # finite against infinite: |a - e| <= atol + rtol*inf held before
        (np.inf, 1.0),
        (np.nan, 1.0),
        (1.0, np.nan),
        (np.inf, np.nan),
    ],
)
def test_parity_never_lets_a_non_finite_disagreement_pass(engine_value, framework_value) -> None:
    result = compare_values(
        "y", np.array([engine_value, 2.0]), np.array([framework_value, 2.0]), 1e-4, 1e-3
    )
    assert result.mismatches == 1 and result.nonfinite_mismatches == 1
    assert result.max_abs_error == 0.0  # the finite pair agrees exactly
    with pytest.raises(
        ExportError, match=r"y: 1 of 2 values differ \(1 of them with inf or NaN"
    ) as info:
        ParityReport(1e-4, 1e-3, 2, (result,)).raise_if_failed()
    # Raising the tolerance cannot help, and the message does not suggest it.
    assert "No tolerance covers an infinity or NaN" in str(info.value)
    assert "--atol" not in str(info.value)


def test_parity_equal_infinities_and_nans_agree() -> None:
    inf, nan = np.inf, np.nan
    result = compare_values(
        "y", np.array([inf, -inf, nan, 1.0]), np.array([inf, -inf, nan, 1.0]), 0.0, 0.0
    )
    assert result.passed and result.nonfinite_mismatches == 0
    assert result.max_abs_error == 0.0 and result.max_rel_error == 0.0
    assert result.to_dict()["nonfinite_mismatches"] == 0


def test_export_options_validate_values() -> None:
    with pytest.raises(ExportError, match=r"opset must be an int in \[7, 30\]; was 3"):
        ExportOptions(opset=3)
    with pytest.raises(ExportError, match="atol must be a number >= 0; was -1"):
        ExportOptions(atol=-1)
