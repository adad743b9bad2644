"""Read an ONNX file's signature (graph inputs and outputs) with the ``onnx`` package.

Files whose tensors live in external data files are refused: the registry stores one
self-contained file per version, and external paths inside a model are a traversal risk.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]

from engine.config import ModelConfig
from engine.errors import InvalidConfigError, ModelLoadError
from engine.signature import TensorSpec, check_declared, dtype_by_name

# check_declared lives with TensorSpec (engine.load uses it too); re-exported for the registry.
__all__ = ["check_declared", "check_loads", "check_model_file", "read_signature"]


def read_signature(
    path: Path | bytes, *, label: str | None = None
) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Return ``(inputs, outputs)`` of the ONNX model at ``path`` (or serialized in ``path``'s
    bytes); -1 marks a dynamic dim.

    ``label`` names the file in error messages (defaults to ``path``). Raises ModelLoadError
    for unreadable or invalid files, external data, and non-tensor or untyped inputs/outputs.
    """
    shown = repr(label or ("<bytes>" if isinstance(path, bytes) else str(path)))
    try:
        if isinstance(path, bytes):
            model = onnx.load_model_from_string(path)
        else:
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


def check_loads(path: Path, label: str) -> None:
    """Raise ModelLoadError unless ONNX Runtime's CPU provider can load the model at ``path``.

    onnx's checker passes files that ONNX Runtime refuses: an operator bound to mismatched
    types, an output declared with the wrong type, an operator of an unknown domain. Such a
    version would register and then fail at every load. This creates a session without graph
    optimizations (its checks are those of loading, not of optimizing) and drops it.
    """
    import onnxruntime as ort  # type: ignore[import-untyped]

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: its warnings are not this check's
    try:
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - ORT raises its own classes, or RuntimeError
        reason = " ".join(str(exc).split())
        raise ModelLoadError(
            f"{label!r}: ONNX Runtime cannot load this model on the CPU: {reason}"
        ) from None


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


def check_model_file(
    path: Path, config: ModelConfig, label: str
) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Read the signature of the ONNX file at ``path`` and check that ``config`` can load it:
    its declared inputs and outputs match, and forced batching has a batch dimension to use.

    Returns ``(inputs, outputs)``. ``label`` names the model in messages. Raises ModelLoadError
    (see :func:`read_signature`) or InvalidConfigError naming the tensor and both sides.
    """
    inputs, outputs = read_signature(path, label=label)
    check_loads(path, label)
    check_declared(config.inputs, inputs, "input", label)
    check_declared(config.outputs, outputs, "output", label)
    # The core's rule (csrc/model.cc): batching needs a dynamic first dimension everywhere.
    unbatchable = [t.name for t in inputs + outputs if not t.shape or t.shape[0] != -1]
    if config.batching and unbatchable:
        raise InvalidConfigError(
            f"{label}: config turns batching on but {unbatchable} have no dynamic first "
            f"dimension; set batching off (no dynamic_batching in config.pbtxt)"
        )
    return inputs, outputs
