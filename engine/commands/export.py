"""``engine export sklearn|torch``: a trained model -> a validated ONNX file.

Both subcommands take ``--sample DATA`` (.npy, .npz, .csv or .parquet; see
:mod:`engine.training.samples`), convert the model, run ``onnx.checker``, load the result in the
engine and compare its outputs with the framework's on the sample. ``--out`` is written only
when every check passes; failures exit 1 with ``error: ...`` saying what to change.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``export`` and its subcommands to the ``engine`` parser."""
    export = subparsers.add_parser(
        "export",
        help="export a trained model to a validated ONNX file",
        description="Convert a scikit-learn or PyTorch model to ONNX, then check it, load it in "
        "the engine and compare its outputs with the original on sample data.",
    )
    sub = export.add_subparsers(dest="export_command", metavar="FRAMEWORK", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--sample",
        type=Path,
        required=True,
        metavar="DATA",
        help="sample inputs: .npy (one input), .npz (one array per input), "
        ".csv or .parquet (a table)",
    )
    common.add_argument("--out", type=Path, required=True, help="the ONNX file to write")
    common.add_argument(
        "--opset",
        type=int,
        default=None,
        help="highest ONNX opset of the default domain the converter may use (default: 18); "
        "skl2onnx writes the lowest one the model's operators need, often older (e.g. 11): "
        "the opsets the file imports are printed",
    )
    common.add_argument(
        "--input-names",
        type=_names,
        default=(),
        metavar="A,B",
        help="names of the model inputs, comma-separated, in order",
    )
    common.add_argument(
        "--output-names",
        type=_names,
        default=(),
        metavar="A,B",
        help="names of the model outputs, comma-separated, in order",
    )
    common.add_argument(
        "--dynamic-batch",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="make the first axis of inputs and outputs dynamic (default: on)",
    )
    common.add_argument(
        "--atol", type=float, default=None, help="parity: absolute tolerance (default: 1e-4)"
    )
    common.add_argument(
        "--rtol", type=float, default=None, help="parity: relative tolerance (default: 1e-3)"
    )
    common.add_argument("--json", action="store_true", help="print the result as JSON")

    p = sub.add_parser(
        "sklearn",
        parents=[common],
        help="export a joblib-pickled estimator",
        description="Export a fitted scikit-learn estimator or Pipeline saved "
        "with joblib.dump (unpickling runs code: trusted files only).",
    )
    p.add_argument("model", type=Path, metavar="MODEL.joblib")
    p.set_defaults(handler=_export_sklearn)

    p = sub.add_parser(
        "torch",
        parents=[common],
        help="export a PyTorch module",
        description="Export a PyTorch module given as package.module:attr (an "
        "nn.Module or a no-argument callable returning one) or as a "
        ".pt2 file saved with torch.export.save.",
    )
    p.add_argument("model", metavar="MODULE_OR_CHECKPOINT")
    p.add_argument(
        "--state-dict",
        type=Path,
        help="weights to load into a package.module:attr module (torch.save file)",
    )
    p.set_defaults(handler=_export_torch)


def _export_sklearn(args: argparse.Namespace) -> int:
    from engine.training.export_sklearn import export_sklearn, load_sklearn_model
    from engine.training.samples import read_sample

    options = _checked_options(args)
    sample = read_sample(args.sample)
    model = load_sklearn_model(args.model)
    result = export_sklearn(model, sample, args.out, options)
    _print(result, args.json)
    return 0


def _export_torch(args: argparse.Namespace) -> int:
    from engine.training.export_torch import export_torch, load_torch_model
    from engine.training.samples import read_sample

    options = _checked_options(args)
    sample = read_sample(args.sample)
    model = load_torch_model(args.model, args.state_dict)
    result = export_torch(model, sample, args.out, options)
    _print(result, args.json)
    return 0


def _checked_options(args: argparse.Namespace) -> Any:
    """The export options, after the cheap checks of the arguments: a bad option or ``--out``
    fails before a model is loaded or converted."""
    from engine.training.export_options import ExportOptions, check_output_path

    check_output_path(args.out)
    given = {"opset": args.opset, "atol": args.atol, "rtol": args.rtol}
    return ExportOptions(
        input_names=args.input_names,
        output_names=args.output_names,
        dynamic_batch=args.dynamic_batch,
        **{k: v for k, v in given.items() if v is not None},
    )


def _print(result: Any, as_json: bool) -> None:
    from engine.training.export_options import describe_opsets

    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
        return
    parity = result.parity
    print(f"wrote {result.path} ({result.framework}, {describe_opsets(result.opsets)})")
    for kind, specs in (("input", result.inputs), ("output", result.outputs)):
        for spec in specs:
            print(f"  {kind:6} {spec.name}: {spec.dtype} {list(spec.shape)}")
    print(
        f"parity on {parity.rows} sample rows (atol {parity.atol:g}, rtol {parity.rtol:g}): "
        f"max abs error {parity.max_abs_error:.3g}, max rel error {parity.max_rel_error:.3g}"
    )
    for output in parity.outputs:
        print(
            f"  {output.name}: {'ok' if output.passed else 'FAILED'} "
            f"({output.mismatches} of {output.elements} differ)"
        )
    for name in parity.unchecked:
        print(f"  {name}: not compared (the framework model has no reference for it)")


def _names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(","))
    if any(not n for n in names):
        raise argparse.ArgumentTypeError(f"expected comma-separated names; got {text!r}")
    return names
