from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from engine.errors import InvalidConfigError, ModelLoadError
from engine.registry.onnx_signature import check_declared, read_signature
from engine.signature import TensorSpec


def test_symbolic_and_fixed_dims(onnx_model) -> None:
    inputs, outputs = read_signature(onnx_model(dims=("batch", 4)))
    assert inputs == (TensorSpec("x", "float32", (-1, 4)),)
    assert outputs == (TensorSpec("y", "float32", (-1, 4)),)
    inputs, _ = read_signature(onnx_model(dims=(2, 4)))
    assert inputs[0].shape == (2, 4)


def test_element_types_map_to_canonical_names(onnx_model) -> None:
    inputs, _ = read_signature(onnx_model(elem_type=TensorProto.INT64))
    assert inputs[0].dtype == "int64"


def test_initializers_listed_as_inputs_are_not_inputs(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])
    w_info = helper.make_tensor_value_info("w", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])
    w = helper.make_tensor("w", TensorProto.FLOAT, [2, 3], [0.0] * 6)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "mm", [x, w_info], [y], [w]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "mm.onnx"
    onnx.save(model, str(path))
    inputs, outputs = read_signature(path)
    assert inputs == (TensorSpec("x", "float32", (-1, 2)),)
    assert outputs == (TensorSpec("y", "float32", (-1, 3)),)


def test_non_tensor_outputs_are_refused(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])
    seq = helper.make_tensor_sequence_value_info("s", TensorProto.FLOAT, [3])
    graph = helper.make_graph(
        [helper.make_node("SequenceConstruct", ["x"], ["s"])], "g", [x], [seq]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "seq.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ModelLoadError, match="'s' is a sequence_type value; only tensors"):
        read_signature(path)


def test_external_data_is_refused_with_advice(onnx_model) -> None:
    with pytest.raises(ModelLoadError, match="save_as_external_data=False"):
        read_signature(onnx_model("e.onnx", external_data=True), label="mine.onnx")


def test_label_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "x.onnx"
    path.write_bytes(b"\x08\x07garbage")
    with pytest.raises(ModelLoadError, match="'user/file.onnx'"):
        read_signature(path, label="user/file.onnx")


def test_check_declared_accepts_dynamic_dims_either_side() -> None:
    actual = (TensorSpec("x", "float32", (-1, 4)),)
    check_declared((TensorSpec("x", "float32", (8, -1)),), actual, "input", "f")
    check_declared((), actual, "input", "f")
    with pytest.raises(InvalidConfigError, match="f: config declares input 'x' with shape"):
        check_declared((TensorSpec("x", "float32", (-1, 4, 1)),), actual, "input", "f")
