"""`engine.load` and `engine.Model`: run an ONNX model in-process through the native core.

Every request goes through the core's dynamic batcher (``csrc/model.h``): ``predict`` waits
with the GIL released, ``submit`` returns a future, ``predict_async`` awaits one. Batching is
on by default for a model whose first dimension is dynamic; see :class:`engine.ModelConfig`.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import dataclasses
import os
import threading
import weakref
from collections.abc import Coroutine, Mapping, Sequence
from concurrent.futures import Future, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine import _core
from engine._completion import _OnLoop, completer
from engine._runtime import ensure_runtime
from engine.config import ModelConfig
from engine.errors import InvalidConfigError, InvalidInputError, ModelLoadError, UnavailableError
from engine.signature import TensorSpec, check_declared
from engine.stats import ModelStats

if TYPE_CHECKING:
    from typing import Self  # Python 3.11; annotations are not evaluated at run time

__all__ = ["Model", "load"]

Inputs = Mapping[str, Any] | np.ndarray
Outputs = dict[str, np.ndarray]


class _RequestFuture(Future):  # type: ignore[type-arg]
    """A future whose cancel() removes the request from the model's queue."""

    def __init__(self, core: _core.Model) -> None:
        super().__init__()
        self._core = core
        self._seq = 0
        # Makes the core's cancel and the future's one step: a second cancel() racing the
        # first must see the future cancelled, not the request already gone from the queue.
        # Reentrant: a done-callback may call cancel() again.
        self._cancel_lock = threading.RLock()

    def cancel(self) -> bool:
        """True if the request was still queued (it never runs) or was cancelled already, as
        concurrent.futures says; False once it started, finished or failed."""
        with self._cancel_lock:
            if self.cancelled():
                return True
            if self.done():
                return False  # finished or failed (in a forked child: never touch the core)
            if self._seq and self._core.cancel(self._seq):
                return super().cancel()
            return False


# How long close() waits for the engine's delivery thread to resolve the futures of the
# requests the core has completed: it takes them in groups, one GIL acquisition each.
DELIVERY_WAIT_S = 10.0


def _await_delivery(core: _core.Model) -> None:
    """Wait until the futures of ``core``'s completed requests are resolved: the core hands
    results to one delivery thread (engine/_completion.py), so they lag its close()."""
    done = completer()
    if done.on_delivery_thread():
        return
    pending = done.undelivered(lambda f: getattr(f, "_core", None) is core)
    if pending:
        wait(pending, timeout=DELIVERY_WAIT_S)


