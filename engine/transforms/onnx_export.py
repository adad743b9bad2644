"""Export a transform spec as an ONNX preprocessing graph, and merge it in front of a model.

The graph has one 1-D input per declared column (``[rows]``; float32/float64/int64/string) and
one output ``spec.output_name``: float32 ``[rows, spec.width]``. Numeric work happens in double,
as in the reference. Operators: ai.onnx (opset >= 13), ai.onnx.ml ``LabelEncoder`` and ONNX
Runtime's contrib ``com.microsoft.MurmurHash3`` (positive=1: unsigned MurmurHash3 x86 32-bit),
which standard ONNX Runtime builds include.

log1p has no ONNX operator and ``Log(1 + x)`` loses digits for small x, so it is computed as
``x * log(u) / (u - 1)`` with ``u = 1 + x`` (exact-to-a-few-ulp; Goldberg's formula), falling
back to ``log(u)`` where ``u == 1`` or ``u == x``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from engine.errors import ExportError
from engine.transforms.spec import (
    Bucketize,
    Clip,
    ColumnFeature,
    CrossFeature,
    Hash,
    Impute,
    Log1p,
    MinMaxScale,
    RobustScale,
    Standardize,
    TransformSpec,
    Vocabulary,
)

__all__ = ["MIN_OPSET", "merge_with_model", "to_onnx"]

MIN_OPSET = 13  # Unsqueeze/ReduceSum take axes as inputs from 13 on
DEFAULT_OPSET = 17
DEFAULT_ML_OPSET = 3
_PREFIX = "transforms/"
_ELEM = {
    "float32": TensorProto.FLOAT,
    "float64": TensorProto.DOUBLE,
    "int64": TensorProto.INT64,
    "string": TensorProto.STRING,
}


class _Builder:
    """Accumulates nodes and constants; every internal name starts with ``transforms/``."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._n = 0

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{_PREFIX}{hint}_{self._n}"

    def const(self, value: Any, dtype: Any, hint: str = "c") -> str:
        name = self.name(hint)
        arr = np.asarray(value, dtype=dtype)
        if arr.dtype == object:
            strings: Any = [str(v).encode() for v in arr.ravel()]
            tensor = helper.make_tensor(name, TensorProto.STRING, arr.shape, strings)
        else:
            tensor = numpy_helper.from_array(arr, name)
        self.initializers.append(tensor)
        return name

    def op(self, op_type: str, inputs: list[str], domain: str = "", **attrs: Any) -> str:
        out = self.name(op_type.lower())
        self.nodes.append(
            helper.make_node(op_type, inputs, [out], name=out, domain=domain, **attrs)
        )
        return out

    # --- small helpers --------------------------------------------------------------------
    def where(self, cond: str, a: str, b: str) -> str:
        return self.op("Where", [cond, a, b])

    def murmur(self, x: str, seed: int) -> str:
        return self.op("MurmurHash3", [x], domain="com.microsoft", seed=seed, positive=1)

    def bucket(self, h_uint32: str, n: int) -> str:
        return self.op("Mod", [self.op("Cast", [h_uint32], to=TensorProto.INT64),
                               self.const(n, np.int64)])


def _numeric(b: _Builder, step: Any, x: str) -> str:
    if isinstance(step, (Standardize, MinMaxScale, RobustScale)):
        offset, scale = step.affine()
        return b.op("Div", [b.op("Sub", [x, b.const(offset, np.float64)]), b.const(scale, np.float64)])
    if isinstance(step, Log1p):
        one = b.const(1.0, np.float64)
        u = b.op("Add", [x, one])
        log_u = b.op("Log", [u])
        ratio = b.op("Div", [b.op("Mul", [log_u, x]), b.op("Sub", [u, one])])
        exact = b.op("Or", [b.op("Equal", [u, one]), b.op("Equal", [u, x])])
        return b.where(exact, b.where(b.op("Equal", [u, one]), x, log_u), ratio)
    if isinstance(step, Clip):
        if step.min is not None:
            lo = b.const(step.min, np.float64)
            x = b.where(b.op("Less", [x, lo]), lo, x)
        if step.max is not None:
            hi = b.const(step.max, np.float64)
            x = b.where(b.op("Greater", [x, hi]), hi, x)
        return x
    if isinstance(step, Impute):
        missing = b.op("IsNaN", [x])
        if step.replace_inf:
            missing = b.op("Or", [missing, b.op("IsInf", [x])])
        return b.where(missing, b.const(float(step.value), np.float64), x)
    raise ExportError(f"no ONNX lowering for numeric step {step.op!r}")


