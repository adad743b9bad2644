"""A Triton-layout model repository for the integration tests, generated with onnx.helper.

    add        y = x + bias, FP32 [-1, 4]; versions 1 (bias 1) and 2 (bias 2); dynamic batching
    types      out_<T> = Identity(in_<T>) for every KServe datatype, [-1, 3]; max_batch_size 8
    slow       y = x + 1, FP32 [-1, 4]; dynamic batching that waits 300 ms for a batch of 64
    fail       y = Gather(arange(10), idx), INT64 [-1], no batching: an index >= 10 makes
               ONNX Runtime fail at run time (warm-up's zeros run fine)
    id_<t>     y = Identity(x) for one datatype <t> (lower-case KServe name), [-1, 3], batching
    heavy      x [1, 512] broadcast to 512x512, then 24 MatMuls: ~0.1-0.3 s a request
    deep       a 512-wide, 12-layer MLP, FP32 x [-1, 512] -> y [-1, 512], dynamic batching with
               no delay: every run streams 12 MB of weights, so one keeps the instance busy
    wide       y = Tile(x, [1, 16]), FP32 [-1, 4] -> [-1, 64] (build_wide_repository): a response
               16 times its request's size
"""

from __future__ import annotations

from pathlib import Path

import factories  # tests/, on the path from tests/conftest.py
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# KServe datatype -> (ONNX element type, numpy dtype, Triton config type)
DATATYPES: dict[str, tuple[int, object, str]] = {
    "BOOL": (TensorProto.BOOL, np.bool_, "TYPE_BOOL"),
    "UINT8": (TensorProto.UINT8, np.uint8, "TYPE_UINT8"),
    "UINT16": (TensorProto.UINT16, np.uint16, "TYPE_UINT16"),
    "UINT32": (TensorProto.UINT32, np.uint32, "TYPE_UINT32"),
    "UINT64": (TensorProto.UINT64, np.uint64, "TYPE_UINT64"),
    "INT8": (TensorProto.INT8, np.int8, "TYPE_INT8"),
    "INT16": (TensorProto.INT16, np.int16, "TYPE_INT16"),
    "INT32": (TensorProto.INT32, np.int32, "TYPE_INT32"),
    "INT64": (TensorProto.INT64, np.int64, "TYPE_INT64"),
    "FP16": (TensorProto.FLOAT16, np.float16, "TYPE_FP16"),
    "FP32": (TensorProto.FLOAT, np.float32, "TYPE_FP32"),
    "FP64": (TensorProto.DOUBLE, np.float64, "TYPE_FP64"),
    "BYTES": (TensorProto.STRING, np.object_, "TYPE_STRING"),
}


def _save(graph: onnx.GraphProto, path: Path) -> None:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def _add_graph(bias: float, dims: list[int | str]) -> onnx.GraphProto:
    b = numpy_helper.from_array(np.full(4, bias, dtype=np.float32), "b")
    return helper.make_graph(
        [helper.make_node("Add", ["x", "b"], ["y"])], "add",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)], [b])


def write_add_model(path: Path, bias: float = 1.0) -> Path:
    """A lone ``add`` model file (y = x + bias, FP32 [-1, 4]) at ``path``: what registry tests
    register."""
    _save(_add_graph(bias, ["batch", 4]), path)
    return path


def _types_graph() -> onnx.GraphProto:
    nodes, inputs, outputs = [], [], []
    for name, (onnx_type, _, _) in DATATYPES.items():
        low = name.lower()
        nodes.append(helper.make_node("Identity", [f"in_{low}"], [f"out_{low}"]))
        inputs.append(helper.make_tensor_value_info(f"in_{low}", onnx_type, ["batch", 3]))
        outputs.append(helper.make_tensor_value_info(f"out_{low}", onnx_type, ["batch", 3]))
    return helper.make_graph(nodes, "types", inputs, outputs)


def _fail_graph() -> onnx.GraphProto:
    table = numpy_helper.from_array(np.arange(10, dtype=np.float32), "table")
    return helper.make_graph(
        [helper.make_node("Gather", ["table", "idx"], ["y"])], "fail",
        [helper.make_tensor_value_info("idx", TensorProto.INT64, ["n"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n"])], [table])


def _identity_graph(onnx_type: int) -> onnx.GraphProto:
    return helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "identity",
        [helper.make_tensor_value_info("x", onnx_type, ["batch", 3])],
        [helper.make_tensor_value_info("y", onnx_type, ["batch", 3])])


def _heavy_graph(width: int = 512, layers: int = 24) -> onnx.GraphProto:
    # x [1, width] is broadcast to [width, width] so each MatMul is a full matrix product.
    rng = np.random.default_rng(0)
    square = numpy_helper.from_array(np.array([width, width], dtype=np.int64), "square")
    nodes = [helper.make_node("Expand", ["x", "square"], ["h"])]
    weights, current = [square], "h"
    for i in range(layers):
        w = (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32)
        weights.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("MatMul", [current, f"w{i}"], [f"h{i}"]))
        current = f"h{i}"
    nodes.append(helper.make_node("ReduceMean", [current], ["y"], axes=[0], keepdims=1))
    return helper.make_graph(
        nodes, "heavy", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, width])], weights)