class Model:
    """A loaded model. Thread-safe: any number of threads may call it at once.

    ``inputs``/``outputs`` describe the signature (-1 marks a dynamic dimension).
    :meth:`close` drains queued work and frees the sessions; afterwards calls raise
    :class:`~engine.errors.UnavailableError`, except :meth:`stats`, which gives the final counts.
    """

    def __init__(self, core: _core.Model, config: ModelConfig, name: str,
                 version: int | None = None) -> None:
        self._core: _core.Model | None = core
        # close() keeps the core here while it blocks, then only its final stats (the core
        # itself, with its sessions, is freed): stats() still answers after close.
        self._closing_core: _core.Model | None = None
        self._final_stats: dict[str, Any] | None = None
        self.config = config
        self.name = name
        self.version = version  # registry version, None when loaded from a file
        self.inputs = tuple(TensorSpec(n, d, tuple(s)) for n, d, s in core.inputs)
        self._single_input = self.inputs[0].name if len(self.inputs) == 1 else ""
        self.outputs = tuple(TensorSpec(n, d, tuple(s)) for n, d, s in core.outputs)
        self.providers = tuple(core.providers)
        self.batching = bool(core.batching_enabled)
        self._raw_columns = _raw_columns(config)
        self._forked = False  # set in a child process: the model belongs to its parent
        # The drain thread keeps off the workers' CPUs until close(), or until this model is
        # dropped unclosed (its core and workers go with it then).
        self._release_cpus: weakref.finalize | None = None
        if config.worker_cpus:
            drain = completer()
            drain.keep_off_cpus(config.worker_cpus)
            self._release_cpus = weakref.finalize(self, drain.release_cpus, config.worker_cpus)
            self._release_cpus.atexit = False  # the drain thread is stopped by then
        _live_models.add(self)

    @property
    def core(self) -> _core.Model:
        """The native model (for the server's serving table). Raises once closed."""
        return self._require_open()

    def predict(
        self,
        inputs: Inputs,
        *,
        outputs: Sequence[str] = (),
        priority: int = 0,
        timeout_us: int | None = None,
    ) -> Outputs:
        """Run the model on ``inputs`` and wait for ``{output name: array}``.

        ``inputs`` maps input names to arrays, or is one array for a single-input model.
        Dtypes must match exactly (no casts), except for the raw columns of a model with
        transforms, which are read as ``engine.transforms.apply`` reads them (README, "Feature
        transforms in the batch"). ``outputs`` selects a subset by name (one str is one name).
        Higher ``priority`` (an int in the int32 range) runs first; ``timeout_us`` (an int
        >= 0, 0 for none; default: the config's) bounds the time queued.
        Raises InvalidInputError, OverloadedError, DeadlineExceededError, ExecutionError,
        UnavailableError; TypeError or InvalidConfigError for a bad argument. A request refused
        with InvalidInputError counts as ``invalid`` in :meth:`stats`, wherever it was refused.
        """
        core = self._core
        if core is None:
            raise self._closed_error()
        try:
            if type(outputs) is tuple and not outputs and timeout_us is None and \
                    type(priority) is int and not priority:
                # The per-call fast path: the core takes a dict or a lone array as it is.
                if not self._raw_columns and (
                    type(inputs) is dict or (type(inputs) is np.ndarray and self._single_input)
                ):
                    return core.run(inputs)
                return core.run(self._request_mapping(core, inputs))
            names, priority, timeout = _request_options(outputs, priority, timeout_us)
            return core.infer(self._request_mapping(core, inputs), names, priority, timeout, "")
        except UnavailableError:
            _park_if_exiting_daemon()  # queued as the exit hook closed the model
            raise

    def submit(
        self,
        inputs: Inputs,
        *,
        outputs: Sequence[str] = (),
        priority: int = 0,
        timeout_us: int | None = None,
    ) -> Future[Outputs]:
        """Queue a request and return at once with a future of its outputs.

        The inputs are copied, so the caller may reuse its arrays. ``future.cancel()`` removes
        a still-queued request (it never runs). Every error of the request itself arrives as
        the future's exception: bad inputs (InvalidInputError, whether or not they convert to
        tensors), a full queue, a deadline, a failed run. Only errors of the call raise at once:
        UnavailableError once the model is closed (a close racing the call fails the future
        instead), and TypeError or InvalidConfigError for a bad ``outputs``/``priority``/
        ``timeout_us`` (as :meth:`predict` raises them), and UnavailableError at interpreter
        exit, once the engine has stopped delivering results.

        Futures are resolved, and their done-callbacks run, on one engine thread shared by
        every model: a callback must not block on another engine future (``.result()``), as
        that future could only be resolved by the thread the callback holds. Submitting from
        a callback is fine.
        """
        core = self._require_open()
        names, priority, timeout = _request_options(outputs, priority, timeout_us)
        future = _RequestFuture(core)
        try:
            mapping = self._request_mapping(core, inputs)
            future._seq = self._submit(core, future, mapping, names, priority, timeout)
        except InvalidInputError as exc:
            future.set_exception(exc)  # as the core delivers the inputs it refuses
        return future

    @staticmethod
    def _submit(core: _core.Model, future: _RequestFuture | _OnLoop, mapping: Mapping[str, Any],
                names: list[str], priority: int, timeout: int) -> int:
        """Queue ``mapping`` for ``future``; the core's sequence number for cancel()."""
        done = completer()
        token = done.register(future)
        try:
            return core.submit(mapping, names, priority, timeout, token, done.queue)
        except BaseException:
            done.forget(token)
            raise

    def predict_async(
        self,
        inputs: Inputs,
        *,
        outputs: Sequence[str] = (),
        priority: int = 0,
        timeout_us: int | None = None,
    ) -> Coroutine[Any, Any, Outputs]:
        """``await``-able :meth:`predict` for asyncio code; cancelling the task cancels a
        still-queued request. Called in a running event loop, the request is checked and
        queued at once, as :meth:`submit` does: it raises what ``submit`` raises then, its
        inputs are read then (a buffer reused afterwards does not change it), and a
        :meth:`close` that comes before the ``await`` drains it. The request's own errors (as
        :meth:`predict` raises them) come from the ``await``. Called with no loop running
        (``asyncio.run(model.predict_async(x))``), it is checked at once and queued when the
        loop starts the coroutine."""
        core = self._require_open()
        names, priority, timeout = _request_options(outputs, priority, timeout_us)
        mapping = self._request_mapping(core, inputs)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return self._predict_on_loop(core, mapping, names, priority, timeout)
        submitted = self._submit_on_loop(core, loop, mapping, names, priority, timeout)
        return self._await_on_loop(core, *submitted)

    async def _predict_on_loop(self, core: _core.Model, mapping: Mapping[str, Any],
                               names: list[str], priority: int, timeout: int) -> Outputs:
        loop = asyncio.get_running_loop()
        submitted = self._submit_on_loop(core, loop, mapping, names, priority, timeout)
        return await self._await_on_loop(core, *submitted)

    def _submit_on_loop(self, core: _core.Model, loop: asyncio.AbstractEventLoop,
                        mapping: Mapping[str, Any], names: list[str], priority: int,
                        timeout: int) -> tuple[int, asyncio.Future[Outputs]]:
        # An asyncio future resolved on this loop, a batch's results at once (engine/
        # _completion.py): no concurrent future and no wake-up of the loop per result.
        future: asyncio.Future[Outputs] = loop.create_future()
        seq = self._submit(core, _OnLoop(loop, future), mapping, names, priority, timeout)
        return seq, future

    async def _await_on_loop(self, core: _core.Model, seq: int,
                             future: asyncio.Future[Outputs]) -> Outputs:
        try:
            return await future
        except asyncio.CancelledError:
            # Still queued: it never runs; running: its result finds the future done. Either
            # way its completion still comes, and takes the token with it.
            if not self._forked:
                core.cancel(seq)
            raise

    def stats(self) -> ModelStats:
        """A snapshot of the model's counters and histograms. After :meth:`close`: the final
        counts, which include every request close completed."""
        core = self._core
        if core is None:
            core = self._closing_core
        if self._forked:
            raise self._closed_error()
        data = core.stats() if core is not None else self._final_stats
        assert data is not None  # close() sets it before it lets go of the core
        return ModelStats.from_core(data)

    def warm_up(self, inputs: Inputs) -> None:
        """Run ``inputs`` once on every idle instance, so that no caller pays for ONNX Runtime's
        lazy set-up of a session. Counted nowhere: not in ``stats()``, drift or the prediction
        log. Raises what ``predict`` raises for the same inputs."""
        self._require_open().warm_up(self._as_mapping(inputs))

    def time_runs(self, inputs: Inputs, runs: int) -> list[float]:
        """Run ``inputs`` ``runs`` times back to back on one idle instance, as one batch of
        their rows, and return each run's wall time in microseconds (transforms and ONNX
        Runtime; not the gather of requests into a batch or the split of its outputs, nor the
        queue). For tuning batch sizes (:mod:`engine.tuning`). Counted nowhere. Raises what
        ``predict`` raises for the same inputs (row limits included), InvalidConfigError for
        ``runs`` outside [1, MAX_TIMED_RUNS], and UnavailableError while every instance is
        busy: time a model that is not serving."""
        runs = _integer("runs", runs)
        if not 1 <= runs <= _core.Model.MAX_TIMED_RUNS:
            raise InvalidConfigError(
                f"runs must be in [1, {_core.Model.MAX_TIMED_RUNS}]; was {runs}")
        return [ns / 1000.0 for ns in self._require_open().time_runs(self._as_mapping(inputs),
                                                                     runs)]

    def close(self, *, drain: bool = True) -> None:
        """Stop taking requests; queued ones run (``drain``) or fail with UnavailableError.
        Blocks until running batches finish and the futures of :meth:`submit` are resolved
        (at most ``DELIVERY_WAIT_S`` more; not when called from a future's done-callback).
        Idempotent: a second call waits for the first; ``drain=False`` then fails what that
        one's drain has not run yet. :meth:`stats` keeps answering."""
        core = self._core
        if core is None:
            if self._forked:
                return  # the parent's: nothing of it runs in this process
            closing = self._closing_core
            if closing is not None:
                closing.close(drain)  # another thread's close() runs: wait for it to finish
                _await_delivery(closing)
            return
        # In this order, so that stats() always finds one of the three (see stats()).
        self._closing_core = core
        self._core = None
        try:
            core.close(drain)
            _await_delivery(core)
        finally:
            self._final_stats = core.stats()  # final: every request has completed
            self._closing_core = None
            if self._release_cpus is not None:
                self._release_cpus()  # once: a finalizer runs at most once

    @property
    def closed(self) -> bool:
        return self._core is None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return (f"<engine.Model {self.name!r} inputs={len(self.inputs)} "
                f"outputs={len(self.outputs)} batching={self.batching} {state}>")

    def _require_open(self) -> _core.Model:
        core = self._core
        if core is None:
            raise self._closed_error()
        return core

    def _closed_error(self) -> UnavailableError:
        _park_if_exiting_daemon()
        if self._forked:
            return UnavailableError(
                f"model {self.name!r} was loaded before os.fork(): its threads run in the parent "
                f"process only; load it again in this one")
        return UnavailableError(f"model {self.name!r} is closed")

    def _request_mapping(self, core: _core.Model, inputs: Inputs) -> Mapping[str, Any]:
        """:meth:`_as_mapping` for a request: one refused here counts as invalid, as it would
        had the core refused it (the core counts the inputs it cannot convert itself)."""
        try:
            return self._as_mapping(inputs)
        except InvalidInputError:
            core.count_invalid_input()
            raise

    def _as_mapping(self, inputs: Inputs) -> Mapping[str, Any]:
        mapping = self._mapping(inputs)
        return self._transform_columns(mapping) if self._raw_columns else mapping

    def _transform_columns(self, mapping: Mapping[str, Any]) -> Mapping[str, Any]:
        """The raw columns of a model with transforms, read as ``engine.transforms.apply``
        reads them: numeric ones in the spec's dtype when no value changes (the core batches
        one dtype per column; see exact_numeric_column), [rows, 1] ones as [rows]. The core
        itself reads missing strings (None, NaN, pandas NA) as "", and bytes as UTF-8."""
        changed: dict[str, Any] = {}
        for name, dtype in self._raw_columns.items():
            value = mapping.get(name)
            if value is None or (type(value) is np.ndarray and value.ndim == 1 and
                                 (dtype is None or value.dtype == dtype)):
                continue  # already what the core takes (or missing: the core names it)
            if dtype is not None:
                from engine.transforms.columns import exact_numeric_column

                changed[name] = exact_numeric_column(name, value, dtype)
            elif isinstance(value, np.ndarray) and value.ndim == 2 and value.shape[1] == 1:
                changed[name] = value[:, 0]
        return {**mapping, **changed} if changed else mapping

    def _mapping(self, inputs: Inputs) -> Mapping[str, Any]:
        if isinstance(inputs, np.ndarray) and len(self.inputs) == 1:
            return {self._single_input: inputs}
        if isinstance(inputs, Mapping):
            return inputs
        if type(inputs).__module__.startswith("pandas") and hasattr(inputs, "columns"):
            # A DataFrame: one input per column (raw columns of a model with transforms). A raw
            # numeric column stays a Series for exact_numeric_column, which reads it as sent:
            # to_numpy() turns a nullable Int64 column with a missing value into float64,
            # rounding integers beyond 2**53 before they could be checked.
            return {str(c): inputs[c] if self._raw_columns.get(str(c)) is not None
                    else inputs[c].to_numpy() for c in inputs.columns}
        if len(self.inputs) != 1:
            names = ", ".join(repr(t.name) for t in self.inputs)
            raise InvalidInputError(
                f"model {self.name!r} has {len(self.inputs)} inputs ({names}): pass a mapping "
                f"of input name to array, not a single {type(inputs).__name__}"
            )
        return {self.inputs[0].name: inputs}


