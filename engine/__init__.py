"""engine: a fast inference engine for ONNX models.

Public names are listed in ``__all__``; the compiled module ``engine._core`` is private.
"""

from engine import errors
from engine.config import ModelConfig
from engine.errors import (
    DeadlineExceededError,
    EngineError,
    InvalidInputError,
    ModelNotFoundError,
    OverloadedError,
)
from engine.model import Model, load
from engine.signature import TensorSpec

__all__ = [
    "DeadlineExceededError",
    "EngineError",
    "InvalidInputError",
    "Model",
    "ModelConfig",
    "ModelNotFoundError",
    "OverloadedError",
    "TensorSpec",
    "errors",
    "load",
]
__version__ = "0.1.0"
