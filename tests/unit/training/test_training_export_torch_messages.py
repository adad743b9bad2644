"""`engine export torch` failure messages: an --opset torch could not reach, a state dict that
does not fit, a float64 module. Each is one `error:` line naming the problem and the remedy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from engine.training.export_options import ExportOptions
from engine.training.export_torch import export_torch, load_torch_model
from engine.training.samples import Sample, read_sample

from engine.cli import main
from engine.errors import ExportError


class _SqrtRelu(torch.nn.Module):
    """Relu has no ONNX down-converter from opset 14, so torch cannot write it at opset 12."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(torch.relu(x))


def _sample(rows: int = 16, width: int = 3) -> Sample:
    x = np.random.default_rng(0).normal(size=(rows, width)).astype(np.float32)
    return Sample("s", arrays={"input": x})


def _no_file_left(out: Path) -> None:
    assert not out.exists()
    assert list(out.parent.glob(f".{out.name}.*")) == []


def test_an_opset_torch_cannot_reach_is_refused(tmp_path) -> None:
    out = tmp_path / "m.onnx"
    with pytest.raises(ExportError) as info:
        export_torch(_SqrtRelu(), _sample(), out, ExportOptions(opset=12))
    message = str(info.value)
    assert message.startswith("torch's exporter wrote opset 18, above --opset 12:"), message
    assert message.endswith("use --opset 18 or higher")
    _no_file_left(out)


def test_an_opset_torch_reaches_is_written(tmp_path) -> None:
    result = export_torch(_SqrtRelu(), _sample(), tmp_path / "m.onnx", ExportOptions(opset=17))
    assert result.opsets[""] == 17


def test_cli_opset_too_low_prints_one_error_line(tmp_path, monkeypatch, capsys) -> None:
    (tmp_path / "cli_torch_msg_sqrt.py").write_text(
        "import torch\n"
        "class Sqrt(torch.nn.Module):\n"
        "    def forward(self, x): return torch.sqrt(torch.relu(x))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(16, 3)))
    out = tmp_path / "net.onnx"
    args = ["export", "torch", "cli_torch_msg_sqrt:Sqrt", "--sample", str(tmp_path / "x.npy")]
    code = main([*args, "--out", str(out), "--opset", "12", "--json"])
    captured = capsys.readouterr()
    assert code == 1 and captured.out == ""
    expected = (
        "error: torch's exporter wrote opset 18, above --opset 12: it could not convert down "
        "to it; use --opset 18 or higher"
    )
    assert captured.err.splitlines() == [expected]
    _no_file_left(out)


def _write_net(folder: Path, name: str, layers: int = 1) -> None:
    (folder / f"{name}.py").write_text(
        "import torch\n"
        "def make():\n"
        f"    return torch.nn.Sequential(*[torch.nn.Linear(3, 3) for _ in range({layers})])\n"
    )


def test_state_dict_mismatch_names_the_keys(tmp_path, monkeypatch) -> None:
    _write_net(tmp_path, "torch_msg_net_keys")
    monkeypatch.syspath_prepend(str(tmp_path))
    torch.save(torch.nn.Linear(4, 4).state_dict(), tmp_path / "w.pt")
    with pytest.raises(ExportError) as info:
        load_torch_model("torch_msg_net_keys:make", tmp_path / "w.pt")
    message = str(info.value)
    assert "\n" not in message and "\t" not in message
    assert message.startswith(f"weights in {str(tmp_path / 'w.pt')!r} do not fit the module: ")
    assert 'Missing key(s) in state_dict: "0.weight", "0.bias".' in message
    assert 'Unexpected key(s) in state_dict: "weight", "bias".' in message


def test_state_dict_size_mismatch_is_named(tmp_path, monkeypatch) -> None:
    _write_net(tmp_path, "torch_msg_net_sizes")
    monkeypatch.syspath_prepend(str(tmp_path))
    torch.save(torch.nn.Sequential(torch.nn.Linear(3, 5)).state_dict(), tmp_path / "w.pt")
    with pytest.raises(ExportError) as info:
        load_torch_model("torch_msg_net_sizes:make", tmp_path / "w.pt")
    assert "size mismatch for 0.weight: copying a param with shape torch.Size([5, 3])" in str(
        info.value
    )


def test_a_long_state_dict_mismatch_is_cut(tmp_path, monkeypatch) -> None:
    _write_net(tmp_path, "torch_msg_net_long", layers=200)
    monkeypatch.syspath_prepend(str(tmp_path))
    torch.save({}, tmp_path / "w.pt")
    with pytest.raises(ExportError) as info:
        load_torch_model("torch_msg_net_long:make", tmp_path / "w.pt")
    message = str(info.value)
    assert "\n" not in message and message.endswith("...")
    assert 'Missing key(s) in state_dict: "0.weight"' in message
    assert len(message) < 1000 + len(str(tmp_path)) + 60


def test_float64_module_is_told_samples_are_float32(tmp_path) -> None:
    np.save(tmp_path / "x.npy", np.ones((4, 3), np.float64))
    out = tmp_path / "m.onnx"
    with pytest.raises(ExportError) as info:
        export_torch(torch.nn.Linear(3, 2).double(), read_sample(tmp_path / "x.npy"), out)
    message = str(info.value)
    assert message.startswith("the model fails on the sample ((4, 3) torch.float32)"), message
    assert "samples are read as float32" in message
    assert "convert the module with module.float() before export" in message
    _no_file_left(out)


def test_float32_module_failing_gets_no_float64_hint(tmp_path) -> None:
    with pytest.raises(ExportError) as info:
        export_torch(torch.nn.Linear(4, 1), _sample(width=3), tmp_path / "m.onnx")
    assert "float64" not in str(info.value) and "module.float()" not in str(info.value)


def test_messages_name_the_output_path_not_the_staged_file(tmp_path: Path) -> None:
    """A failure after the file is staged names --out: the staged file is gone by then."""
    out = tmp_path / "m.onnx"
    options = ExportOptions(input_names=("x",), output_names=("x",))  # not SSA: the checker fails
    with pytest.raises(ExportError, match="fails onnx.checker") as info:
        export_torch(torch.nn.Linear(3, 2), _sample(), out, options)
    assert repr(str(out)) in str(info.value)
    assert f".{out.name}." not in str(info.value)
    assert not out.exists()