# Every Model and native model of this process, for a child of os.fork() (_after_fork_in_child).
_live_models: weakref.WeakSet[Model] = weakref.WeakSet()
_live_cores: weakref.WeakSet[_core.Model] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """Models loaded before os.fork() refuse calls in the child (UnavailableError naming the
    fork) instead of hanging on threads and locks that exist in the parent only."""
    for core in list(_live_cores):
        # Never freed in the child, not even as the interpreter finalizes: its worker threads
        # did not survive the fork, and freeing it joins them (a hang) or takes locks that a
        # thread of the parent held.
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(core))
    for model in list(_live_models):
        model._forked = True
        model._core = None
        model._closing_core = None


os.register_at_fork(after_in_child=_after_fork_in_child)


_exiting = False  # set by _close_models_at_exit


def _park_if_exiting_daemon() -> None:
    """Blocks for good a daemon thread that calls a model the exit hook closed. CPython ends
    such threads as it finalizes anyway (3.11 at their next take of the GIL, 3.14 by blocking
    them); raising would only print "Exception in thread ..." as the process exits. Any
    other thread (an atexit handler on the main thread) gets its UnavailableError."""
    if _exiting and threading.current_thread().daemon:
        threading.Event().wait()


def _close_models_at_exit() -> None:
    """Closes the models still open as the interpreter exits, without draining. By then Python
    has joined every non-daemon thread, so what is queued belongs to daemon threads or to
    futures nobody waits for: it fails with UnavailableError instead of running while the
    interpreter is torn down (worker threads in ONNX Runtime as the process ends). Registered
    after the completion thread's stop hook (this module imports it first), so atexit runs it
    before that stop and the failures still reach their futures."""
    global _exiting
    _exiting = True
    for model in list(_live_models):
        if not model._forked:
            with contextlib.suppress(Exception):  # exit goes on whatever one model does
                model.close(drain=False)


