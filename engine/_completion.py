"""Delivery of asynchronous results: one Python thread drains the core's completion queue.

C++ worker threads never take the GIL per request: they push results onto a
``_core.CompletionQueue``; this module's single daemon thread takes them in groups (one GIL
acquisition per group) and resolves the matching futures. Results for asyncio futures are
handed to their event loop in one ``call_soon_threadsafe`` per loop and group, not one per
result: each such call writes to the loop's wake-up pipe.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import logging
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future, InvalidStateError
from typing import Any

from engine import _core
from engine.errors import UnavailableError, from_core_code

__all__ = ["Completer", "completer"]

_TAKE_TIMEOUT_MS = 200
_CANCELLED = 9  # csrc/status.h kCancelled: only a cancel (a future's or a task's) causes it
_UNAVAILABLE = 7  # csrc/status.h kUnavailable
_log = logging.getLogger(__name__)


class Completer:
    """Owns the completion queue and the futures waiting on it. Thread-safe."""

    def __init__(self) -> None:
        self.queue = _core.CompletionQueue()
        # A concurrent future, or an asyncio one with its loop (resolved on that loop).
        self._futures: dict[int, Future[Any] | _OnLoop] = {}
        self._tokens = itertools.count(1)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = False
        # CPUs that open models pinned their workers to (counted per model), and the drain
        # thread's native id and own CPU set once it runs. Guarded by _affinity_lock, which
        # also orders the affinity calls: a stale set must not land after a newer one.
        self._affinity_lock = threading.Lock()
        self._pinned: Counter[int] = Counter()
        self._thread_tid: int | None = None
        self._thread_cpus: frozenset[int] = frozenset()

    def register(self, future: Future[Any] | _OnLoop) -> int:
        """Remember ``future`` under a fresh token; start the drain thread on first use.
        Raises UnavailableError once stopped (at exit): nothing would complete the future."""
        token = next(self._tokens)
        with self._lock:
            if self._stopping:
                raise UnavailableError("the interpreter is exiting: requests are not taken")
            self._futures[token] = future
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="engine-completions",
                                                daemon=True)
                self._thread.start()
        return token

    def keep_off_cpus(self, cpus: Iterable[int]) -> None:
        """A model pinned its workers to ``cpus``: the drain thread keeps off them while any
        other CPU is allowed, as the core's own completion threads do, so that delivering
        results never preempts a worker in the middle of a run. Undone by
        :meth:`release_cpus` with the same CPUs (the model's close)."""
        with self._affinity_lock:
            self._pinned.update(cpus)
            self._apply_affinity_locked()

    def release_cpus(self, cpus: Iterable[int]) -> None:
        with self._affinity_lock:
            self._pinned.subtract(cpus)
            self._pinned = +self._pinned  # drops the CPUs no open model pins any more
            self._apply_affinity_locked()

    def thread_cpus(self) -> frozenset[int] | None:
        """The CPUs the drain thread may run on now; None before it runs (or where Python
        cannot tell)."""
        with self._affinity_lock:
            tid = self._thread_tid
        if tid is None:
            return None
        try:
            return frozenset(os.sched_getaffinity(tid))
        except OSError:  # the thread has ended
            return None

    def _apply_affinity_locked(self) -> None:
        tid = self._thread_tid
        if tid is None:
            return  # not running yet: it applies the set itself when it starts
        # Every allowed CPU pinned: the thread stays where it may run rather than nowhere.
        allowed = self._thread_cpus - self._pinned.keys() or self._thread_cpus
        try:
            os.sched_setaffinity(tid, allowed)
        except OSError as e:  # the thread has ended, or the system refuses: a speed matter only
            _log.debug("could not set the completion thread's CPUs to %s: %s", sorted(allowed), e)

    def forget(self, token: int) -> None:
        with self._lock:
            self._futures.pop(token, None)

    def undelivered(self, belongs: Callable[[Any], bool]) -> list[Future[Any]]:
        """The concurrent futures registered and not yet resolved for which ``belongs`` is
        true (asyncio ones are resolved on their own loop, which may be the caller's)."""
        with self._lock:
            return [f for f in self._futures.values() if isinstance(f, Future) and belongs(f)]

    def on_delivery_thread(self) -> bool:
        """Whether the caller is the drain thread (a done-callback): waiting there for a
        delivery would wait for itself."""
        return threading.current_thread() is self._thread

    def stop(self) -> None:
        """Stop the drain thread (at exit). Futures still pending then fail with
        UnavailableError: their results would never be delivered."""
        with self._lock:
            self._stopping = True
        self.queue.close()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=5)
        if thread is None or not thread.is_alive():
            self._deliver(self.queue.take(0))  # what completed before the thread stopped
        with self._lock:
            stranded = list(self._futures.values())
            self._futures.clear()
        _fail_all(stranded, "the interpreter is exiting: the request's result is not delivered")

    def _run(self) -> None:
        if hasattr(os, "sched_setaffinity"):  # Linux; elsewhere the thread runs anywhere
            with self._affinity_lock:
                self._thread_cpus = frozenset(os.sched_getaffinity(0))
                self._thread_tid = threading.get_native_id()
                self._apply_affinity_locked()
        while not self._stopping:
            self._deliver(self.queue.take(_TAKE_TIMEOUT_MS))

    def _deliver(self, group: list[tuple[int, int, str, Any, Any]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], int, str, Any]]]
        by_loop = {}
        for token, code, message, outputs, _timings in group:
            with self._lock:
                future = self._futures.get(token)
            if isinstance(future, _OnLoop):
                self.forget(token)
                if code != _CANCELLED:
                    by_loop.setdefault(future.loop, []).append(
                        (future.future, code, message, outputs))
                continue
            try:
                if future is None or future.done() or code == _CANCELLED:
                    continue  # cancelled: the future's own cancel() marks it
                # A cancel() racing this one leaves the future done: nothing left to set.
                with contextlib.suppress(InvalidStateError):
                    if code == 0:
                        future.set_result(outputs)
                    else:
                        future.set_exception(from_core_code(code, message))
            except Exception:  # noqa: BLE001 - the drain thread must outlive any one future
                _log.exception("could not resolve the future of request token %d", token)
            finally:
                # Forgotten once resolved, not before: undelivered() (what close() waits
                # for) must never miss a future that is between the two.
                self.forget(token)
        for loop, results in by_loop.items():
            # A closed loop has nobody left to await its futures.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle_on_loop, results)


