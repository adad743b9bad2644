"""The serving control plane: which model versions the C++ server answers for.

:class:`ServingControl` loads models (from a Triton-layout repository), warms them, and hands
them to the data plane through ``engine._core.Server`` (``add_model`` / ``remove_model`` /
``set_ready``). The C++ server calls back into it only for the rare control RPCs
(RepositoryIndex, RepositoryModelLoad/Unload, ModelConfig), on one control thread with the GIL
taken there; inference never comes here.

The callback methods (``repository_index``, ``load_model``, ``unload_model``,
``model_config_json``) never raise: each returns ``(grpc code name, message, payload)``, the
code taken from :data:`engine.errors.GRPC_STATUS`. Messages of errors the client caused are
passed on, and so are a failed load's config problems (repository.py and the signature check
write them without paths); anything else is logged with a request id and the client gets the
id only, so no path or exception text leaves the server.

Load semantics (Triton's): a load reads the model's folder again and serves the versions its
policy selects; if any of them fails, what was served stays served and the answer says why. A
load of a model whose folder is gone unloads it and answers NOT_FOUND. RepositoryIndex has one
row per served version (READY), and one UNAVAILABLE row for a model with none served.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine import _core
from engine.config import ModelConfig
from engine.errors import (
    GRPC_STATUS,
    EngineError,
    InvalidConfigError,
    InvalidInputError,
    InvalidModelNameError,
    ModelLoadError,
    ModelNotFoundError,
    OverloadedError,
    UnavailableError,
)
from engine.model import Model, load
from engine.names import validate_name
from engine.repository import RepositoryModel, RepositoryVersion, scan_model, scan_repository
from engine.signature import TensorSpec, dtype_by_name

__all__ = ["ServedModel", "ServingControl", "model_config_dict", "warm_up"]

log = logging.getLogger("engine.server")

Answer = tuple[str, str, Any]


class _ReportedLoadError(ModelLoadError):
    """A failed load whose message was written for the client (no path, no exception text)."""


# Errors whose message the client may see: they describe the client's own request.
_CLIENT_ERRORS = (InvalidInputError, InvalidModelNameError, ModelNotFoundError, OverloadedError,
                  UnavailableError, _ReportedLoadError)
_request_ids = itertools.count(1)


@dataclass(frozen=True)
class ServedModel:
    name: str
    version: int
    model: Model


def grpc_code(exc: BaseException) -> str:
    """The gRPC code name for an exception: the nearest class in GRPC_STATUS, else INTERNAL."""
    for cls in type(exc).__mro__:
        if cls in GRPC_STATUS:
            return GRPC_STATUS[cls]  # type: ignore[index]
    return "INTERNAL"


def _answer(what: str, fn: Callable[[], Any]) -> Answer:
    try:
        return "OK", "", fn()
    except _CLIENT_ERRORS as exc:
        return grpc_code(exc), str(exc), None
    except Exception as exc:  # the edge: nothing escapes into the C++ server
        request_id = _request_id()
        log.exception("%s failed (request id %s)", what, request_id)
        code = grpc_code(exc) if isinstance(exc, EngineError) else "INTERNAL"
        return code, f"{what} failed; request id {request_id} (details in the server log)", None


def _request_id() -> str:
    return f"ctl-{next(_request_ids)}"


def warm_up(model: Model) -> None:
    """Run zeros (dynamic dims as 1) once on every instance, so the first client does not pay
    for ORT's lazy initialisation; not counted in the model's statistics or metrics. Raises
    what the model raises."""
    model.warm_up({spec.name: _zeros(spec) for spec in model.inputs})


def _zeros(spec: TensorSpec) -> np.ndarray:
    shape = tuple(1 if d < 0 else d for d in spec.shape)
    dtype = dtype_by_name(spec.dtype)
    if dtype.name == "string":
        return np.full(shape, "", dtype=object)
    return np.zeros(shape, dtype=dtype.numpy)


def model_config_dict(name: str, model: Model) -> dict[str, Any]:
    """Triton's ModelConfig (the fields perf tools read) for a served model, as a JSON dict.

    Triton's convention: when the model has a batch dimension (the config's ``max_batch_size``
    is > 0 and every input and output has a dynamic first dimension), ``max_batch_size`` is its
    bound and ``dims`` leave that dimension out; otherwise ``max_batch_size`` is 0 and ``dims``
    are the full shapes. ``dynamic_batching`` is there only when the batcher combines requests.
    """
    config: ModelConfig = model.config
    batched = model.batching or (config.max_batch_size > 0 and _has_batch_dim(model))
    skip = 1 if batched else 0

    def tensor(spec: TensorSpec) -> dict[str, Any]:
        return {"name": spec.name, "data_type": dtype_by_name(spec.dtype).triton,
                "dims": [int(d) for d in spec.shape[skip:]]}

    out: dict[str, Any] = {
        "name": name,
        "platform": "onnxruntime_onnx",
        "backend": "onnxruntime",
        "max_batch_size": config.max_batch_size if batched else 0,
        "input": [tensor(t) for t in model.inputs],
        "output": [tensor(t) for t in model.outputs],
        "instance_group": [{
            "name": name,
            "kind": "KIND_GPU" if "cuda" in model.providers else "KIND_CPU",
            "count": config.instances,
        }],
        # The keys a config.pbtxt may set (engine.repository), with the values in force.
        "parameters": {
            "intra_op_thread_count": {"string_value": str(config.intra_op_threads)},
            "inter_op_thread_count": {"string_value": str(config.inter_op_threads)},
            "completion_spin": {"string_value": "true" if config.completion_spin else "false"},
        },
    }
    if config.worker_cpus:  # only when set: protobuf drops an empty string_value
        out["parameters"]["worker_cpus"] = {
            "string_value": ",".join(str(c) for c in config.worker_cpus)}
    if model.batching:
        out["dynamic_batching"] = {
            "preferred_batch_size": list(config.preferred_batch_sizes),
            "max_queue_delay_microseconds": config.max_queue_delay_us,
            "default_queue_policy": {
                "max_queue_size": config.max_queue_size,
                "default_timeout_microseconds": config.default_timeout_us,
                "allow_timeout_override": True,
            },
        }
    return out


def _load_version(entry: RepositoryModel, version: RepositoryVersion) -> Model:
    """``engine.load`` of one version of a repository model; its errors name the file by its
    path in the repository (``b/1/model.onnx``), as ``engine models import-repo`` does, where
    engine.load names only ``model.onnx``: with several models, that left the operator to
    guess which one failed. Relative, so no server path reaches a client."""
    try:
        return load(version.path, config=entry.config)
    except EngineError as exc:
        label = f"{entry.name}/{version.version}/{version.path.name}"
        detail = str(exc).removeprefix(f"{version.path.name}: ")
        raise type(exc)(f"{label}: {detail}") from exc


def _has_batch_dim(model: Model) -> bool:
    return all(t.shape and t.shape[0] == -1 for t in model.inputs + model.outputs)


# Retired models kept for the metrics between two scrapes (see ServingControl._retire).
MAX_RETIRED = 4096


class ServingControl:
    """Loads, serves and unloads models for one ``engine._core.Server``. Thread-safe."""

    def __init__(self, repository: Path | None = None) -> None:
        self.repository = repository
        self._server: _core.Server | None = None
        self._lock = threading.RLock()
        self._served: dict[tuple[str, int], ServedModel] = {}
        self._failed: dict[str, str] = {}  # name -> reason shown in RepositoryIndex
        # Models taken out of service since the metrics last took them (take_retired): one
        # loaded and unloaded between two scrapes would otherwise never be counted.
        self._retired: list[ServedModel] = []

    def attach(self, server: _core.Server) -> None:
        self._server = server

    # ---- used by the launcher ------------------------------------------------------------

    def load_repository(self) -> list[ServedModel]:
        """Load, warm and serve every model of the repository. Raises on the first failure."""
        if self.repository is None:
            return []
        served = []
        for entry in scan_repository(self.repository):
            served.extend(self._load_entry(entry))
        return served

    def serve(self, name: str, version: int, model: Model) -> ServedModel:
        """Warm ``model`` and serve it as ``name``:``version`` (replacing what was there)."""
        validate_name(name)
        warm_up(model)
        return self._publish(name, version, model)

    def _publish(self, name: str, version: int, model: Model) -> ServedModel:
        """Serve the warmed ``model`` as ``name``:``version``, closing what it replaces."""
        server = self._require_server()
        with self._lock:
            replaced = server.add_model(name, version, model.core, True)
            old = self._served.get((name, version))
            item = ServedModel(name, version, model)
            self._served[(name, version)] = item
            self._failed.pop(name, None)
            if old is not None:
                self._retire(old)
        if old is not None:
            old.model.close()
        elif replaced is not None:
            replaced.close(True)
        return item

    def take_out(self, name: str, version: int) -> Model | None:
        """Stop routing to ``name``:``version`` and return its model still open (requests that
        already hold it finish on it); the caller drains and closes it. None when not served."""
        server = self._require_server()
        with self._lock:
            item = self._served.pop((name, version), None)
            server.remove_model(name, version)
            if item is not None:
                self._retire(item)
        return item.model if item is not None else None

    def set_default_version(self, name: str, version: int) -> None:
        """Route requests for ``name`` without a version to ``version`` (which must be served)."""
        self._require_server().set_default_version(name, version)

    def served(self) -> list[ServedModel]:
        with self._lock:
            return sorted(self._served.values(), key=lambda s: (s.name, s.version))

    def take_retired(self) -> list[ServedModel]:
        """The models taken out of service (replaced, unloaded) since the last call, open or
        closed: their counts belong to their version's counters."""
        with self._lock:
            taken, self._retired = self._retired, []
        return taken

    def _retire(self, item: ServedModel) -> None:
        # Under self._lock. Bounded for a server nobody scrapes: the oldest go first (a
        # closed Model holds only its final counts).
        self._retired.append(item)
        if len(self._retired) > MAX_RETIRED:
            del self._retired[: len(self._retired) - MAX_RETIRED]

    def close_all(self) -> None:
        """Close every served model (after the server drained). Idempotent."""
        with self._lock:
            items, self._served = list(self._served.values()), {}
            for item in items:
                self._retire(item)
        for item in items:
            item.model.close()

    # ---- callbacks from the C++ server (control thread, GIL held) -------------------------

    def repository_index(self, ready: bool) -> Answer:
        return _answer("repository index", lambda: self._index(ready))

    def load_model(self, name: str, parameters: dict[str, str]) -> Answer:
        return _answer(f"load of model {name!r}", lambda: self._load(name, parameters))

    def unload_model(self, name: str) -> Answer:
        return _answer(f"unload of model {name!r}", lambda: self._unload(name))

    def model_config_json(self, name: str, version: int) -> Answer:
        return _answer(f"config of model {name!r}", lambda: self._config_json(name, version))

    # ---- implementation ------------------------------------------------------------------

    def _require_server(self) -> _core.Server:
        if self._server is None:
            raise UnavailableError("the server is not started")
        return self._server

    def _index(self, ready_only: bool) -> list[tuple[str, str, str, str]]:
        rows: list[tuple[str, str, str, str]] = []
        with self._lock:
            served_names = {name for name, _ in self._served}
            for item in self.served():
                rows.append((item.name, str(item.version), "READY", ""))
            if not ready_only:
                # One row per model: a failed reload of a served model shows its READY rows.
                for name, reason in sorted(self._failed.items()):
                    if name not in served_names:
                        rows.append((name, "", "UNAVAILABLE", reason))
                for name in self._repository_names():
                    if name not in served_names and name not in self._failed:
                        rows.append((name, "", "UNAVAILABLE", "unloaded"))
        return rows

    def _repository_names(self) -> Iterable[str]:
        if self.repository is None or not self.repository.is_dir():
            return []
        names = []
        for folder in sorted(self.repository.iterdir()):
            if folder.is_dir() and not folder.name.startswith("."):
                try:
                    names.append(validate_name(folder.name))
                except InvalidModelNameError:
                    continue
        return names

    def _load(self, name: str, parameters: dict[str, str]) -> None:
        validate_name(name)
        if parameters:
            raise InvalidInputError(
                f"load parameters are not supported by this server; got {sorted(parameters)}")
        if self.repository is None:
            raise UnavailableError("this server has no model repository to load from")
        if not (self.repository / name).is_dir():
            # Triton's rule: loading a model whose folder is gone unloads it.
            gone = " (its folder is gone; it was unloaded)" if self._forget(name) else ""
            raise ModelNotFoundError(f"no model {name!r} in the repository{gone}")
        try:
            # Only this model's folder is read: a broken config elsewhere does not matter here.
            entry = scan_model(self.repository, name)
        except EngineError as exc:  # repository.py names files relative to the repository
            raise self._load_failed(name, exc, shown=True) from exc
        except Exception as exc:
            raise self._load_failed(name, exc, shown=False) from exc
        try:
            self._load_entry(entry)
        except Exception as exc:
            # Config problems (pbtxt values, declared signature) are the client's to fix; an
            # ORT or I/O error may quote paths, so only its request id is shown.
            raise self._load_failed(name, exc, shown=isinstance(exc, InvalidConfigError)) from exc

    def _load_failed(self, name: str, exc: Exception, *, shown: bool) -> _ReportedLoadError:
        """Record that loading ``name`` failed (for RepositoryIndex, unless a version of it is
        still served) and return the error the load answers with."""
        if shown:
            detail = f": {exc}"
            log.warning("load of model %r failed: %s", name, exc)
        else:
            request_id = _request_id()
            log.error("load of model %r failed (request id %s)", name, request_id, exc_info=exc)
            detail = f"; request id {request_id} (details in the server log)"
        with self._lock:
            if any(key[0] == name for key in self._served):
                self._failed.pop(name, None)  # the served versions stay READY
            else:
                self._failed[name] = f"failed to load{detail}"
        return _ReportedLoadError(f"load of model {name!r} failed{detail}")

    def _forget(self, name: str) -> bool:
        """Stop serving every version of ``name`` and drop its failure; True if any was served."""
        with self._lock:
            keys = [k for k in self._served if k[0] == name]
            self._failed.pop(name, None)
        for key in keys:
            self._remove(*key)
        return bool(keys)

    def _load_entry(self, entry: RepositoryModel) -> list[ServedModel]:
        """Load and warm every selected version, then serve them all: when one fails, the
        others are closed and what was served before stays served."""
        ready: list[tuple[int, Model]] = []
        try:
            for version in entry.versions:
                model = _load_version(entry, version)
                ready.append((version.version, model))
                warm_up(model)
        except BaseException:
            for _, model in ready:
                model.close(drain=False)
            raise
        loaded = [self._publish(entry.name, version, model) for version, model in ready]
        # Versions the policy no longer selects stop being served.
        keep = {v.version for v in entry.versions}
        with self._lock:
            stale = [k for k in self._served if k[0] == entry.name and k[1] not in keep]
        for key in stale:
            self._remove(*key)
        return loaded

    def _unload(self, name: str) -> None:
        validate_name(name)
        with self._lock:
            keys = [k for k in self._served if k[0] == name]
        if not keys:
            raise ModelNotFoundError(f"model {name!r} is not loaded")
        for key in keys:
            self._remove(*key)

    def _remove(self, name: str, version: int) -> None:
        server = self._require_server()
        with self._lock:
            item = self._served.pop((name, version), None)
            server.remove_model(name, version)
            if item is not None:
                self._retire(item)
        if item is not None:
            item.model.close()  # drains its queued requests

    def _config_json(self, name: str, version: int) -> str:
        with self._lock:
            item = self._served.get((name, version))
        if item is None:
            raise ModelNotFoundError(f"model {name!r} version {version} is not loaded")
        return json.dumps(model_config_dict(name, item.model))