atexit.register(_close_models_at_exit)


def _track(core: _core.Model) -> _core.Model:
    _live_cores.add(core)
    return core


def _raw_columns(config: ModelConfig) -> dict[str, np.dtype[Any] | None]:
    """The raw columns the core's transforms read: name -> numeric dtype, or None for strings."""
    if config.transforms is None:
        return {}
    from engine.transforms import TransformSpec

    spec = TransformSpec.from_dict(config.transforms)
    return {c.name: None if c.is_string else np.dtype(c.dtype) for c in spec.inputs}


_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_INT64_MAX = 2**63 - 1


def _request_options(outputs: Sequence[str], priority: int,
                     timeout_us: int | None) -> tuple[list[str], int, int]:
    """The core's (outputs, priority, timeout_us) arguments, checked before they reach it."""
    return _output_names(outputs), _priority(priority), _timeout(timeout_us)


def _output_names(outputs: Sequence[str]) -> list[str]:
    if isinstance(outputs, str):
        return [outputs]  # one output name, not its characters
    if isinstance(outputs, (bytes, bytearray)):
        raise TypeError(f"outputs must be output names (str); was {type(outputs).__name__}")
    try:
        names = list(outputs)
    except TypeError:
        raise TypeError(f"outputs must be an output name or a sequence of them; "
                        f"was {type(outputs).__name__}") from None
    for i, name in enumerate(names):
        if not isinstance(name, str):
            raise TypeError(f"outputs must be output names (str); outputs[{i}] was "
                            f"{type(name).__name__} {name!r}")
    return names