class _OnLoop:
    """An asyncio future and its loop: resolved there, never from the drain thread."""

    __slots__ = ("future", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any]) -> None:
        self.loop = loop
        self.future = future


def _settle_on_loop(results: list[tuple[asyncio.Future[Any], int, str, Any]]) -> None:
    """Runs on the futures' loop: sets each one still pending (a cancelled task's is done)."""
    settled = 0
    try:
        for future, code, message, outputs in results:
            if not future.done():
                if code == 0:
                    future.set_result(outputs)
                else:
                    future.set_exception(from_core_code(code, message))
            settled += 1
    finally:
        # An exception raised into this callback (KeyboardInterrupt, a signal handler's
        # SystemExit) must not strand the rest of the group: they are registered nowhere now.
        if settled < len(results):
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody awaits them
                results[settled][0].get_loop().call_soon(_settle_on_loop, results[settled:])


def _fail_all(stranded: list[Future[Any] | _OnLoop], why: str, *, only_thread: bool = False
              ) -> None:
    """Fails futures whose results will never come. An asyncio future is failed on its loop;
    with ``only_thread`` (a fork's child, where this is the one thread) directly, since the
    loop's wake-up pipe is shared with the parent's."""
    for future in stranded:
        if isinstance(future, _OnLoop):
            failure = [(future.future, _UNAVAILABLE, why, None)]
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody awaits it
                if only_thread:
                    _settle_on_loop(failure)
                else:
                    future.loop.call_soon_threadsafe(_settle_on_loop, failure)
            continue
        with contextlib.suppress(InvalidStateError):  # cancelled, or the thread set it
            future.set_exception(UnavailableError(why))


_completer: Completer | None = None
_completer_lock = threading.Lock()


def _stop_at_exit() -> None:
    """Stops the drain thread before interpreter shutdown: a daemon thread still inside the
    core when Python finalizes would be unwound through C++ frames. Registered when this module
    is imported, so that atexit (last in, first out) runs it after the handlers registered
    later, i.e. after every handler that could wait for a future of the engine."""
    with _completer_lock:
        done = _completer
    if done is not None:
        done.stop()


atexit.register(_stop_at_exit)

# A child of os.fork() has no drain thread (nor the parent's model threads): it starts afresh.
_inherited: list[Completer] = []  # never freed in the child, like the parent's models


def _after_fork_in_child() -> None:
    global _completer, _completer_lock
    _completer_lock = threading.Lock()  # another thread of the parent may have held it
    inherited, _completer = _completer, None
    if inherited is None:
        return
    _inherited.append(inherited)
    inherited._lock = threading.Lock()
    # Its drain thread's id names the parent's thread (ids are system-wide): never move it.
    inherited._affinity_lock = threading.Lock()
    inherited._thread_tid = None
    stranded = list(inherited._futures.values())
    inherited._futures.clear()
    _fail_all(stranded, "os.fork() ran while this request was pending: its result is delivered "
                        "in the parent process only", only_thread=True)


os.register_at_fork(after_in_child=_after_fork_in_child)


def completer() -> Completer:
    """The process-wide completer (created on first use)."""
    global _completer
    with _completer_lock:
        if _completer is None:
            _completer = Completer()
        return _completer
