"""The `engine` command: one argparse tree, one module per command group.

Each module in ``engine.commands`` exposes ``register(subparsers)``, adding its parser and
setting ``handler`` (a function taking the parsed namespace and returning an exit code).
Errors of the engine's tree print as ``error: ...`` with exit code 1; argparse errors exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from engine.errors import EngineError

# Command groups, in the order `engine --help` lists them. A module missing from this build
# (optional extra not installed) is skipped rather than breaking the whole CLI.
_COMMAND_MODULES = ("serve", "models", "export", "train", "monitor", "predict")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="engine", description="Fast ONNX inference engine.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(f"engine.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"engine.commands.{name}":
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