def _integer(argument: str, value: Any) -> int:
    # bool is an int to Python, but priority=True or timeout_us=True is a mistake.
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{argument} must be an int; was {type(value).__name__} {value!r}")
    return int(value)


def _priority(priority: int) -> int:
    value = _integer("priority", priority)
    if not _INT32_MIN <= value <= _INT32_MAX:
        raise InvalidConfigError(f"priority must be in [{_INT32_MIN}, {_INT32_MAX}]; was {value}")
    return value


def _timeout(timeout_us: int | None) -> int:
    if timeout_us is None:
        return -1
    value = _integer("timeout_us", timeout_us)
    if not 0 <= value <= _INT64_MAX:
        raise InvalidConfigError(f"timeout_us must be in [0, 2**63 - 1] or None; was {value}")
    return value


def core_options(config: ModelConfig) -> dict[str, Any]:
    """The options dict that ``_core.Model.from_path`` takes, from a ModelConfig."""
    plan = None
    if config.transforms is not None:
        from engine.transforms import TransformSpec, compile_native

        plan = compile_native(TransformSpec.from_dict(config.transforms))._plan
    return {
        "transforms": plan,
        "transform_target": config.transform_target,
        "intra_op_threads": config.intra_op_threads,
        "inter_op_threads": config.inter_op_threads,
        "allow_spinning": config.allow_spinning,
        "graph_optimization_level": config.graph_optimization_level,
        "providers": list(config.providers),
        "device_id": config.device_id,
        "instances": config.instances,
        "instance_mode": config.instance_mode,
        "batching": _core_batching(config),
        "max_batch_size": max(config.max_batch_size, 1),  # the core wants >= 1; 0 never batches
        "preferred_batch_sizes": list(config.preferred_batch_sizes),
        "max_queue_delay_us": config.max_queue_delay_us,
        "max_queue_size": config.max_queue_size,
        "default_timeout_us": config.default_timeout_us,
        "completion_spin": config.completion_spin,
        "worker_cpus": list(config.worker_cpus),
        # batching=False with a batch dimension (Triton's max_batch_size without dynamic
        # batching): requests are still capped at max_batch_size rows. Automatic batching that
        # finds the model unbatchable sets no cap: nobody asked for one.
        "max_request_rows": config.max_batch_size if config.batching is False else 0,
        # Declared dims fix the model's dynamic ones on every request (not with transforms:
        # callers send the spec's raw columns then).
        "declared_input_shapes": (
            {t.name: list(t.shape) for t in config.inputs} if config.transforms is None else {}
        ),
    }