def _string(b: _Builder, step: Any, s: str) -> tuple[str, bool]:
    """Returns (value name, is_index)."""
    if isinstance(step, Impute):
        empty = b.op("Cast", [b.op("LabelEncoder", [s], domain="ai.onnx.ml", keys_strings=[""],
                                   values_int64s=[1], default_int64=0)], to=TensorProto.BOOL)
        return b.where(empty, b.const(np.array([step.value], dtype=object), object), s), False
    if isinstance(step, Vocabulary):
        size = len(step.vocabulary)
        oov = None
        if step.num_oov_buckets:
            oov = b.op("Add", [b.bucket(b.murmur(s, step.seed), step.num_oov_buckets),
                               b.const(size, np.int64)])
        if size == 0:
            assert oov is not None  # validation: cardinality >= 1
            return oov, True
        index = b.op("LabelEncoder", [s], domain="ai.onnx.ml", keys_strings=list(step.vocabulary),
                     values_int64s=list(range(size)), default_int64=-1)
        if oov is not None:
            index = b.where(b.op("Less", [index, b.const(0, np.int64)]), oov, index)
        return index, True
    if isinstance(step, Hash):
        return b.bucket(b.murmur(s, step.seed), step.num_buckets), True
    raise ExportError(f"no ONNX lowering for string step {step.op!r}")


def _bucketize(b: _Builder, step: Bucketize, x: str) -> str:
    bounds = b.const(np.asarray(step.boundaries, dtype=np.float64)[None, :], np.float64)
    ge = b.op("GreaterOrEqual", [b.op("Unsqueeze", [x, b.const([1], np.int64)]), bounds])
    count = b.op("ReduceSum", [b.op("Cast", [ge], to=TensorProto.INT64), b.const([1], np.int64)],
                 keepdims=0)
    nan_bucket = b.const(len(step.boundaries) + 1, np.int64)
    return b.where(b.op("IsNaN", [x]), nan_bucket, count)


def _encode_index(b: _Builder, index: str, cardinality: int, encoding: str) -> str:
    column = b.op("Unsqueeze", [index, b.const([1], np.int64)])
    if encoding == "onehot":
        hot = b.op("Equal", [column, b.const(np.arange(cardinality, dtype=np.int64)[None, :], np.int64)])
        return b.op("Cast", [hot], to=TensorProto.FLOAT)
    return b.op("Cast", [column], to=TensorProto.FLOAT)


def _cross(b: _Builder, feat: CrossFeature) -> str:
    h = b.murmur(feat.columns[0], feat.seed)
    shift = b.const(32, np.uint64)
    for col in feat.columns[1:]:
        high = b.op("BitShift", [b.op("Cast", [h], to=TensorProto.UINT64), shift], direction="LEFT")
        low = b.op("Cast", [b.murmur(col, feat.seed)], to=TensorProto.UINT64)
        # The halves do not overlap, so Add is the bitwise or (BitwiseOr needs opset 18).
        h = b.murmur(b.op("Add", [high, low]), feat.seed)
    return _encode_index(b, b.bucket(h, feat.num_buckets), feat.num_buckets, feat.encoding)


def _feature(b: _Builder, spec: TransformSpec, feat: ColumnFeature) -> str:
    column = spec.input(feat.column)
    value = column.name
    if not column.is_string and column.dtype != "float64":
        value = b.op("Cast", [value], to=TensorProto.DOUBLE)
    for step in feat.steps:
        if isinstance(step, Bucketize):
            return _encode_index(b, _bucketize(b, step, value), step.cardinality, step.encoding)
        if column.is_string:
            value, is_index = _string(b, step, value)
            if is_index:
                assert isinstance(step, (Vocabulary, Hash))
                return _encode_index(b, value, step.cardinality, step.encoding)
        else:
            value = _numeric(b, step, value)
    return b.op("Cast", [b.op("Unsqueeze", [value, b.const([1], np.int64)])], to=TensorProto.FLOAT)


