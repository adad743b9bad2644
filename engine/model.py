"""`engine.load` and `engine.Model`: run an ONNX model in-process through the native core."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np

from engine import _core
from engine._runtime import ensure_runtime
from engine.config import ModelConfig
from engine.errors import InvalidInputError, ModelLoadError, UnavailableError
from engine.signature import TensorSpec

__all__ = ["Model", "load"]

Inputs = Union[Mapping[str, Any], np.ndarray]


class Model:
    """A loaded model. Thread-safe: many threads may call :meth:`predict` at once.

    Use :func:`load` to make one. ``inputs``/``outputs`` describe the signature (-1 marks a
    dynamic dimension). :meth:`close` frees the session; using a closed model raises
    :class:`~engine.errors.UnavailableError`.
    """

    def __init__(self, session: _core.Session, config: ModelConfig, name: str) -> None:
        self._session: _core.Session | None = session
        self.config = config
        self.name = name
        self.inputs = tuple(TensorSpec(n, d, tuple(s)) for n, d, s in session.inputs)
        self.outputs = tuple(TensorSpec(n, d, tuple(s)) for n, d, s in session.outputs)
        self.providers = tuple(session.providers)

    def predict(self, inputs: Inputs, *, outputs: Sequence[str] = ()) -> dict[str, np.ndarray]:
        """Run the model on ``inputs`` and return ``{output name: array}``.

        ``inputs`` maps input names to arrays, or is one array for a single-input model.
        Dtypes must match exactly (no casts). ``outputs`` selects a subset by name.
        Raises InvalidInputError for bad inputs, ExecutionError when ONNX Runtime fails.
        """
        session = self._require_open()
        return session.run(self._as_mapping(inputs), list(outputs))

    def close(self) -> None:
        """Release the session. Idempotent."""
        self._session = None

    @property
    def closed(self) -> bool:
        return self._session is None

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<engine.Model {self.name!r} inputs={len(self.inputs)} outputs={len(self.outputs)} {state}>"

    def _require_open(self) -> _core.Session:
        session = self._session
        if session is None:
            raise UnavailableError(f"model {self.name!r} is closed")
        return session

    def _as_mapping(self, inputs: Inputs) -> Mapping[str, Any]:
        if isinstance(inputs, Mapping):
            return inputs
        if len(self.inputs) != 1:
            names = ", ".join(repr(t.name) for t in self.inputs)
            raise InvalidInputError(
                f"model {self.name!r} has {len(self.inputs)} inputs ({names}): pass a mapping "
                f"of input name to array, not a single {type(inputs).__name__}"
            )
        return {self.inputs[0].name: inputs}


def load(
    source: str | os.PathLike[str] | bytes,
    *,
    config: ModelConfig | None = None,
    intra_op_threads: int | None = None,
    providers: Sequence[str] | None = None,
) -> Model:
    """Load an ONNX model from a file path or serialized bytes.

    ``intra_op_threads`` and ``providers`` override the same fields of ``config``. Providers
    are tried in order ("cuda", "cpu"); asking for "cuda" without a GPU build of ONNX Runtime
    raises UnsupportedError rather than silently running on the CPU.
    """
    config = config or ModelConfig()
    overrides: dict[str, Any] = {}
    if intra_op_threads is not None:
        overrides["intra_op_threads"] = intra_op_threads
    if providers is not None:
        overrides["providers"] = tuple(providers)
    if overrides:
        config = dataclasses.replace(config, **overrides)
    ensure_runtime()
    options = {
        "intra_op_threads": config.intra_op_threads,
        "inter_op_threads": config.inter_op_threads,
        "allow_spinning": config.allow_spinning,
        "graph_optimization_level": config.graph_optimization_level,
        "providers": list(config.providers),
        "device_id": config.device_id,
    }
    if isinstance(source, bytes):
        return Model(_core.Session.from_bytes(source, **options), config, "<bytes>")
    path = Path(source)
    if not path.is_file():
        raise ModelLoadError(f"model file {str(path)!r} does not exist")
    return Model(_core.Session.from_path(str(path), **options), config, path.stem)