def load(
    source: str | os.PathLike[str] | bytes | bytearray | memoryview,
    *,
    config: ModelConfig | None = None,
    intra_op_threads: int | None = None,
    providers: Sequence[str] | None = None,
    registry_home: str | os.PathLike[str] | None = None,
    registry_url: str | None = None,
    artifacts_url: str | None = None,
) -> Model:
    """Load an ONNX model from a file path, serialized bytes (or any bytes-like object), or a
    registry reference.

    A reference is ``name``, ``name:3`` or ``name@alias`` (a string that is not an existing
    file); it is resolved in the registry (``ENGINE_HOME`` / ``ENGINE_REGISTRY_URL`` /
    ``ENGINE_ARTIFACTS_URL`` unless ``registry_home``/``registry_url``/``artifacts_url`` say
    otherwise), the artifact's hash is verified, and the
    registered config is used unless ``config`` is given (then the stored config is not read,
    so a version whose stored config this engine refuses loads with a valid explicit one; the
    explicit config is checked against the model file's signature). ``intra_op_threads`` and
    ``providers`` override the same fields of the config. Providers are tried in order
    ("cuda", "cpu"); asking for "cuda" without a GPU build of ONNX Runtime raises
    UnsupportedError rather than silently running on the CPU. A ``config`` that is not a
    ModelConfig, or a bad ``intra_op_threads``/``providers``, raises InvalidConfigError (as
    ModelConfig and the registry do); a bad ``source`` raises TypeError.
    """
    source = _check_source(source)
    _check_config(config)
    name: str | None = None
    version: int | None = None
    if isinstance(source, str) and not Path(source).exists() and _looks_like_ref(source):
        from engine.registry import resolve  # the registry is only needed for references

        # An explicit config replaces the stored one, which then is not needed (nor checked).
        resolved = resolve(
            source, home=registry_home, url=registry_url, config=config,
            artifacts_url=artifacts_url)
        source = resolved.path
        config = resolved.config
        name, version = resolved.version.name, resolved.version.version
    config = config or ModelConfig()
    overrides: dict[str, Any] = {}
    if intra_op_threads is not None:
        overrides["intra_op_threads"] = intra_op_threads
    if providers is not None:
        overrides["providers"] = providers  # ModelConfig refuses a lone str such as "cpu"
    if overrides:
        config = dataclasses.replace(config, **overrides)
    ensure_runtime()
    options = core_options(config)
    # For the core's own messages and log lines: the name the Python model has.
    options["name"] = "<bytes>" if isinstance(source, bytes) else name or Path(source).stem
    if isinstance(source, bytes):
        model = Model(_track(_core.Model.from_bytes(source, options)), config, "<bytes>")
        return _check_declared(model, source, "<bytes>")
    path = Path(source)
    if path.is_dir():
        raise ModelLoadError(f"model path {str(path)!r} is a directory, not an ONNX file")
    if not path.is_file():
        raise ModelLoadError(f"model file {str(path)!r} does not exist")
    model = Model(_track(_core.Model.from_path(str(path), options)), config, name or path.stem,
                  version)
    # The label is a registry reference or a file name, never a folder: servers show it.
    return _check_declared(model, path, f"{name}:{version}" if name else path.name)


