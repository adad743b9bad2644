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

from engine.commands._urls import artifacts_url

__all__ = ["register"]

# Kept here as literals so `engine --help` does not import scikit-learn; a test checks they
# match engine.training.examples.EXAMPLES and engine.training.families.FAMILIES.
EXAMPLE_NAMES = ("tabular-demo", "regression-demo", "diabetes-demo")
FAMILY_NAMES = ("linear", "hist_gradient_boosting", "random_forest", "mlp", "torch_mlp")

# Fewer rows leave a validation split without both classes, or the mlp family's early
# stopping without a validation set of its own.
MIN_ROWS = 20
# The synthetic examples make their rows in memory (about 1 KB each, with the training's
# copies): a mistyped count must not exhaust the machine's memory before anything is said.
MAX_ROWS = 1_000_000
MAX_SEED = 2**32 - 1  # numpy's and scikit-learn's seeds are 32-bit


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
    p.add_argument(
        "--seed", type=int, default=0, help=f"seed for data, split and model (0 to {MAX_SEED})"
    )
    p.add_argument(
        "--rows",
        type=int,
        help=f"dataset rows, {MIN_ROWS} to {MAX_ROWS} (default: the example's)",
    )
    p.add_argument(
        "--valid-fraction",
        type=float,
        default=0.25,
        help="share of the rows held out for validation, between 0 and 1 (default: 0.25)",
    )
    p.add_argument("--epochs", type=int, default=30, help="torch_mlp epochs, at least 1")
    p.add_argument(
        "--opset",
        type=int,
        default=None,
        help="highest ONNX opset of the default domain the exporter may use (default: 18); "
        "scikit-learn families get the lowest one their operators need (e.g. 11), as printed",
    )
    p.add_argument("--atol", type=float, default=None, help="parity tolerance (default: 1e-4)")
    p.add_argument("--rtol", type=float, default=None, help="parity tolerance (default: 1e-3)")
    p.add_argument(
        "--out-dir",
        type=Path,
        help="keep model.onnx and profile.json here (default: a temporary folder, removed "
        "when the command ends)",
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
        type=artifacts_url,
        help="fsspec URL of a shared artifact store (default: $ENGINE_ARTIFACTS_URL, else the "
        "home's artifacts folder)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print the outcome as JSON (its file paths are null without --out-dir: the "
        "temporary folder is gone when the command exits)",
    )
    p.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> int:
    from engine.errors import EngineError, InvalidConfigError
    from engine.training.examples import TrainRequest, run_example
    from engine.training.export_options import ExportOptions

    _check_ranges(args)
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
        print(json.dumps(_outcome_dict(outcome, kept=args.out_dir is not None), indent=2))
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


def _check_ranges(args: argparse.Namespace) -> None:
    """The options' ranges, before any data is made: the pipeline's own errors would come
    later, from numpy or scikit-learn, without naming the option."""
    from engine.errors import InvalidConfigError
    from engine.training.export_options import check_output_dir

    if not 0 <= args.seed <= MAX_SEED:
        raise InvalidConfigError(f"--seed must be between 0 and {MAX_SEED}; was {args.seed}")
    if args.rows is not None and args.rows < MIN_ROWS:
        raise InvalidConfigError(
            f"--rows must be at least {MIN_ROWS} (enough to split and train every family); "
            f"was {args.rows}"
        )
    if args.rows is not None and args.rows > MAX_ROWS:
        raise InvalidConfigError(
            f"--rows must be at most {MAX_ROWS} (the examples make their data in memory); "
            f"was {args.rows}"
        )
    if not 0 < args.valid_fraction < 1:
        raise InvalidConfigError(
            f"--valid-fraction must be between 0 and 1, e.g. 0.25; was {args.valid_fraction}"
        )
    if args.epochs < 1:
        raise InvalidConfigError(f"--epochs must be at least 1; was {args.epochs}")
    if args.out_dir is not None:
        check_output_dir("--out-dir", args.out_dir)


def _outcome_dict(outcome: Any, *, kept: bool) -> dict[str, Any]:
    """``kept``: the files are in --out-dir; else their paths are null (the temporary folder
    they were written to is removed when the run ends)."""
    export = outcome.export.to_dict()
    if not kept:
        export["path"] = None
    return {
        "example": outcome.example.name,
        "family": outcome.family,
        "metrics": outcome.metrics,
        "export": export,
        "lineage": outcome.lineage,
        "notes": list(outcome.notes),
        "version": outcome.version.to_dict() if outcome.version is not None else None,
        "profile_path": str(outcome.profile_path) if kept else None,
    }
