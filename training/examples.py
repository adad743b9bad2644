"""The ``engine train EXAMPLE`` runs: train, evaluate, export, validate, register.

Each example names a dataset and a default model family; :func:`run_example` does the whole
path and returns a :class:`TrainOutcome`. Artifacts go to ``out_dir`` (a temporary folder when
None, removed after registration, so the outcome's paths are then gone and the registry
holds the artifact): ``model.onnx`` and ``profile.json``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from engine.training.datasets import load_dataset, split
from engine.training.export_options import (
    ExportOptions,
    ExportResult,
    created_folders_removed_on_failure,
    describe_opsets,
)
from engine.training.export_sklearn import table_inputs
from engine.training.families import FAMILIES
from engine.training.lineage import (
    check_parent,
    fingerprint_dataset,
    make_lineage,
    register_model,
)
from engine.training.pipeline import evaluate, export_trained, train_tabular
from engine.training.profile import profile_frame, profile_outputs, save_profile
from engine.training.torch_mlp import TorchTrainParams
from engine.training.validate import run_onnx

from engine.errors import InvalidConfigError
from engine.names import validate_name
from engine.registry import Lineage, Registry, validate_new_alias

__all__ = ["EXAMPLES", "Example", "TrainOutcome", "TrainRequest", "run_example"]


@dataclass(frozen=True)
class Example:
    name: str
    dataset: str
    default_family: str
    description: str


EXAMPLES: dict[str, Example] = {
    e.name: e
    for e in (
        Example(
            "tabular-demo",
            "synthetic_customers",
            "hist_gradient_boosting",
            "binary classification on synthetic customers: 4 numeric + 3 categorical columns",
        ),
        Example(
            "regression-demo",
            "synthetic_house_prices",
            "hist_gradient_boosting",
            "regression on synthetic house prices: 3 numeric + 2 categorical columns",
        ),
        Example(
            "diabetes-demo",
            "diabetes",
            "linear",
            "regression on scikit-learn's shipped diabetes data (10 numeric columns)",
        ),
    )
}


@dataclass(frozen=True)
class TrainRequest:
    """One run. ``name`` defaults to the example's name; ``rows`` to the dataset's size.

    Lineage parent of the registered version: ``parent`` (``name:VERSION``, any model, checked
    to exist before training); when None and ``inherit_parent`` (the default), the newest
    version of ``name`` at registration, archived or not (a retrain follows the previous
    training); None for the first version, or with ``inherit_parent=False``.
    """

    example: str
    family: str | None = None
    seed: int = 0
    rows: int | None = None
    valid_fraction: float = 0.25
    epochs: int = 30
    export: ExportOptions = field(default_factory=ExportOptions)
    out_dir: Path | None = None
    register: bool = True
    name: str | None = None
    alias: str | None = None
    home: str | Path | None = None
    registry_url: str | None = None
    artifacts_url: str | None = None
    parent: str | None = None
    inherit_parent: bool = True

    def __post_init__(self) -> None:
        # The registry checks these too, but only at the end, after training and export.
        if self.name is not None:
            validate_name(self.name)
        if self.alias is not None:
            validate_new_alias(self.alias)
        if self.parent is not None:
            Lineage(parent=self.parent)  # the format: name:VERSION
            if not self.inherit_parent:
                raise InvalidConfigError(
                    f"parent {self.parent!r} and inherit_parent=False contradict each other"
                )


@dataclass(frozen=True)
class TrainOutcome:
    example: Example
    family: str
    metrics: dict[str, float]
    export: ExportResult
    profile_path: Path
    params: dict[str, Any]
    lineage: dict[str, Any]
    notes: tuple[str, ...]
    version: Any | None  # engine.registry.ModelVersion when registered


def run_example(
    request: TrainRequest, progress: Callable[[str], None] = lambda _: None
) -> TrainOutcome:
    """Run the whole path for ``request``; ``progress`` gets one line per step."""
    try:
        example = EXAMPLES[request.example]
    except KeyError:
        raise ValueError(
            f"unknown example {request.example!r}; known: {sorted(EXAMPLES)}"
        ) from None
    family = request.family or example.default_family
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; known: {list(FAMILIES)}")
    if not request.register and request.parent is not None:
        raise InvalidConfigError(f"parent {request.parent!r} needs registration")
    if request.out_dir is None and not request.register:
        raise ValueError(
            "a run that neither registers nor has an out_dir would keep nothing; "
            "give an out_dir (--out-dir) or register"
        )
    with ExitStack() as stack:
        registry = None
        if request.register:
            # Opened (connected) before training: an unreachable database fails first, not
            # after the training, export and parity work it would throw away.
            registry = stack.enter_context(
                Registry(request.home, request.registry_url, request.artifacts_url)
            )
        if request.parent is not None:
            check_parent(request.parent, registry=registry)
        if request.out_dir is not None:
            out_dir = Path(request.out_dir)
            # Training that fails before it writes there leaves no empty --out-dir behind.
            stack.enter_context(created_folders_removed_on_failure(out_dir))
        else:
            out_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="engine-train-")))
        return _run(example, family, request, out_dir, progress, registry)


def _run(
    example: Example,
    family: str,
    request: TrainRequest,
    out_dir: Path,
    progress: Callable[[str], None],
    registry: Any,
) -> TrainOutcome:
    out_dir.mkdir(parents=True, exist_ok=True)
    data = load_dataset(example.dataset, request.rows, request.seed)
    train, valid = split(data, request.valid_fraction, request.seed)
    progress(
        f"data: {data.name}, {len(data.target)} rows ({len(train.target)} train, "
        f"{len(valid.target)} validation), {len(data.numeric)} numeric + "
        f"{len(data.categorical)} categorical columns"
    )

    trained = train_tabular(
        train, family, request.seed, torch_params=replace(TorchTrainParams(), epochs=request.epochs)
    )
    metrics = evaluate(trained, valid)
    progress(
        f"trained {family} ({trained.framework}); validation "
        + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items())
    )
    for note in trained.notes:
        progress(f"note: {note}")

    exported = export_trained(trained, valid, out_dir / "model.onnx", request.export)
    parity = exported.parity
    where = f" to {exported.path}" if request.out_dir is not None else ""
    progress(
        f"exported{where} ({describe_opsets(exported.opsets)}); parity on "
        f"{parity.rows} held-out rows: max abs {parity.max_abs_error:.3g}, max rel "
        f"{parity.max_rel_error:.3g} (atol {parity.atol:g}, rtol {parity.rtol:g})"
    )

    # Inputs from the training split; outputs as the engine serves them on that same split.
    profile = profile_frame(train.features, train.numeric, train.categorical)
    feeds, _, _ = table_inputs(train.features, train.columns, None, "training split")
    profile["outputs"] = profile_outputs(run_onnx(exported.path, feeds))
    profile_path = save_profile(profile, out_dir / "profile.json")

    params = {
        **trained.params,
        "example": example.name,
        "dataset": data.name,
        "rows": len(data.target),
        "valid_fraction": request.valid_fraction,
        "export": {
            "opset": exported.opset,
            "opsets": exported.opsets,
            "dynamic_batch": request.export.dynamic_batch,
            "atol": parity.atol,
            "rtol": parity.rtol,
        },
        "parity": parity.to_dict(),
        # The registry has no field of its own for it yet; the monitor reads it from here.
        "reference_profile": profile,
    }
    lineage = make_lineage(fingerprint_dataset(data), parent=request.parent)
    version = None
    if request.register:
        version = register_model(
            exported.path,
            request.name or example.name,
            inherit_parent=request.inherit_parent,
            metrics={**metrics, **parity.metrics()},
            params=params,
            lineage=lineage,
            alias=request.alias,
            tags={
                "example": example.name,
                "family": family,
                "framework": trained.framework,
                "task": data.task,
            },
            description=f"engine train {example.name}: {example.description}",
            registry=registry,
        )
        lineage = version.lineage.to_dict()  # as recorded: with the parent it inherited
    return TrainOutcome(
        example,
        family,
        metrics,
        exported,
        profile_path,
        params,
        lineage,
        tuple(trained.notes),
        version,
    )
