"""Delivery of asynchronous results: one Python thread drains the core's completion queue.

C++ worker threads never take the GIL per request: they push results onto a
``_core.CompletionQueue``; this module's single daemon thread takes them in groups (one GIL
acquisition per group) and resolves the matching futures.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import logging
import threading
from concurrent.futures import Future, InvalidStateError
from typing import Any

from engine import _core
from engine.errors import from_core_code

__all__ = ["Completer", "completer"]

_TAKE_TIMEOUT_MS = 200
_CANCELLED = 9  # csrc/status.h kCancelled: only Future.cancel() causes it
_log = logging.getLogger(__name__)


class Completer:
    """Owns the completion queue and the futures waiting on it. Thread-safe."""

    def __init__(self) -> None:
        self.queue = _core.CompletionQueue()
        self._futures: dict[int, Future[Any]] = {}
        self._tokens = itertools.count(1)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def register(self, future: Future[Any]) -> int:
        """Remember ``future`` under a fresh token; start the drain thread on first use."""
        token = next(self._tokens)
        with self._lock:
            self._futures[token] = future
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="engine-completions",
                                                daemon=True)
                self._thread.start()
                # Stop the thread before interpreter shutdown: a daemon thread still inside
                # the core when Python finalizes would be unwound through C++ frames.
                atexit.register(self.stop)
        return token

    def forget(self, token: int) -> None:
        with self._lock:
            self._futures.pop(token, None)

    def stop(self) -> None:
        """Stop the drain thread (at exit). Futures still pending stay pending."""
        self._stopping = True
        self.queue.close()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stopping:
            for token, code, message, outputs, _timings in self.queue.take(_TAKE_TIMEOUT_MS):
                with self._lock:
                    future = self._futures.pop(token, None)
                if future is None or future.done() or code == _CANCELLED:
                    continue  # cancelled: the future's own cancel() marks it
                try:
                    # A cancel() racing this one leaves the future done: nothing left to set.
                    with contextlib.suppress(InvalidStateError):
                        if code == 0:
                            future.set_result(outputs)
                        else:
                            future.set_exception(from_core_code(code, message))
                except Exception:  # noqa: BLE001 - the drain thread must outlive any one future
                    _log.exception("could not resolve the future of request token %d", token)


_completer: Completer | None = None
_completer_lock = threading.Lock()


def completer() -> Completer:
    """The process-wide completer (created on first use)."""
    global _completer
    with _completer_lock:
        if _completer is None:
            _completer = Completer()
        return _completer
