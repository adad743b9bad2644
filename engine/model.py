"""`engine.load` and `engine.Model`: run an ONNX model in-process through the native core.

Every request goes through the core's dynamic batcher (``csrc/model.h``): ``predict`` waits
with the GIL released, ``submit`` returns a future, ``predict_async`` awaits one. Batching is
on by default for a model whose first dimension is dynamic; see :class:`engine.ModelConfig`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine import _core
from engine._completion import completer
from engine._runtime import ensure_runtime
from engine.config import ModelConfig
from engine.errors import InvalidConfigError, InvalidInputError, ModelLoadError, UnavailableError
from engine.signature import TensorSpec
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

    def cancel(self) -> bool:
        # Only a request still queued can be cancelled; one that started runs to the end.
        if self._seq and self._core.cancel(self._seq):
            return super().cancel()
        return False


class Model:
    """A loaded model. Thread-safe: any number of threads may call it at once.

    ``inputs``/``outputs`` describe the signature (-1 marks a dynamic dimension).
    :meth:`close` drains queued work and frees the sessions; afterwards calls raise
    :class:`~engine.errors.UnavailableError`.
    """

    def __init__(self, core: _core.Model, config: ModelConfig, name: str,
                 version: int | None = None) -> None:
        self._core: _core.Model | None = core
        self.config = config
        self.name = name
        self.version = version  # registry version, None when loaded from a file
        self.inputs = tuple(TensorSpec(n, d, tuple(s)) for n, d, s in core.inputs)
        self._single_input = self.inputs[0].name if len(self.inputs) == 1 else ""
        self.outputs = tuple(TensorSpec(n, d, tuple(s)) for n, d, s in core.outputs)
        self.providers = tuple(core.providers)
        self.batching = bool(core.batching_enabled)

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
        Dtypes must match exactly (no casts). ``outputs`` selects a subset by name. Higher
        ``priority`` runs first; ``timeout_us`` (default: the config's) bounds the time queued.
        Raises InvalidInputError, OverloadedError, DeadlineExceededError, ExecutionError,
        UnavailableError.
        """
        core = self._core
        if core is None:
            raise UnavailableError(f"model {self.name!r} is closed")
        if not outputs and timeout_us is None and not priority:
            # The per-call fast path: the core takes a dict or a lone array as it is.
            if type(inputs) is dict or (type(inputs) is np.ndarray and self._single_input):
                return core.run(inputs)
            return core.run(self._as_mapping(inputs))
        return core.infer(self._as_mapping(inputs), list(outputs), priority,
                          _timeout(timeout_us), "")

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
        a still-queued request (it never runs). Errors arrive as the future's exception.
        """
        core = self._require_open()
        future = _RequestFuture(core)
        done = completer()
        token = done.register(future)
        try:
            future._seq = core.submit(self._as_mapping(inputs), list(outputs), priority,
                                      _timeout(timeout_us), token, done.queue)
        except BaseException:
            done.forget(token)
            raise
        return future

    async def predict_async(
        self,
        inputs: Inputs,
        *,
        outputs: Sequence[str] = (),
        priority: int = 0,
        timeout_us: int | None = None,
    ) -> Outputs:
        """``await``-able :meth:`predict` for asyncio code; cancelling the task cancels a
        still-queued request."""
        future = self.submit(inputs, outputs=outputs, priority=priority, timeout_us=timeout_us)
        return await asyncio.wrap_future(future)

    def stats(self) -> ModelStats:
        """A snapshot of the model's counters and histograms."""
        return ModelStats.from_core(self._require_open().stats())

    def close(self, *, drain: bool = True) -> None:
        """Stop taking requests; queued ones run (``drain``) or fail with UnavailableError.
        Blocks until running batches finish. Idempotent."""
        core, self._core = self._core, None
        if core is not None:
            core.close(drain)

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
            raise UnavailableError(f"model {self.name!r} is closed")
        return core

    def _as_mapping(self, inputs: Inputs) -> Mapping[str, Any]:
        if isinstance(inputs, np.ndarray) and len(self.inputs) == 1:
            return {self._single_input: inputs}
        if isinstance(inputs, Mapping):
            return inputs
        if type(inputs).__module__.startswith("pandas") and hasattr(inputs, "columns"):
            # A DataFrame: one input per column (raw columns of a model with transforms).
            return {str(c): inputs[c].to_numpy() for c in inputs.columns}
        if len(self.inputs) != 1:
            names = ", ".join(repr(t.name) for t in self.inputs)
            raise InvalidInputError(
                f"model {self.name!r} has {len(self.inputs)} inputs ({names}): pass a mapping "
                f"of input name to array, not a single {type(inputs).__name__}"
            )
        return {self.inputs[0].name: inputs}


def _timeout(timeout_us: int | None) -> int:
    if timeout_us is None:
        return -1
    if timeout_us < 0:
        raise InvalidConfigError(f"timeout_us must be >= 0 or None; was {timeout_us}")
    return timeout_us


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
        "batching": -1 if config.batching is None else int(config.batching),
        "max_batch_size": config.max_batch_size,
        "preferred_batch_sizes": list(config.preferred_batch_sizes),
        "max_queue_delay_us": config.max_queue_delay_us,
        "max_queue_size": config.max_queue_size,
        "default_timeout_us": config.default_timeout_us,
    }


def load(
    source: str | os.PathLike[str] | bytes,
    *,
    config: ModelConfig | None = None,
    intra_op_threads: int | None = None,
    providers: Sequence[str] | None = None,
    registry_home: str | os.PathLike[str] | None = None,
    registry_url: str | None = None,
) -> Model:
    """Load an ONNX model from a file path, serialized bytes, or a registry reference.

    A reference is ``name``, ``name:3`` or ``name@alias`` (a string that is not an existing
    file); it is resolved in the registry (``ENGINE_HOME`` / ``ENGINE_REGISTRY_URL`` unless
    ``registry_home``/``registry_url`` say otherwise), the artifact's hash is verified, and the
    registered config is used unless ``config`` is given. ``intra_op_threads`` and
    ``providers`` override the same fields of the config. Providers are tried in order
    ("cuda", "cpu"); asking for "cuda" without a GPU build of ONNX Runtime raises
    UnsupportedError rather than silently running on the CPU.
    """
    name: str | None = None
    version: int | None = None
    if isinstance(source, str) and not Path(source).exists() and _looks_like_ref(source):
        from engine.registry import resolve  # the registry is only needed for references

        resolved = resolve(source, home=registry_home, url=registry_url)
        source = resolved.path
        config = config or resolved.config
        name, version = resolved.version.name, resolved.version.version
    config = config or ModelConfig()
    overrides: dict[str, Any] = {}
    if intra_op_threads is not None:
        overrides["intra_op_threads"] = intra_op_threads
    if providers is not None:
        overrides["providers"] = tuple(providers)
    if overrides:
        config = dataclasses.replace(config, **overrides)
    ensure_runtime()
    options = core_options(config)
    if isinstance(source, bytes):
        return Model(_core.Model.from_bytes(source, options), config, "<bytes>")
    path = Path(source)
    if not path.is_file():
        raise ModelLoadError(f"model file {str(path)!r} does not exist")
    return Model(_core.Model.from_path(str(path), options), config, name or path.stem, version)


def _looks_like_ref(source: str) -> bool:
    """A registry reference never contains a path separator or ends in .onnx."""
    return "/" not in source and "\\" not in source and not source.endswith(".onnx")