def to_onnx(
    spec: TransformSpec,
    *,
    opset: int = DEFAULT_OPSET,
    ml_opset: int = DEFAULT_ML_OPSET,
    ir_version: int | None = None,
) -> onnx.ModelProto:
    """The preprocessing graph of ``spec`` as a standalone ONNX model.

    Raises ExportError for an opset older than MIN_OPSET.
    """
    if opset < MIN_OPSET:
        raise ExportError(f"transform export needs ai.onnx opset >= {MIN_OPSET}; was {opset}")
    b = _Builder()
    blocks = [
        _cross(b, f) if isinstance(f, CrossFeature) else _feature(b, spec, f)
        for f in spec.features
    ]
    b.nodes.append(helper.make_node("Concat", blocks, [spec.output_name], name=f"{_PREFIX}concat",
                                    axis=1))
    graph = helper.make_graph(
        b.nodes,
        "transforms",
        [helper.make_tensor_value_info(c.name, _ELEM[c.dtype], ["rows"]) for c in spec.inputs],
        [helper.make_tensor_value_info(spec.output_name, TensorProto.FLOAT, ["rows", spec.width])],
        initializer=b.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[
            helper.make_opsetid("", opset),
            helper.make_opsetid("ai.onnx.ml", ml_opset),
            helper.make_opsetid("com.microsoft", 1),
        ],
        producer_name="engine.transforms",
    )
    if ir_version is not None:
        model.ir_version = ir_version
    return model


def _opset(model: onnx.ModelProto, domain: str) -> int | None:
    for entry in model.opset_import:
        if entry.domain in ((domain,) if domain else ("", "ai.onnx")):
            return int(entry.version)
    return None


def merge_with_model(
    spec: TransformSpec,
    model: str | os.PathLike[str] | onnx.ModelProto,
    out_path: str | os.PathLike[str] | None = None,
    *,
    model_input: str | None = None,
) -> onnx.ModelProto:
    """Put the spec's graph in front of ``model``, whose input is float32 [rows, spec.width].

    The merged model takes the raw columns as inputs and has the model's outputs. Writes it to
    ``out_path`` when given and returns it. Raises ExportError when the model's input does not
    fit (name, dtype or width) or the graphs cannot be merged.
    """
    base = onnx.load(os.fspath(model)) if not isinstance(model, onnx.ModelProto) else model
    init_names = {i.name for i in base.graph.initializer}
    real_inputs = [i for i in base.graph.input if i.name not in init_names]
    if model_input is None:
        if len(real_inputs) != 1:
            raise ExportError(
                f"the model has inputs {[i.name for i in real_inputs]}; pass model_input= to say "
                "which one takes the transformed features"
            )
        target = real_inputs[0]
    else:
        matches = [i for i in real_inputs if i.name == model_input]
        if not matches:
            raise ExportError(f"the model has no input {model_input!r}; it has "
                              f"{[i.name for i in real_inputs]}")
        target = matches[0]
    _check_target(spec, target)
    opset = max(_opset(base, "") or MIN_OPSET, MIN_OPSET)
    if (_opset(base, "") or 0) < opset:
        try:
            base = onnx.version_converter.convert_version(base, opset)
        except Exception as exc:
            raise ExportError(f"cannot raise the model to opset {opset}: {exc}") from exc
    ml_opset = max(_opset(base, "ai.onnx.ml") or DEFAULT_ML_OPSET, 2)
    pre = to_onnx(spec, opset=opset, ml_opset=ml_opset)
    ir = max(pre.ir_version, base.ir_version)
    pre.ir_version = ir
    base.ir_version = ir
    clash = {i.name for i in pre.graph.input} & ({i.name for i in real_inputs} - {target.name})
    if clash:
        raise ExportError(f"model inputs {sorted(clash)} clash with transform input columns")
    try:
        merged = onnx.compose.merge_models(pre, base, io_map=[(spec.output_name, target.name)])
        onnx.checker.check_model(merged)
    except (ValueError, onnx.checker.ValidationError) as exc:
        raise ExportError(f"cannot merge the transforms into the model: {exc}") from exc
    if out_path is not None:
        onnx.save(merged, os.fspath(out_path))
    return merged


def _check_target(spec: TransformSpec, target: onnx.ValueInfoProto) -> None:
    tensor = target.type.tensor_type
    if tensor.elem_type != TensorProto.FLOAT:
        raise ExportError(f"model input {target.name!r} must be float32 to take the transformed "
                          f"features; it is {TensorProto.DataType.Name(tensor.elem_type)}")
    dims = tensor.shape.dim
    if len(dims) != 2:
        raise ExportError(f"model input {target.name!r} must be 2-D [rows, {spec.width}]; "
                          f"it has {len(dims)} dims")
    if dims[1].HasField("dim_value") and dims[1].dim_value != spec.width:
        raise ExportError(f"model input {target.name!r} takes {dims[1].dim_value} features; "
                          f"the transform spec produces {spec.width}")
