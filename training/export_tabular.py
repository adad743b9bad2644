"""Export of the PyTorch tabular family: the scikit-learn preprocessing graph (skl2onnx) and
the MLP graph (torch.onnx) merged into one ONNX model that takes the raw columns.

The preprocessor's output feeds the MLP's ``features`` input; every other name gets the prefix
``preprocess/`` or ``mlp/`` so the two graphs cannot collide. Outputs are ``label`` and
``probabilities`` (classification) or ``variable`` (regression), as for scikit-learn models.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from engine.training.export_options import ExportOptions, ExportResult, staged_output
from engine.training.export_sklearn import ML_OPSET, table_inputs
from engine.training.export_torch import torch_to_onnx
from engine.training.samples import Sample
from engine.training.served_inputs import serve_columns
from engine.training.torch_mlp import TorchTabularModel
from engine.training.validate import (
    OutputParity,
    ParityReport,
    check_onnx,
    compare_labels,
    compare_values,
    engine_signature,
    normalise_opsets,
    run_onnx,
    top_two_margin,
)

from engine.errors import ExportError

__all__ = ["export_tabular_torch"]

_FEATURES = "features"


def export_tabular_torch(
    model: TorchTabularModel, sample: Sample, out: str | Path, options: ExportOptions | None = None
) -> ExportResult:
    """Convert both halves, merge, write ``out`` (only if valid), compare with torch."""
    import onnx
    import torch
    from skl2onnx import convert_sklearn

    options = options or ExportOptions()
    if sample.table is None:
        raise ExportError(
            f"sample {sample.source!r}: the tabular torch family takes a table "
            "(.csv or .parquet) with the training columns"
        )
    columns = [str(c) for c in model.preprocessor.feature_names_in_]
    batch = None if options.dynamic_batch else sample.rows
    feeds, frame, types = table_inputs(sample.table, columns, batch, sample.source)
    default_names = ["label", "probabilities"] if model.task == "classification" else ["variable"]
    output_names = list(options.output_names) or default_names
    if len(output_names) != len(default_names):
        raise ExportError(
            f"--output-names gives {len(output_names)} names; the model has "
            f"{len(default_names)} outputs {default_names}"
        )
    pre = convert_sklearn(
        model.preprocessor,
        initial_types=types,
        target_opset={"": options.opset, "ai.onnx.ml": ML_OPSET},
    )
    pre = serve_columns(pre, feeds)  # bool columns: served as bool, cast in the graph
    features = torch.from_numpy(model.features(frame))
    with tempfile.TemporaryDirectory() as tmp:
        mlp_path = Path(tmp) / "mlp.onnx"
        torch_to_onnx(model.module, (features,), [_FEATURES], output_names, options, mlp_path)
        mlp = onnx.load(str(mlp_path))
    merged = _merge(pre, mlp, output_names, options.opset)
    expected = model.forward(frame)
    with staged_output(out) as staged:
        onnx.save(merged, str(staged))
        opsets = normalise_opsets(staged)
        check_onnx(staged, str(out))
        got = run_onnx(staged, feeds, str(out))
        atol, rtol = options.atol, options.rtol
        results: tuple[OutputParity, ...]
        if model.task == "classification":
            label, proba = output_names
            results = (
                compare_values(proba, got[proba], expected[1], atol, rtol),
                compare_labels(
                    label, got[label], expected[0], top_two_margin(expected[1]), atol, rtol
                ),
            )
        else:
            results = (
                compare_values(output_names[0], got[output_names[0]], expected[0], atol, rtol),
            )
        parity = ParityReport(atol, rtol, sample.rows, results)
        parity.raise_if_failed()
        inputs, outputs = engine_signature(staged, str(out))
    return ExportResult(Path(out), "torch", opsets, inputs, outputs, parity)


def _merge(pre: Any, mlp: Any, output_names: list[str], opset: int) -> Any:
    import onnx
    from onnx import compose, version_converter

    # skl2onnx emits the lowest opset its ops need; merge_models wants one opset per domain.
    if _default_opset(pre) != _default_opset(mlp):
        try:
            pre = version_converter.convert_version(pre, _default_opset(mlp))
        except Exception as exc:  # the converter raises bare RuntimeErrors from C++
            raise ExportError(
                f"cannot lift the preprocessing graph from opset "
                f"{_default_opset(pre)} to {_default_opset(mlp)}: {exc}"
            ) from exc

    # Both halves at one IR version (the newer one reads the older's graphs unchanged).
    ir_version = max(pre.ir_version, mlp.ir_version)
    pre.ir_version = ir_version
    mlp.ir_version = ir_version
    mlp = compose.add_prefix(mlp, "mlp/", rename_inputs=False, rename_outputs=False)
    pre = compose.add_prefix(pre, "preprocess/", rename_inputs=False)
    pre_output = pre.graph.output[0].name
    try:
        merged = compose.merge_models(
            pre, mlp, io_map=[(pre_output, _FEATURES)], outputs=output_names
        )
    except (ValueError, onnx.checker.ValidationError) as exc:
        raise ExportError(f"cannot join the preprocessing and MLP graphs: {exc}") from exc
    merged.graph.name = "tabular_torch_mlp"
    return merged


def _default_opset(model: Any) -> int:
    return int(next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")))
