"""``engine tune MODEL``: time one run of the model at every batch size on this machine and
recommend ``preferred_batch_sizes`` (see :mod:`engine.tuning`).

MODEL is an ONNX file or a registry reference (``name``, ``name:3``, ``name@alias``). A
registered model is tuned with its registered config: its max_batch_size bounds the sweep and
its instances enter the recommendation. A file is loaded with ``--max-batch-size`` and
``--instances``. Inputs are made up (standard normal floats, zero integers) unless
``--sample`` gives real rows: .npy for a model with one input, .npz with one array per input.
"""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from engine.commands._urls import artifacts_url

__all__ = ["register"]

_DEFAULT_MAX_BATCH = 64


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
    p.add_argument("--max-batch-size", type=_count(1), default=None, metavar="N",
                   help="largest batch timed (default: a registered model's max_batch_size, "
                        f"else {_DEFAULT_MAX_BATCH}); at most a registered model's own")
    p.add_argument("--in-flight", type=_count(1), default=None, metavar="N",
                   help="requests kept in flight by the clients (default: the largest batch)")
    p.add_argument("--instances", type=_count(1), default=None, metavar="N",
                   help="instances of a model file, as its config would set them (default 1; "
                        "a registered model's come from its config)")
    p.add_argument("--sample", type=Path, metavar="FILE",
                   help="real input rows: .npy (one input) or .npz (one array per input name); "
                        "needed for string inputs and dynamic inner dimensions")
    p.add_argument("--intra-op-threads", type=_count(0), default=None, metavar="N",
                   help="ONNX Runtime threads per run, 0 for its default of one per core "
                        "(default: a registered model's config, else 1)")
    p.add_argument("--passes", type=_count(1), default=5, metavar="N",
                   help="rounds over every size; a size's time is its best round (default 5)")
    p.add_argument("--runs", type=_count(1), default=30, metavar="N",
                   help="runs per size and round; a round's time is their median (default 30)")
    where = p.add_argument_group("registry (for a MODEL that is a reference)")
    where.add_argument("--home", type=Path, metavar="DIR",
                       help="registry home (default $ENGINE_HOME, else ~/.engine)")
    where.add_argument("--registry-url", metavar="URL",
                       help="registry database URL (default $ENGINE_REGISTRY_URL)")
    where.add_argument("--artifacts-url", metavar="URL", type=artifacts_url,
                       help="shared artifact store (default $ENGINE_ARTIFACTS_URL)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=_tune)


def _count(minimum: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value

    return parse


def _tune(args: argparse.Namespace) -> int:
    import engine
    from engine.errors import InvalidConfigError
    from engine.tuning import tune

    sample = _read_sample(args.sample) if args.sample is not None else None
    is_file = Path(args.model).exists()
    if is_file:
        config = engine.ModelConfig(
            max_batch_size=args.max_batch_size or _DEFAULT_MAX_BATCH,
            instances=args.instances or 1,
            intra_op_threads=1 if args.intra_op_threads is None else args.intra_op_threads)
        model = engine.load(args.model, config=config)
    else:
        if args.instances is not None:
            raise InvalidConfigError(
                "--instances is for a model file; a registered model is tuned with the "
                "instances of its registered config")
        model = engine.load(args.model, intra_op_threads=args.intra_op_threads,
                            registry_home=args.home, registry_url=args.registry_url,
                            artifacts_url=args.artifacts_url)
    with model:
        if sample is not None and set(sample) == {""}:
            if len(model.inputs) != 1:
                names = ", ".join(repr(t.name) for t in model.inputs)
                raise engine.InvalidInputError(
                    f"sample {str(args.sample)!r} holds one array, but the model has "
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
                          "passes": args.passes, "runs": args.runs, **result.to_dict()},
                         indent=2))
        return 0
    _print_table(result)
    _print_recommendation(result)
    ort = "ONNX Runtime's default threads (one per core)" if threads == 0 else (
        f"{_plural(threads, 'intra-op thread')} of ONNX Runtime")
    print(f"({ort}; each size's time is the lowest of {_plural(args.passes, 'median')} of "
          f"{_plural(args.runs, 'run')}; ONNX Runtime and transforms only, not the gather of "
          "requests or the split of outputs)")
    return 0


def _print_table(result: Any) -> None:
    print(f"{'rows':>5} {'us per batch':>13} {'rows/s':>12}")
    for t in result.timings:
        marks = [mark for mark, best in (("preferred", result.preferred),
                                         ("saturated", result.saturated))
                 if best.rows == t.rows]
        print(f"{t.rows:>5} {t.us:>13.1f} {t.rows_per_s:>12,.0f}  {' '.join(marks)}".rstrip())


def _print_recommendation(result: Any) -> None:
    best, limit = result.preferred, result.pipelined_rows
    in_flight = _plural(result.in_flight, "request")
    instances = _plural(result.instances, "instance")
    print(f"\nfor {in_flight} in flight on {instances}: preferred_batch_sizes=({best.rows},) "
          f"with max_batch_size={result.max_batch_size} ({best.rows_per_s:,.0f} rows/s)")
    if result.in_flight > 1:
        print(f"  the best size of at most {_plural(limit, 'row')}, so that while each "
              "instance runs a batch, one more batch is answered and sent again")
    if limit > result.max_batch_size:
        print(f"  batches of up to {limit} rows would still pipeline; only "
              f"{result.max_batch_size} were timed (--max-batch-size)")
    elif limit != best.rows:
        other = result.timing(limit)
        print(f"  {_plural(limit, 'row')} would give {other.rows_per_s:,.0f} rows/s "
              f"({other.rows_per_s / best.rows_per_s - 1:+.1%})")
    print(f"for traffic that always fills a batch: {_plural(result.saturated.rows, 'row')} "
          f"({result.saturated.rows_per_s:,.0f} rows/s)")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _read_sample(path: Path) -> dict[str, np.ndarray]:
    """An .npy file as {"": array}, an .npz as its arrays by name."""
    from engine.errors import InvalidInputError

    if path.suffix.lower() not in (".npy", ".npz"):
        raise InvalidInputError(f"sample {str(path)!r}: use an .npy or .npz file")
    if not path.is_file():
        raise InvalidInputError(f"sample file {str(path)!r} does not exist")
    try:
        with open(path, "rb") as handle:
            content = np.load(handle, allow_pickle=False)
            if isinstance(content, np.lib.npyio.NpzFile):
                return {name: content[name] for name in content.files}
            return {"": content}
    except ValueError as exc:
        if "Object arrays" in str(exc):  # an .npy of dtype object (strings from pandas)
            raise InvalidInputError(
                f"sample {str(path)!r} holds an object array, which is not loaded (loading it "
                "would run code from the file); save strings as np.array(values, dtype=str)"
            ) from None
        raise InvalidInputError(f"sample {str(path)!r} is not a readable numpy file") from exc
    except (EOFError, zipfile.BadZipFile) as exc:
        raise InvalidInputError(f"sample {str(path)!r} is not a readable numpy file") from exc
