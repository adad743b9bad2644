"""The served inputs of a converted table model: a small graph in front of skl2onnx's.

skl2onnx converts a model with input types its converters accept; the served model takes the
sample's columns as they are, one ``[batch, 1]`` input per column. Two cases need a step
between them, added here as nodes in front of the converted graph:

- a bool column is served as a ``bool`` input and cast to float (0.0/1.0, which is how
  scikit-learn reads a bool column) before the converted graph: skl2onnx's converters accept
  no bool input, while float works for every consumer (encoders, scalers, passthrough).
- a model whose first step takes one numeric matrix (a bare estimator fitted on a DataFrame,
  or a Pipeline that does not start with a ColumnTransformer) is converted with one
  ``[batch, columns]`` float input; the served model concatenates its column inputs into that
  matrix in the fitted column order, as scikit-learn's ``check_array`` does with the DataFrame.

The converted graph's own names get the prefix ``model/`` and the added ones ``served/``, so
they cannot collide with the column names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from engine.training.validate import default_domain_opset

from engine.errors import ExportError

__all__ = ["serve_columns"]

_ADDED = "served/"
_MODEL = "model/"


def serve_columns(onx: Any, feeds: Mapping[str, np.ndarray], matrix: str | None = None) -> Any:
    """``onx`` taking exactly ``feeds`` (column name -> ``[rows, 1]`` array, in column order).

    ``matrix`` names the converted graph's one float ``[batch, columns]`` input when the
    columns are to be concatenated into it; otherwise the graph has one input per column, and
    only those served as bool change. Returns ``onx`` itself when nothing needs to change.
    The caller has checked that no column has the name of one of the model's outputs.
    Raises ExportError when the adapter cannot be put in front of the model.
    """
    import onnx
    from onnx import TensorProto, compose, helper

    bool_columns = [name for name, array in feeds.items() if array.dtype == np.bool_]
    if matrix is None and not bool_columns:
        return onx
    converted = {i.name: i.type.tensor_type for i in onx.graph.input}
    first = converted[matrix] if matrix is not None else converted[next(iter(feeds))]
    batch = _dim(first.shape.dim[0]) if first.HasField("shape") else None

    nodes: list[Any] = []
    inputs: list[Any] = []
    # The adapter shares the model's opsets, and ONNX Runtime has no Cast before opset 6.
    default_opset = default_domain_opset(onx) or 6
    if bool_columns and default_opset < 6:
        raise ExportError(
            f"the bool columns {bool_columns} are cast to float inside the graph, which ONNX "
            f"Runtime runs at opset 6 or higher, but skl2onnx wrote opset {default_opset} for "
            "this model: raise --opset (skl2onnx writes the lowest opset it can under it)"
        )

    def served(name: str) -> str:
        """The tensor holding column ``name`` as the converted graph reads it."""
        if feeds[name].dtype != np.bool_:
            return name
        cast = f"{_ADDED}{name}"
        nodes.append(helper.make_node("Cast", [name], [cast], to=TensorProto.FLOAT))
        return cast

    for name, array in feeds.items():
        if array.dtype == np.bool_:
            elem = TensorProto.BOOL
        elif matrix is not None:
            elem = TensorProto.FLOAT
        else:
            elem = converted[name].elem_type
        inputs.append(helper.make_tensor_value_info(name, elem, [batch, 1]))
    io_map: list[tuple[str, str]] = []
    if matrix is not None:
        joined = f"{_ADDED}{matrix}"
        nodes.append(helper.make_node("Concat", [served(n) for n in feeds], [joined], axis=1))
        io_map.append((joined, f"{_MODEL}{matrix}"))
    else:
        for name in feeds:
            tensor = served(name)
            if tensor == name:  # a graph output cannot also be a graph input
                tensor = f"{_ADDED}{name}"
                nodes.append(helper.make_node("Identity", [name], [tensor]))
            io_map.append((tensor, f"{_MODEL}{name}"))
    adapter_outputs = [
        helper.make_tensor_value_info(
            added,
            converted[target[len(_MODEL) :]].elem_type,
            [_dim(d) for d in converted[target[len(_MODEL) :]].shape.dim],
        )
        for added, target in io_map
    ]
    adapter = helper.make_model(
        helper.make_graph(nodes, "served_inputs", inputs, adapter_outputs),
        opset_imports=list(onx.opset_import),
    )
    adapter.ir_version = onx.ir_version
    model = compose.add_prefix(onx, _MODEL, rename_outputs=False)
    try:
        merged = compose.merge_models(
            adapter, model, io_map=io_map, outputs=[o.name for o in onx.graph.output]
        )
    except (ValueError, onnx.checker.ValidationError) as exc:
        raise ExportError(f"cannot put the column inputs in front of the model: {exc}") from exc
    merged.graph.name = onx.graph.name
    return merged


def _dim(dim: Any) -> int | str | None:
    if dim.HasField("dim_value"):
        return int(dim.dim_value)
    if dim.HasField("dim_param"):
        return str(dim.dim_param)
    return None