def build_mini_repository(root: Path) -> Path:
    """Only ``add`` (version 1): for servers that test transport options (TLS, token)."""
    _save(_add_graph(1.0, ["batch", 4]), root / "add" / "1" / "model.onnx")
    (root / "add" / "config.pbtxt").write_text('name: "add"\nmax_batch_size: 64\ndynamic_batching { }\n')
    return root


def add_fail_model(root: Path) -> Path:
    """``fail`` (see the module docstring) into the repository at ``root``."""
    _save(_fail_graph(), root / "fail" / "1" / "model.onnx")
    (root / "fail" / "config.pbtxt").write_text('name: "fail"\nmax_batch_size: 0\n')
    return root


def build_wide_repository(root: Path) -> Path:
    """Only ``wide`` (see the module docstring): responses larger than their requests."""
    repeats = numpy_helper.from_array(np.array([1, 16], dtype=np.int64), "repeats")
    graph = helper.make_graph(
        [helper.make_node("Tile", ["x", "repeats"], ["y"])], "wide",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 64])], [repeats])
    _save(graph, root / "wide" / "1" / "model.onnx")
    (root / "wide" / "config.pbtxt").write_text('name: "wide"\nmax_batch_size: 64\n')
    return root


def build_drain_repository(root: Path) -> Path:
    """``heavy`` and ``add``: requests that are still running when the server is told to stop."""
    build_mini_repository(root)
    _save(_heavy_graph(), root / "heavy" / "1" / "model.onnx")
    (root / "heavy" / "config.pbtxt").write_text('name: "heavy"\nmax_batch_size: 0\n')
    return root


def build_repository(root: Path) -> Path:
    """Write the repository under ``root`` and return ``root``."""
    for name, (onnx_type, _, triton) in DATATYPES.items():
        low = name.lower()
        _save(_identity_graph(onnx_type), root / f"id_{low}" / "1" / "model.onnx")
        (root / f"id_{low}" / "config.pbtxt").write_text(
            f'name: "id_{low}"\nmax_batch_size: 8\n'
            f'input [ {{ name: "x", data_type: {triton}, dims: [ 3 ] }} ]\n'
            f'output [ {{ name: "y", data_type: {triton}, dims: [ 3 ] }} ]\n'
            "dynamic_batching { }\n")
    _save(_add_graph(1.0, ["batch", 4]), root / "add" / "1" / "model.onnx")
    _save(_add_graph(2.0, ["batch", 4]), root / "add" / "2" / "model.onnx")
    (root / "add" / "config.pbtxt").write_text(
        'name: "add"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 64\n'
        'input [ { name: "x", data_type: TYPE_FP32, dims: [ 4 ] } ]\n'
        'output [ { name: "y", data_type: TYPE_FP32, dims: [ 4 ] } ]\n'
        "dynamic_batching { }\nversion_policy: { all { } }\n")

    _save(_types_graph(), root / "types" / "1" / "model.onnx")
    tensors_in = ", ".join(
        f'{{ name: "in_{n.lower()}", data_type: {t}, dims: [ 3 ] }}'
        for n, (_, _, t) in DATATYPES.items())
    tensors_out = ", ".join(
        f'{{ name: "out_{n.lower()}", data_type: {t}, dims: [ 3 ] }}'
        for n, (_, _, t) in DATATYPES.items())
    (root / "types" / "config.pbtxt").write_text(
        f'name: "types"\nmax_batch_size: 8\ninput [ {tensors_in} ]\noutput [ {tensors_out} ]\n')

    _save(_add_graph(1.0, ["batch", 4]), root / "slow" / "1" / "model.onnx")
    (root / "slow" / "config.pbtxt").write_text(
        'name: "slow"\nmax_batch_size: 64\n'
        "dynamic_batching { preferred_batch_size: [ 64 ] max_queue_delay_microseconds: 300000 }\n")

    add_fail_model(root)

    (root / "deep" / "1").mkdir(parents=True)
    factories.slow_mlp(root / "deep" / "1" / "model.onnx", layers=12)
    (root / "deep" / "config.pbtxt").write_text(
        'name: "deep"\nmax_batch_size: 64\ndynamic_batching { }\n')
    return root
