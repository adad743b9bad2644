"""``engine tune MODEL``: time one run of the model at every batch size on this machine and
recommend ``preferred_batch_sizes`` (see :mod:`engine.tuning`).

MODEL is an ONNX file or a registry reference (``name``, ``name:3``, ``name@alias``; the
registered config is used). Inputs are made up (standard normal floats, zero integers) unless
``--sample`` gives real rows: .npy for a model with one input, .npz with one array per input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``tune`` to the ``engine`` parser."""
    p = subparsers.add_parser(
        "tune",
        help="time a model at every batch size and recommend preferred_batch_sizes",
        description="Time one run of the model at every batch size from 1 to "
        "--max-batch-size on this machine, and recommend the preferred batch size that serves "
        "--in-flight requests fastest when their clients send the next as soon as one is "
        "answered. Run it on a machine like the one that will serve, with nothing else busy.",
    )
    p.add_argument("model", metavar="MODEL", help="ONNX file, or registry name[:VERSION|@ALIAS]")
    p.add_argument("--max-batch-size", type=_positive, default=64, metavar="N",
                   help="largest batch timed (default 64)")
    p.add_argument("--in-flight", type=_positive, default=None, metavar="N",
                   help="requests kept in flight by the clients (default: --max-batch-size)")
    p.add_argument("--sample", type=Path, metavar="FILE",
                   help="real input rows: .npy (one input) or .npz (one array per input name); "
                        "needed for string inputs and dynamic inner dimensions")
    p.add_argument("--intra-op-threads", type=_positive, default=None, metavar="N",
                   help="ONNX Runtime threads per run (default: the model's config, else 1)")
    p.add_argument("--passes", type=_positive, default=5, metavar="N",
                   help="rounds over every size; a size's time is its best round (default 5)")
    p.add_argument("--runs", type=_positive, default=30, metavar="N",
                   help="runs per size and round; a round's time is their median (default 30)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=_tune)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def _tune(args: argparse.Namespace) -> int:
    import engine
    from engine.tuning import tune

    sample = _read_sample(args.sample) if args.sample is not None else None
    with engine.load(args.model, intra_op_threads=args.intra_op_threads) as model:
        if sample is not None and set(sample) == {""}:
            if len(model.inputs) != 1:
                names = ", ".join(repr(t.name) for t in model.inputs)
                raise engine.InvalidInputError(
                    f"{str(args.sample)!r} holds one array, but the model has "
                    f"{len(model.inputs)} inputs ({names}): use an .npz keyed by input name")
            sample = {model.inputs[0].name: sample[""]}

        def progress(number: int) -> None:
            if not args.json:
                print(f"pass {number} of {args.passes} ...", file=sys.stderr, flush=True)

        result = tune(model, sample, max_batch_size=args.max_batch_size,
                      in_flight=args.in_flight, passes=args.passes, runs=args.runs,
                      progress=progress)
        threads = model.config.intra_op_threads
    if args.json:
        print(json.dumps({"model": args.model, "intra_op_threads": threads,
                          **result.to_dict()}, indent=2))
        return 0
    print(f"{'rows':>5} {'us per batch':>13} {'rows/s':>12}")
    for t in result.timings:
        marks = [m for m, best in (("preferred", result.preferred), ("saturated",
                                                                      result.saturated))
                 if best.rows == t.rows]
        print(f"{t.rows:>5} {t.us:>13.1f} {t.rows_per_s:>12,.0f}  {' '.join(marks)}".rstrip())
    best, half = result.preferred, min(result.in_flight // 2, result.max_batch_size)
    print(f"\nfor {result.in_flight} requests in flight: preferred_batch_sizes=({best.rows},) "
          f"with max_batch_size={result.max_batch_size} ({best.rows_per_s:,.0f} rows/s; "
          f"the best size of at most {max(half, 1)} rows, so that one batch runs while the "
          f"rest are answered and sent again)")
    if half >= 1 and half != best.rows:
        other = result.timing(half)
        print(f"  {half} rows would give {other.rows_per_s:,.0f} rows/s "
              f"({other.rows_per_s / best.rows_per_s - 1:+.1%})")
    print(f"for traffic that always fills a batch: {result.saturated.rows} rows "
          f"({result.saturated.rows_per_s:,.0f} rows/s)")
    print(f"(ONNX Runtime on {threads} intra-op thread(s); each size's time is the lowest of "
          f"{args.passes} medians of {args.runs} runs)")
    return 0


def _read_sample(path: Path) -> dict[str, np.ndarray]:
    """An .npy file as {"": array}, an .npz as its arrays by name."""
    import zipfile

    from engine.errors import InvalidInputError

    if path.suffix.lower() not in (".npy", ".npz"):
        raise InvalidInputError(f"sample {str(path)!r}: use an .npy or .npz file")
    try:
        with open(path, "rb") as handle:
            content = np.load(handle, allow_pickle=False)
            if isinstance(content, np.lib.npyio.NpzFile):
                return {name: content[name] for name in content.files}
            return {"": content}
    except (ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InvalidInputError(f"sample {str(path)!r} is not a readable numpy file: "
                                f"{exc}") from exc
