from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper


@pytest.fixture
def add_model(tmp_path: Path) -> Callable[[float], Path]:
    """Writes a tiny ``y = x + bias`` ONNX model; each bias gives different bytes."""

    def make(bias: float = 1.0) -> Path:
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
        b = numpy_helper.from_array(np.full(4, bias, dtype=np.float32), "b")
        graph = helper.make_graph(
            [helper.make_node("Add", ["x", "b"], ["y"])], "add", [x], [y], [b]
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        path = tmp_path / "models" / f"add-{bias}.onnx"
        path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(model, str(path))
        return path

    return make
