"""The `engine` command: one argparse tree, one module per command group.

Each module in ``engine.commands`` exposes ``register(subparsers)``, adding its parser and
setting ``handler`` (a function taking the parsed namespace and returning an exit code).
Errors of the engine's tree, and OS errors (a path that is missing, a folder, not writable),
print as one ``error: ...`` line with exit code 1; argparse errors exit 2. Anything else is a
bug and keeps its traceback. ``engine --debug COMMAND`` shows the traceback of every error.
When stdout is closed early (``engine models list | head -1``), the command stops quietly with
exit code 141, as a tool killed by SIGPIPE reports in a shell; Ctrl-C stops it with
"interrupted" and exit code 130 (``engine serve`` drains on SIGINT instead).
A command run with ``--log-json`` gets that line as a JSON log record instead, so that every
line it writes to stderr parses.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from engine.errors import EngineError

# Command groups, in the order `engine --help` lists them. A module missing from this build
# (optional extra not installed) is skipped rather than breaking the whole CLI.
_COMMAND_MODULES = ("serve", "models", "export", "train", "monitor", "tune", "predict")

# 128 + SIGPIPE: what a shell reports for `seq 100000 | head -1`'s seq.
EXIT_BROKEN_PIPE = 141
# 128 + SIGINT: what a shell reports for a command stopped with Ctrl-C.
EXIT_INTERRUPTED = 130
# 128 + SIGTERM: what a shell reports for a command stopped by `kill`, `timeout` or systemd.
EXIT_TERMINATED = 143


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM, as KeyboardInterrupt is on SIGINT: the command's
    ``finally`` blocks run (a registration removes its temp files), then it exits 143."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="engine", description="Fast ONNX inference engine.")
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an error, not one line"
    )
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
    try:
        # Building the parser imports every command's module (the registry's SQLAlchemy
        # among them): a Ctrl-C this early is an interruption too, not a traceback.
        args = build_parser().parse_args(argv)
    except KeyboardInterrupt:
        if "--debug" in (sys.argv[1:] if argv is None else argv):
            raise
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    with _sigterm_raises():
        return _run(args)


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM raises Terminated while the command runs (``engine serve`` installs its own
    handler for draining); the handler before is put back after."""
    def terminate(signum: int, frame: object) -> None:
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, terminate)
    except ValueError:  # not the main thread (a caller's own thread): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace) -> int:
    try:
        code = int(args.handler(args) or 0)
        sys.stdout.flush()  # a reader that went away fails here, not in the exit's flush
        return code
    except BrokenPipeError:
        # The reader of stdout closed it (`| head`): nothing to report, and nobody to tell.
        # stdout points at /dev/null so the interpreter's final flush cannot fail again.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError):  # a stdout with no file descriptor (a test's capture)
            pass
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        # Ctrl-C: the user knows why the command stopped; a traceback tells them nothing more.
        if args.debug:
            raise
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        if args.debug:
            raise
        print("terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except (EngineError, OSError) as exc:
        if args.debug:
            raise
        if getattr(args, "log_json", False):
            _log_json_error(_message(exc))
        else:
            print(f"error: {_message(exc)}", file=sys.stderr)
        return 1


def _log_json_error(message: str) -> None:
    # The failure may come before the command configured its logging: configure it here
    # (replacing the engine's handler is idempotent).
    from engine.monitoring.logging import configure

    configure(json=True)
    logging.getLogger("engine.cli").error("error: %s", message)


def _message(exc: Exception) -> str:
    # "Is a directory: 'out'" reads better than "[Errno 21] Is a directory: 'out'".
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        return f"{exc.strerror}: {str(exc.filename)!r}"
    return str(exc)


if __name__ == "__main__":
    sys.exit(main())
