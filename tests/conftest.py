"""Fixtures shared by the whole test tree. Models are generated here, never downloaded."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

OnnxFactory = Callable[..., Path]


def make_add_model(path: Path, *, bias: float = 1.0, width: int = 4,
                   dims: Sequence[int | str] = ("batch", 4), elem_type: int = TensorProto.FLOAT,
                   external_data: bool = False) -> Path:
    """A tiny ``y = x + bias`` model; a different ``bias`` gives different bytes (and hash)."""
    x = helper.make_tensor_value_info("x", elem_type, list(dims))
    y = helper.make_tensor_value_info("y", elem_type, list(dims))
    np_type = helper.tensor_dtype_to_np_dtype(elem_type)
    b = numpy_helper.from_array(np.full(width, bias, dtype=np_type), "b")
    graph = helper.make_graph([helper.make_node("Add", ["x", "b"], ["y"])], "add", [x], [y], [b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    if external_data:
        onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                  location=path.name + ".data", size_threshold=0)
    else:
        onnx.save(model, str(path))
    return path


@pytest.fixture
def onnx_model(tmp_path: Path) -> OnnxFactory:
    """Factory: ``onnx_model("name.onnx", bias=2.0)`` writes a tiny Add model under tmp_path."""
    counter = iter(range(1_000_000))

    def make(name: str | None = None, **kwargs: object) -> Path:
        filename = name or f"model-{next(counter)}.onnx"
        return make_add_model(tmp_path / "models" / filename, **kwargs)  # type: ignore[arg-type]

    return make
