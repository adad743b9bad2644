"""engine: a fast inference engine for ONNX models.

Public names are listed in ``__all__``; the compiled module ``engine._core`` is private.
"""

from engine._load_order import check_native_load_order

check_native_load_order()  # before anything loads engine._core

from typing import TYPE_CHECKING

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
from engine.stats import ModelStats

if TYPE_CHECKING:
    from engine.registry import ModelVersion, Registry

__all__ = [
    "DeadlineExceededError",
    "EngineError",
    "InvalidInputError",
    "Model",
    "ModelConfig",
    "ModelNotFoundError",
    "ModelStats",
    "ModelVersion",
    "OverloadedError",
    "Registry",
    "TensorSpec",
    "errors",
    "load",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # The registry (SQLAlchemy, two thirds of `import engine`) loads on first use: inference
    # code and `engine serve --model-repository` never pay for it.
    if name in ("ModelVersion", "Registry"):
        from engine import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
