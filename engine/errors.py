"""The engine's one exception tree.

Every error the engine raises on purpose is an :class:`EngineError`. Each class says whether a
retry can help (``retryable``) and which gRPC status code the server answers with; the server
maps classes to codes with :data:`GRPC_STATUS` and a test walks the tree to prove every class is
mapped. The C++ core raises :class:`engine._core.CoreError` subclasses with a numeric code that
:func:`from_core_code` turns into the class below with the same meaning.

::

    EngineError
    ├── InvalidInputError          bad request data: names, dtypes, shapes, sizes     (never retry)
    ├── InvalidConfigError         a config value out of range or inconsistent        (never retry)
    ├── InvalidModelNameError      a name or reference that breaks the name grammar   (never retry)
    ├── ModelNotFoundError         no such model, version or alias                     (never retry)
    ├── ModelLoadError             the artifact cannot be read, verified or loaded    (never retry)
    ├── UnsupportedError           a feature this build or machine lacks (e.g. CUDA)  (never retry)
    ├── OverloadedError            the queue is full                                  (retry later)
    ├── UnavailableError           closed, draining or not ready                      (retry later)
    ├── DeadlineExceededError      the deadline passed before the request ran         (retry later)
    ├── CancelledError             the caller cancelled; the request never ran        (never retry)
    ├── ExecutionError             ONNX Runtime failed while running the request      (never retry)
    ├── RegistryError              the registry store refused an operation            (never retry)
    │   └── ConflictError          the operation conflicts with current state         (never retry)
    └── ExportError                export or parity validation failed                 (never retry)
"""

from __future__ import annotations

__all__ = [
    "GRPC_STATUS",
    "CancelledError",
    "ConflictError",
    "DeadlineExceededError",
    "EngineError",
    "ExecutionError",
    "ExportError",
    "InvalidConfigError",
    "InvalidInputError",
    "InvalidModelNameError",
    "ModelLoadError",
    "ModelNotFoundError",
    "OverloadedError",
    "RegistryError",
    "UnavailableError",
    "UnsupportedError",
    "from_core_code",
]


class EngineError(Exception):
    """Base of every error the engine raises on purpose."""

    retryable: bool = False


class InvalidInputError(EngineError, ValueError):
    """The request's inputs do not match the model's signature."""


class InvalidConfigError(EngineError, ValueError):
    """A configuration value is out of range or inconsistent with the model."""


class InvalidModelNameError(EngineError, ValueError):
    """A model name or reference breaks the name grammar (e.g. path traversal)."""


class ModelNotFoundError(EngineError, LookupError):
    """No model, version or alias of that name."""


class ModelLoadError(EngineError):
    """The artifact cannot be read, verified against its hash, or loaded by ONNX Runtime."""


class UnsupportedError(EngineError):
    """A requested feature is not available in this build or on this machine."""


class OverloadedError(EngineError):
    """The model's queue is full; retry later."""

    retryable = True


class UnavailableError(EngineError):
    """The model is closed, draining or not ready; retry later or elsewhere."""

    retryable = True


class DeadlineExceededError(EngineError, TimeoutError):
    """The request's deadline passed before it ran; it was never executed."""

    retryable = True


class CancelledError(EngineError):
    """The caller cancelled the request before it ran; it was never executed."""


class ExecutionError(EngineError, RuntimeError):
    """ONNX Runtime failed while running the request."""


class RegistryError(EngineError):
    """The registry refused an operation (store error, integrity failure)."""


class ConflictError(RegistryError):
    """The operation conflicts with the registry's current state (e.g. delete of an aliased
    version)."""


class ExportError(EngineError):
    """Export to ONNX or its parity validation failed."""


# Server edge: one table from error class to gRPC status code name (grpc.StatusCode member).
GRPC_STATUS: dict[type[EngineError], str] = {
    EngineError: "INTERNAL",
    InvalidInputError: "INVALID_ARGUMENT",
    InvalidConfigError: "INVALID_ARGUMENT",
    InvalidModelNameError: "INVALID_ARGUMENT",
    ModelNotFoundError: "NOT_FOUND",
    ModelLoadError: "FAILED_PRECONDITION",
    UnsupportedError: "UNIMPLEMENTED",
    OverloadedError: "UNAVAILABLE",
    UnavailableError: "UNAVAILABLE",
    DeadlineExceededError: "DEADLINE_EXCEEDED",
    CancelledError: "CANCELLED",
    ExecutionError: "INTERNAL",
    RegistryError: "INTERNAL",
    ConflictError: "FAILED_PRECONDITION",
    ExportError: "INVALID_ARGUMENT",
}

# The C++ core's status codes (csrc/status.h, enum class StatusCode), in the same order.
_CORE_CODES: dict[int, type[EngineError]] = {
    1: InvalidInputError,
    2: InvalidConfigError,
    3: ModelNotFoundError,
    4: ModelLoadError,
    5: UnsupportedError,
    6: OverloadedError,
    7: UnavailableError,
    8: DeadlineExceededError,
    9: CancelledError,
    10: ExecutionError,
    11: EngineError,
}


def from_core_code(code: int, message: str) -> EngineError:
    """Build the exception for a C++ core status code (see csrc/status.h)."""
    return _CORE_CODES.get(code, EngineError)(message)
