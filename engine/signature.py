"""Tensor signatures and the one table of element types.

Each element type has three names: the numpy dtype, ONNX's ``TensorProto`` name and KServe v2's
datatype string. Everything that converts between them (the Python API, the registry, the
Triton ``config.pbtxt`` reader, the server's metadata) uses this table, so a type is spelt
one way per vocabulary across the whole product.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.errors import InvalidConfigError

__all__ = ["DTYPES", "DType", "TensorSpec", "check_declared", "dtype_by_name"]


@dataclass(frozen=True)
class DType:
    """One element type under its three names."""

    name: str  # our canonical name, the numpy dtype name ("float32", "string", ...)
    onnx: str  # ONNX TensorProto name ("FLOAT", "STRING", ...)
    kserve: str  # KServe v2 datatype ("FP32", "BYTES", ...)
    triton: str  # Triton config.pbtxt data_type ("TYPE_FP32", "TYPE_STRING", ...)
    numpy: np.dtype[Any]


def _dt(name: str, onnx: str, kserve: str, triton: str, numpy: Any) -> DType:
    return DType(name, onnx, kserve, triton, np.dtype(numpy))


DTYPES: tuple[DType, ...] = (
    _dt("float32", "FLOAT", "FP32", "TYPE_FP32", np.float32),
    _dt("float64", "DOUBLE", "FP64", "TYPE_FP64", np.float64),
    _dt("float16", "FLOAT16", "FP16", "TYPE_FP16", np.float16),
    _dt("int8", "INT8", "INT8", "TYPE_INT8", np.int8),
    _dt("int16", "INT16", "INT16", "TYPE_INT16", np.int16),
    _dt("int32", "INT32", "INT32", "TYPE_INT32", np.int32),
    _dt("int64", "INT64", "INT64", "TYPE_INT64", np.int64),
    _dt("uint8", "UINT8", "UINT8", "TYPE_UINT8", np.uint8),
    _dt("uint16", "UINT16", "UINT16", "TYPE_UINT16", np.uint16),
    _dt("uint32", "UINT32", "UINT32", "TYPE_UINT32", np.uint32),
    _dt("uint64", "UINT64", "UINT64", "TYPE_UINT64", np.uint64),
    _dt("bool", "BOOL", "BOOL", "TYPE_BOOL", np.bool_),
    # Strings travel as numpy object arrays of str (or bytes) in Python.
    _dt("string", "STRING", "BYTES", "TYPE_STRING", object),
)

_BY_ANY_NAME: dict[str, DType] = {}
for _d in DTYPES:
    for _key in (_d.name, _d.onnx, _d.kserve, _d.triton):
        _BY_ANY_NAME.setdefault(_key, _d)


def dtype_by_name(name: str) -> DType:
    """Look a type up by any of its names; raises ``KeyError`` naming the known ones."""
    try:
        return _BY_ANY_NAME[name]
    except KeyError:
        known = ", ".join(d.name for d in DTYPES)
        raise KeyError(f"unknown element type {name!r}; known: {known}") from None


@dataclass(frozen=True)
class TensorSpec:
    """A named tensor of the model's signature. ``shape`` uses -1 for a dynamic dimension."""

    name: str
    dtype: str  # canonical name from DTYPES
    shape: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TensorSpec:
        return cls(str(data["name"]), dtype_by_name(str(data["dtype"])).name,
                   tuple(int(d) for d in data["shape"]))


def check_declared(
    declared: tuple[TensorSpec, ...], actual: tuple[TensorSpec, ...], what: str, label: str
) -> None:
    """Check a config's declared inputs or outputs against the model's own signature.

    Every declared tensor must exist with the same dtype and rank; a dim matches when equal or
    when either side is -1. Raises InvalidConfigError naming the tensor and both values.
    """
    by_name = {t.name: t for t in actual}
    for spec in declared:
        real = by_name.get(spec.name)
        if real is None:
            raise InvalidConfigError(
                f"{label}: config declares {what} {spec.name!r} but the model's {what}s are "
                f"{sorted(by_name)}"
            )
        if real.dtype != spec.dtype:
            raise InvalidConfigError(
                f"{label}: config declares {what} {spec.name!r} as {spec.dtype} but the model "
                f"has {real.dtype}"
            )
        if len(real.shape) != len(spec.shape) or any(
            a != b and -1 not in (a, b) for a, b in zip(real.shape, spec.shape)
        ):
            raise InvalidConfigError(
                f"{label}: config declares {what} {spec.name!r} with shape {list(spec.shape)} "
                f"but the model has {list(real.shape)} (-1 = dynamic)"
            )
