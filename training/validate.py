"""Validation of an exported model: ``onnx.checker``, a load in the engine, numeric parity.

Parity compares the engine's outputs with the original framework's on the same sample. A value
output passes when every element pair agrees:

- both finite: numpy's ``isclose`` rule, ``|engine - framework| <= atol + rtol * |framework|``;
- both infinite: only with the same sign (``log(0)`` is ``-inf`` in both);
- both NaN: they agree (NaN in the same place is the same result, e.g. ``0/0``);
- anything else (inf or NaN against a finite value, ``-inf`` against ``+inf``, inf against
  NaN) is a mismatch that no tolerance covers, and the failure message says so.

A label output passes when labels are equal, except on rows where the framework's own top two
probabilities are within that same tolerance of each other (a tie that float32 rounding may
legitimately break either way).
The report gives the maximum absolute and relative error per output over its finite pairs, and
counts the non-finite disagreements apart; relative error is
``|engine - framework| / |framework|`` over finite pairs where the framework's value is
non-zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import EngineError, ExportError
from engine.signature import TensorSpec

__all__ = [
    "DEFAULT_ATOL",
    "DEFAULT_RTOL",
    "OutputParity",
    "ParityReport",
    "check_onnx",
    "compare_labels",
    "compare_values",
    "declare_output_shapes",
    "default_domain_opset",
    "engine_signature",
    "normalise_opsets",
    "run_onnx",
    "top_two_margin",
]

# float32 inference of float64-trained models: differences of 1e-6..1e-5 are normal.
DEFAULT_ATOL = 1e-4
DEFAULT_RTOL = 1e-3


def check_onnx(path: str | Path, shown: str | None = None) -> None:
    """Run ``onnx.checker`` with shape inference; raise ExportError with its message.

    ``shown`` names the file in messages (the export's ``--out``, not the staged temp file
    that is gone by the time the message is read); ``path`` by default. So below."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(
            f"the exported model {shown or str(path)!r} fails onnx.checker: {exc}"
        ) from exc