def _core_batching(config: ModelConfig) -> int:
    """The core's batching switch: -1 automatic, 0 off, 1 on."""
    if config.max_batch_size == 0 or config.batching is False:
        return 0  # max_batch_size 0: the model has no batch dimension
    return -1 if config.batching is None else 1


def _check_declared(model: Model, source: Path | bytes, label: str) -> Model:
    """Return ``model`` if the config's declared inputs/outputs match it; otherwise close it and
    raise InvalidConfigError naming the tensor and both sides (the registry's check)."""
    config = model.config
    if not config.inputs and not config.outputs:
        return model
    try:
        inputs, outputs = model.inputs, model.outputs  # ORT's view of the graph
        if config.transforms is not None:
            # The core takes the spec's raw columns instead; declared inputs are the graph's.
            from engine.registry.onnx_signature import read_signature

            inputs = read_signature(source, label=label)[0]
        check_declared(config.inputs, inputs, "input", label)
        check_declared(config.outputs, outputs, "output", label)
    except BaseException:
        model.close(drain=False)
        raise
    return model


def _check_source(source: Any) -> str | os.PathLike[str] | bytes:
    if isinstance(source, (bytearray, memoryview)):
        return bytes(source)  # bytes-like model contents
    if not isinstance(source, (str, bytes, os.PathLike)):
        raise TypeError(f"source must be a model path, a registry reference or the model's "
                        f"bytes; was {type(source).__name__}")
    return source


def _check_config(config: Any) -> None:
    # Before the registry is asked: its resolve() would refuse the same way, but only for a
    # reference that exists.
    if config is None or isinstance(config, ModelConfig):
        return
    hint = " (for a dict, engine.ModelConfig.from_dict(config))" if isinstance(config, Mapping) \
        else ""
    raise InvalidConfigError(
        f"config must be an engine.ModelConfig or None; was {type(config).__name__}{hint}")


def _looks_like_ref(source: str) -> bool:
    """A registry reference never contains a path separator or ends in .onnx."""
    return "/" not in source and "\\" not in source and not source.endswith(".onnx")
