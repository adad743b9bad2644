"""What every exporter takes (:class:`ExportOptions`) and returns (:class:`ExportResult`)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.training.validate import DEFAULT_ATOL, DEFAULT_RTOL, ParityReport

from engine.errors import ExportError
from engine.signature import TensorSpec

__all__ = [
    "DEFAULT_OPSET",
    "ExportOptions",
    "ExportResult",
    "check_output_path",
    "staged_output",
]

# 18: the lowest opset torch's exporter (torch.export based) emits, and well inside what
# skl2onnx and the ONNX Runtime the engine loads support.
DEFAULT_OPSET = 18


@dataclass(frozen=True)
class ExportOptions:
    """``input_names``/``output_names`` empty means the exporter's defaults (see each exporter).
    ``dynamic_batch`` makes the first dimension of every input and output ``-1``; without it,
    the batch size is fixed to the sample's row count."""

    opset: int = DEFAULT_OPSET
    input_names: tuple[str, ...] = ()
    output_names: tuple[str, ...] = ()
    dynamic_batch: bool = True
    atol: float = DEFAULT_ATOL
    rtol: float = DEFAULT_RTOL

    def __post_init__(self) -> None:
        if not isinstance(self.opset, int) or not 7 <= self.opset <= 30:
            raise ExportError(f"opset must be an int in [7, 30]; was {self.opset!r}")
        for name in ("atol", "rtol"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value >= 0:
                raise ExportError(f"{name} must be a number >= 0; was {value!r}")
        for names in (self.input_names, self.output_names):
            if len(set(names)) != len(names) or any(not n for n in names):
                raise ExportError(f"names must be distinct and non-empty; was {list(names)}")


@dataclass(frozen=True)
class ExportResult:
    """A validated artifact: its signature as the engine sees it, and the parity figures."""

    path: Path
    framework: str
    opset: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    parity: ParityReport

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "framework": self.framework,
            "opset": self.opset,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "parity": self.parity.to_dict(),
        }


def check_output_path(out: str | Path) -> Path:
    """``out`` as a Path; raises ExportError if it is a folder (the rename would fail only
    after the whole export)."""
    out = Path(out)
    if out.is_dir():
        raise ExportError(
            f"--out {str(out)!r} is a folder; give the ONNX file to write, "
            f"e.g. {str(out / 'model.onnx')!r}"
        )
    return out


@contextmanager
def staged_output(out: str | Path) -> Iterator[Path]:
    """A temporary path beside ``out``, renamed onto ``out`` only if the block succeeds: a file
    at ``out`` is therefore always one that passed validation."""
    out = check_output_path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".onnx", dir=out.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