def default_domain_opset(model: Any) -> int | None:
    """The highest version of the default ONNX domain that ``model`` (a ModelProto) imports;
    None if it imports none."""
    versions = [int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")]
    return max(versions, default=None)


def normalise_opsets(path: str | Path) -> dict[str, int]:
    """Rewrite ``path`` so that each domain is imported once, at the highest of its versions
    (skl2onnx lists the default domain twice for some models), and return its opsets, domain
    -> version (``""`` for the default domain, which ``"ai.onnx"`` also names)."""
    import onnx
    from onnx import helper

    model = onnx.load(str(path))
    opsets: dict[str, int] = {}
    for entry in model.opset_import:
        domain = "" if entry.domain == "ai.onnx" else entry.domain
        opsets[domain] = max(int(entry.version), opsets.get(domain, 0))
    if len(opsets) != len(model.opset_import):
        del model.opset_import[:]
        model.opset_import.extend(helper.make_opsetid(d, v) for d, v in opsets.items())
        onnx.save(model, str(path))
    return opsets


def run_onnx(
    path: str | Path, inputs: Mapping[str, np.ndarray], shown: str | None = None
) -> dict[str, np.ndarray]:
    """Load ``path`` in the engine and run it once on ``inputs``: the one place export
    validation executes ONNX, so parity is measured on the runtime that will serve it."""
    import engine
    from engine.config import ModelConfig

    rows = max((int(np.shape(a)[0]) for a in inputs.values() if np.ndim(a)), default=1)
    # One direct run of the whole sample: no batcher, and a batch limit that admits it.
    config = ModelConfig(batching=False, max_batch_size=max(rows, 1), intra_op_threads=1)
    try:
        with engine.load(path, config=config) as model:
            return model.predict(dict(inputs))
    except EngineError as exc:
        raise ExportError(
            f"the engine could not run the exported model {shown or str(path)!r}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def declare_output_shapes(path: str | Path, got: Mapping[str, np.ndarray]) -> None:
    """Rewrite the declared shapes of ``path``'s outputs that disagree with what a run
    returned (``got``): its first dimension stays as declared, the others become the sizes
    seen.

    Some converters' shape calculators declare, say, ``[N, 1]`` for a regressor of two targets
    or ``[N, 2]`` for a classifier's one column of scores. ONNX Runtime then logs a warning on
    every run, and the registry and clients would be told the wrong signature.
    """
    import onnx

    model = onnx.load(str(path))
    changed = False
    for output in model.graph.output:
        array = got.get(output.name)
        if array is None or not output.type.HasField("tensor_type"):
            continue
        tensor = output.type.tensor_type
        declared = list(tensor.shape.dim) if tensor.HasField("shape") else []
        actual = np.shape(array)
        if len(declared) == len(actual) and all(
            not dim.HasField("dim_value") or dim.dim_value == size
            for dim, size in zip(declared, actual)
        ):
            continue
        batch = onnx.TensorShapeProto.Dimension()
        if declared:
            batch.CopyFrom(declared[0])
        elif actual:
            batch.dim_param = "N"
        tensor.shape.ClearField("dim")
        for axis, size in enumerate(actual):
            dim = tensor.shape.dim.add()
            if axis == 0:
                dim.CopyFrom(batch)
            else:
                dim.dim_value = int(size)
        changed = True
    if changed:
        onnx.save(model, str(path))


def engine_signature(
    path: str | Path, shown: str | None = None
) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """The (inputs, outputs) the engine reports for ``path``: what serving will advertise."""
    import engine

    try:
        with engine.load(path, intra_op_threads=1) as model:
            return tuple(model.inputs), tuple(model.outputs)
    except EngineError as exc:
        raise ExportError(
            f"the engine could not load the exported model {shown or str(path)!r}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


@dataclass(frozen=True)
class OutputParity:
    """Parity of one output. ``mismatches`` counts elements (or rows, for labels) that fail."""

    name: str
    kind: str  # "values" or "labels"
    max_abs_error: float
    max_rel_error: float
    mismatches: int
    elements: int
    # Of ``mismatches``: pairs where a side is inf or NaN and the other side differs (see the
    # module docstring); raising the tolerance never fixes these.
    nonfinite_mismatches: int = 0

    @property
    def passed(self) -> bool:
        return self.mismatches == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "max_abs_error": self.max_abs_error,
            "max_rel_error": self.max_rel_error,
            "mismatches": self.mismatches,
            "elements": self.elements,
            "nonfinite_mismatches": self.nonfinite_mismatches,
            "passed": self.passed,
        }


@dataclass(frozen=True)
class ParityReport:
    """Parity of every compared output on ``rows`` sample rows at tolerance ``atol``/``rtol``."""

    atol: float
    rtol: float
    rows: int
    outputs: tuple[OutputParity, ...] = field(default_factory=tuple)
    # Outputs the model wrote that had no reference to compare with (said, never claimed).
    unchecked: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outputs)

    @property
    def max_abs_error(self) -> float:
        return max((o.max_abs_error for o in self.outputs), default=0.0)

    @property
    def max_rel_error(self) -> float:
        return max((o.max_rel_error for o in self.outputs), default=0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "atol": self.atol,
            "rtol": self.rtol,
            "rows": self.rows,
            "passed": self.passed,
            "max_abs_error": self.max_abs_error,
            "max_rel_error": self.max_rel_error,
            "outputs": [o.to_dict() for o in self.outputs],
            "unchecked": list(self.unchecked),
        }

    def metrics(self) -> dict[str, float]:
        """The figures recorded as registry metrics (``parity_*``)."""
        return {
            "parity_max_abs_error": self.max_abs_error,
            "parity_max_rel_error": self.max_rel_error,
            "parity_rows": float(self.rows),
        }

    def raise_if_failed(self) -> None:
        failed = [o for o in self.outputs if not o.passed]
        if not failed:
            return
        detail = "; ".join(_failure_detail(o) for o in failed)
        if any(o.nonfinite_mismatches for o in failed):
            advice = (
                "No tolerance covers an infinity or NaN that the other side does not have: the "
                "exported graph computes something else than the original model"
            )
        else:
            advice = (
                "If the difference is float32 rounding, raise --atol/--rtol; otherwise the "
                "exported graph computes something else than the original model"
            )
        raise ExportError(
            f"parity check failed at atol={self.atol:g} rtol={self.rtol:g} on "
            f"{self.rows} rows: {detail}. {advice}"
        )


def _failure_detail(o: OutputParity) -> str:
    unit = "rows" if o.kind == "labels" else "values"
    errors = f"max abs {o.max_abs_error:.3g}, max rel {o.max_rel_error:.3g}"
    if o.nonfinite_mismatches:
        errors = (
            f"{o.nonfinite_mismatches} of them with inf or NaN on one side only, or infinities "
            f"of opposite sign; on the finite pairs {errors}"
        )
    return f"{o.name}: {o.mismatches} of {o.elements} {unit} differ ({errors})"


def compare_values(
    name: str, actual: np.ndarray, expected: np.ndarray, atol: float, rtol: float
) -> OutputParity:
    """Element-wise parity of a numeric output (shapes must agree up to trailing 1s), by the
    rules of the module docstring: the tolerance applies to finite pairs only."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.size != expected.size:
        raise ExportError(
            f"output {name!r}: the engine returned shape {actual.shape}, the "
            f"framework {expected.shape}"
        )
    actual = actual.reshape(expected.shape)
    finite = np.isfinite(actual) & np.isfinite(expected)
    # Non-finite pairs agree only as the same infinity, or NaN in both places.
    same_nonfinite = ~finite & (
        (np.isnan(actual) & np.isnan(expected)) | (np.isinf(expected) & (actual == expected))
    )
    finite_actual = np.where(finite, actual, 0.0)
    finite_expected = np.where(finite, expected, 0.0)
    with np.errstate(over="ignore"):  # |1e308 - -1e308| is inf: a mismatch, not an error
        diff = np.abs(finite_actual - finite_expected)
        ok = same_nonfinite | (finite & (diff <= atol + rtol * np.abs(finite_expected)))
    nonzero = finite & (expected != 0)
    nonfinite_bad = int((~finite & ~same_nonfinite).sum())
    return OutputParity(
        name,
        "values",
        _max(diff[finite]),
        _max(diff[nonzero] / np.abs(expected[nonzero])),
        int((~ok).sum()),
        int(diff.size),
        nonfinite_bad,
    )


def compare_labels(
    name: str,
    actual: np.ndarray,
    expected: np.ndarray,
    tie_margin: np.ndarray | None,
    atol: float,
    rtol: float,
) -> OutputParity:
    """Row-wise label equality; rows whose ``tie_margin`` is within tolerance may differ."""
    actual = np.asarray(actual).reshape(-1)
    expected = np.asarray(expected).reshape(-1)
    if actual.size != expected.size:
        raise ExportError(
            f"output {name!r}: the engine returned {actual.size} labels, the "
            f"framework {expected.size}"
        )
    differ = _as_comparable(actual) != _as_comparable(expected)
    if tie_margin is not None:
        differ &= np.asarray(tie_margin).reshape(-1) > atol + rtol
    return OutputParity(name, "labels", 0.0, 0.0, int(differ.sum()), int(actual.size))


def top_two_margin(probabilities: np.ndarray) -> np.ndarray:
    """Per row, the gap between the two largest probabilities (1.0 for a single class)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[1] < 2:
        return np.ones(probabilities.shape[0])
    top = np.sort(probabilities, axis=1)[:, -2:]
    margin: np.ndarray = top[:, 1] - top[:, 0]
    return margin


def _as_comparable(labels: np.ndarray) -> np.ndarray:
    # The engine returns string labels as str; frameworks may hold bytes or numpy str_.
    if labels.dtype.kind in "OSU":
        return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in labels])
    return labels


def _max(values: np.ndarray) -> float:
    return float(values.max()) if values.size else 0.0
