"""``engine train EXAMPLE``: train, evaluate, export, validate and register in one command.

Prints one line per step and, at the end, the reference to serve (``name:VERSION``, and
``name@ALIAS`` with ``--alias``). Examples and families: ``engine train --help``.

Lineage: a retrain under an existing name records as its parent the newest version of that
name (archived ones included) when it registers: the registry picks it in the transaction
that numbers the new version, so retrains registering at once form a chain.
``--parent NAME:VERSION`` names another (checked to exist before training), ``--no-parent``
records none.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]

# Kept here as literals so `engine --help` does not import scikit-learn; a test checks they
# match engine.training.examples.EXAMPLES and engine.training.families.FAMILIES.
EXAMPLE_NAMES = ("tabular-demo", "regression-demo", "diabetes-demo")
FAMILY_NAMES = ("linear", "hist_gradient_boosting", "random_forest", "mlp", "torch_mlp")


def register(subparsers: Any) -> None:
    """Add ``train`` to the ``engine`` parser."""
    p = subparsers.add_parser(
        "train",
        help="train an example model, export, validate and register it",
        description="Train an example on local data (synthetic with a fixed seed, or shipped "
        "with scikit-learn), evaluate it on a validation split, export it to ONNX, "
        "check parity in the engine on the held-out rows, and register it with "
        "its lineage and reference profile. Examples: tabular-demo "
        "(classification, numeric + categorical columns), regression-demo "
        "(regression, numeric + categorical), diabetes-demo (regression, "
        "scikit-learn's diabetes data).",
    )
    p.add_argument("example", choices=EXAMPLE_NAMES)
    p.add_argument(
        "--family",
        choices=FAMILY_NAMES,
        help="model family (default: the example's; torch_mlp needs the train extra)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for data, split and model")
    p.add_argument("--rows", type=int, help="dataset rows (default: the example's)")
    p.add_argument("--valid-fraction", type=float, default=0.25)
    p.add_argument("--epochs", type=int, default=30, help="torch_mlp epochs")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: 18)")
    p.add_argument("--atol", type=float, default=None, help="parity tolerance (default: 1e-4)")
    p.add_argument("--rtol", type=float, default=None, help="parity tolerance (default: 1e-3)")
    p.add_argument(
        "--out-dir",
        type=Path,
        help="keep model.onnx and profile.json here (default: a temporary folder)",
    )
    p.add_argument("--name", help="registered model name (default: the example's name)")
    p.add_argument("--alias", help="point this alias (e.g. production) at the new version")
    p.add_argument(
        "--no-register",
        dest="register",
        action="store_false",
        help="stop after export and validation (needs --out-dir)",
    )
    lineage = p.add_mutually_exclusive_group()
    lineage.add_argument(
        "--parent",
        metavar="NAME:VERSION",
        help="lineage parent of the new version, checked to exist before training (default: "
        "the newest version of the name when the new one registers, if any)",
    )
    lineage.add_argument(
        "--no-parent",
        dest="inherit_parent",
        action="store_false",
        help="record no parent, even when the name has versions already",
    )
    p.add_argument("--home", help="registry home (default: $ENGINE_HOME or ~/.engine)")
    p.add_argument("--registry-url", help="SQLAlchemy database URL of the registry")
    p.add_argument(
        "--artifacts-url",
        help="fsspec URL of a shared artifact store (default: $ENGINE_ARTIFACTS_URL, else the "
        "home's artifacts folder)",
    )
    p.add_argument("--json", action="store_true", help="print the outcome as JSON")
    p.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> int:
    from engine.errors import EngineError, InvalidConfigError
    from engine.training.examples import TrainRequest, run_example
    from engine.training.export_options import ExportOptions

    given = {"opset": args.opset, "atol": args.atol, "rtol": args.rtol}
    request = TrainRequest(
        example=args.example,
        family=args.family,
        seed=args.seed,
        rows=args.rows,
        valid_fraction=args.valid_fraction,
        epochs=args.epochs,
        export=ExportOptions(**{k: v for k, v in given.items() if v is not None}),
        out_dir=args.out_dir,
        register=args.register,
        name=args.name,
        alias=args.alias,
        home=args.home,
        registry_url=args.registry_url,
        artifacts_url=args.artifacts_url,
        parent=args.parent,
        inherit_parent=args.inherit_parent,
    )
    if not args.register:
        for option, used in (
            ("--alias", args.alias),
            ("--parent", args.parent),
            ("--no-parent", not args.inherit_parent),
        ):
            if used:
                raise InvalidConfigError(f"{option} needs registration; drop --no-register")
    progress = (lambda line: print(line, file=sys.stderr)) if args.json else print
    try:
        outcome = run_example(request, progress)
    except ValueError as exc:
        # Bad argument values (rows, fractions, epochs) arrive as ValueError from the pipeline;
        # the engine's own errors (InvalidModelNameError too) keep their class.
        if isinstance(exc, EngineError):
            raise
        raise InvalidConfigError(str(exc)) from exc
    if args.json:
        print(json.dumps(_outcome_dict(outcome), indent=2))
        return 0
    if outcome.version is None:
        print(f"not registered; artifacts in {args.out_dir}")
        return 0
    version = outcome.version
    print(
        f"registered {version.ref}"
        + (f" (alias {args.alias})" if args.alias else "")
        + f"; data {outcome.lineage['data_fingerprint']}, code "
        f"{outcome.lineage['code_revision'] or 'unknown (not a git checkout)'}, parent "
        f"{outcome.lineage['parent'] or '-'}"
    )
    reference = f"{version.name}@{args.alias}" if args.alias else version.ref
    print(f"serve it with: {reference}")
    return 0


def _outcome_dict(outcome: Any) -> dict[str, Any]:
    return {
        "example": outcome.example.name,
        "family": outcome.family,
        "metrics": outcome.metrics,
        "export": outcome.export.to_dict(),
        "lineage": outcome.lineage,
        "notes": list(outcome.notes),
        "version": outcome.version.to_dict() if outcome.version is not None else None,
        "profile_path": str(outcome.profile_path),
    }
