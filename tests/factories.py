"""ONNX models for tests, built with onnx.helper (never downloaded)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 9  # readable by every ORT >= 1.17


def _save(graph: onnx.GraphProto, path: Path, opsets: Sequence[tuple[str, int]] = ()) -> Path:
    imports = [helper.make_opsetid("", OPSET)] + [helper.make_opsetid(d, v) for d, v in opsets]
    model = helper.make_model(graph, opset_imports=imports)
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def mlp(path: Path, sizes: Sequence[int] = (32, 256, 256, 1), seed: int = 0,
        batch: int | str = "N") -> Path:
    """Dense ReLU MLP, float32, input 'x' [batch, sizes[0]] -> output 'y'."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    prev = "x"
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        w = (rng.standard_normal((fan_in, fan_out)) / np.sqrt(fan_in)).astype(np.float32)
        b = (rng.standard_normal(fan_out) * 0.1).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        out = "y" if i == len(sizes) - 2 else f"h{i}"
        gemm = f"g{i}" if out != "y" else "y"
        nodes.append(helper.make_node("Gemm", [prev, f"w{i}", f"b{i}"], [gemm]))
        if out != "y":
            nodes.append(helper.make_node("Relu", [gemm], [out]))
        prev = out
    graph = helper.make_graph(
        nodes, "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, sizes[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, sizes[-1]])],
        inits)
    return _save(graph, path)


def slow_mlp(path: Path, width: int = 512, layers: int = 24) -> Path:
    """A deep MLP that takes tens of ms for 64 rows: keeps an instance busy in tests."""
    return mlp(path, sizes=[width] * (layers + 1), seed=1)


def multi_io(path: Path) -> Path:
    """Inputs a [N,4] float32, b [N,4] float32, k [N,1] int64; outputs sum, prod, k2."""
    nodes = [
        helper.make_node("Add", ["a", "b"], ["sum"]),
        helper.make_node("Mul", ["a", "b"], ["prod"]),
        helper.make_node("Add", ["k", "k"], ["k2"]),
    ]
    graph = helper.make_graph(
        nodes, "multi_io",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 4]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 4]),
         helper.make_tensor_value_info("k", TensorProto.INT64, ["N", 1])],
        [helper.make_tensor_value_info("sum", TensorProto.FLOAT, ["N", 4]),
         helper.make_tensor_value_info("prod", TensorProto.FLOAT, ["N", 4]),
         helper.make_tensor_value_info("k2", TensorProto.INT64, ["N", 1])])
    return _save(graph, path)


def elementwise(path: Path, elem_type: int, op: str = "Identity", width: int = 3) -> Path:
    """One input 'x' [N, width] of `elem_type` through `op` (Identity, Neg, Not, Abs...)."""
    graph = helper.make_graph(
        [helper.make_node(op, ["x"], ["y"])], f"{op.lower()}",
        [helper.make_tensor_value_info("x", elem_type, ["N", width])],
        [helper.make_tensor_value_info("y", elem_type, ["N", width])])
    return _save(graph, path)


def features_identity(path: Path, width: int) -> Path:
    """'features' [N, width] float32 -> 'y' = features: the model after a transform spec, so
    outputs show exactly what the transform made."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["features"], ["y"])], "identity",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", width])])
    return _save(graph, path)


def fixed_shape(path: Path) -> Path:
    """Input 'x' float32 [2, 3] (no dynamic dim: batching off) -> 'y' = x + 1."""
    one = numpy_helper.from_array(np.ones((1,), np.float32), "one")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "one"], ["y"])], "fixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])], [one])
    return _save(graph, path)


def string_lookup(path: Path) -> Path:
    """String input 'word' [N, 1] -> int64 'id' [N, 1] via ai.onnx.ml LabelEncoder (OOV -> -1);
    and 'echo' = the strings unchanged."""
    nodes = [
        helper.make_node("LabelEncoder", ["word"], ["id"], domain="ai.onnx.ml",
                         keys_strings=["cat", "dog", "ému", ""], values_int64s=[1, 2, 3, 4],
                         default_int64=-1),
        helper.make_node("Identity", ["word"], ["echo"]),
    ]
    graph = helper.make_graph(
        nodes, "strings",
        [helper.make_tensor_value_info("word", TensorProto.STRING, ["N", 1])],
        [helper.make_tensor_value_info("id", TensorProto.INT64, ["N", 1]),
         helper.make_tensor_value_info("echo", TensorProto.STRING, ["N", 1])])
    return _save(graph, path, opsets=[("ai.onnx.ml", 2)])


def poison_gather(path: Path, table_rows: int = 10) -> Path:
    """'idx' int64 [N] gathers rows of a [table_rows, 2] table: an index out of range makes
    ONNX Runtime fail the whole run, which is how tests plant a poison request."""
    table = numpy_helper.from_array(
        np.arange(table_rows * 2, dtype=np.float32).reshape(table_rows, 2), "table")
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "idx"], ["rows"], axis=0)], "poison",
        [helper.make_tensor_value_info("idx", TensorProto.INT64, ["N"])],
        [helper.make_tensor_value_info("rows", TensorProto.FLOAT, ["N", 2])], [table])
    return _save(graph, path)


def reference_mlp(x: np.ndarray, path: Path) -> np.ndarray:
    """The MLP's output computed with numpy from the model's own weights."""
    model = onnx.load(str(path))
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    h = x.astype(np.float32)
    i = 0
    while f"w{i}" in weights:
        h = h @ weights[f"w{i}"] + weights[f"b{i}"]
        if f"w{i + 1}" in weights:
            h = np.maximum(h, 0)
        i += 1
    return h


def doubled_rows(path: Path, width: int = 4) -> Path:
    """'x' [N, width] -> 'y' [2N, width], x stacked on itself: a dynamic first dim on both
    sides that does not follow the batch (batching cannot split it into the requests' rows)."""
    graph = helper.make_graph(
        [helper.make_node("Concat", ["x", "x"], ["y"], axis=0)], "doubled_rows",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["M", width])])
    return _save(graph, path)


def understated_width(path: Path) -> Path:
    """'x' [N, 2] -> 'y' [N, 4] (x beside itself), though 'y' is declared [N, 1]: a model
    whose output is not the shape it declares. A Reshape to a computed shape keeps shape
    inference from catching the lie at load."""
    graph = helper.make_graph(
        [helper.make_node("Concat", ["x", "x"], ["xx"], axis=1),
         helper.make_node("Shape", ["x"], ["rows"], start=0, end=1),
         helper.make_node("Concat", ["rows", "rest"], ["target"], axis=0),
         helper.make_node("Reshape", ["xx", "target"], ["y"])],
        "understated_width",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
        initializer=[numpy_helper.from_array(np.array([-1], np.int64), "rest")])
    return _save(graph, path)
