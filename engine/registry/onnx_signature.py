"""Read an ONNX file's signature (graph inputs and outputs) with the ``onnx`` package.

Files whose tensors live in external data files are refused: the registry stores one
self-contained file per version, and external paths inside a model are a traversal risk.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]

from engine.errors import InvalidConfigError, ModelLoadError
from engine.signature import TensorSpec, dtype_by_name

__all__ = ["check_declared", "read_signature"]


def read_signature(
    path: Path, *, label: str | None = None
) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Return ``(inputs, outputs)`` of the ONNX model at ``path``; -1 marks a dynamic dim.

    ``label`` names the file in error messages (defaults to ``path``). Raises ModelLoadError
    for unreadable or invalid files, external data, and non-tensor or untyped inputs/outputs.
    """
    shown = repr(label or str(path))
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, OSError, ValueError) as exc:
        raise ModelLoadError(f"{shown} is not a readable ONNX model: {exc}") from exc
    external = [
        t.name for t in _tensors(model.graph) if t.data_location == onnx.TensorProto.EXTERNAL
    ]
    if external:
        raise ModelLoadError(
            f"{shown} references external data for tensors {external[:5]}; external data is "
            f"refused: save the model as one file (onnx.save(model, path, "
            f"save_as_external_data=False))"
        )
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ModelLoadError(f"{shown} is not a valid ONNX model: {exc}") from exc
    initializers = {t.name for t in model.graph.initializer}
    # Older exporters list initializers among the graph inputs; they are not fed by callers.
    inputs = tuple(_spec(v, shown) for v in model.graph.input if v.name not in initializers)
    outputs = tuple(_spec(v, shown) for v in model.graph.output)
    if not outputs:
        raise ModelLoadError(f"{shown} has no graph outputs")
    return inputs, outputs


def _spec(value: onnx.ValueInfoProto, shown: str) -> TensorSpec:
    if value.type.WhichOneof("value") != "tensor_type":
        raise ModelLoadError(
            f"{shown}: {value.name!r} is a {value.type.WhichOneof('value')} value; only tensors "
            f"are supported as model inputs and outputs"
        )
    tensor = value.type.tensor_type
    type_name = onnx.TensorProto.DataType.Name(tensor.elem_type)
    try:
        dtype = dtype_by_name(type_name).name
    except KeyError:
        raise ModelLoadError(
            f"{shown}: {value.name!r} has element type {type_name}, which the engine does not "
            f"support"
        ) from None
    if not tensor.HasField("shape"):
        raise ModelLoadError(f"{shown}: {value.name!r} has no shape (unknown rank)")
    shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim)
    return TensorSpec(value.name, dtype, shape)


def _tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Every tensor stored in the graph, including in attributes and subgraphs."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _tensors(attr.g)
            for sub in attr.graphs:
                yield from _tensors(sub)


def check_declared(
    declared: tuple[TensorSpec, ...], actual: tuple[TensorSpec, ...], what: str, label: str
) -> None:
    """Check a config's declared inputs or outputs against the model's own signature.

    Every declared tensor must exist with the same dtype and rank; a dim matches when equal or
    when either side is -1. Raises InvalidConfigError naming the tensor and both values.
    """
    by_name = {t.name: t for t in actual}
    for spec in declared:
        real = by_name.get(spec.name)
        if real is None:
            raise InvalidConfigError(
                f"{label}: config declares {what} {spec.name!r} but the model's {what}s are "
                f"{sorted(by_name)}"
            )
        if real.dtype != spec.dtype:
            raise InvalidConfigError(
                f"{label}: config declares {what} {spec.name!r} as {spec.dtype} but the model "
                f"has {real.dtype}"
            )
        if len(real.shape) != len(spec.shape) or any(
            a != b and -1 not in (a, b) for a, b in zip(real.shape, spec.shape)
        ):
            raise InvalidConfigError(
                f"{label}: config declares {what} {spec.name!r} with shape {list(spec.shape)} "
                f"but the model has {list(real.shape)} (-1 = dynamic)"
            )
