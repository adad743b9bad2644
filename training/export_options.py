"""What every exporter takes (:class:`ExportOptions`) and returns (:class:`ExportResult`)."""

from __future__ import annotations

import contextlib
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
    "check_output_dir",
    "check_output_path",
    "describe_opsets",
    "staged_output",
]

# 18: the lowest opset torch's exporter (torch.export based) emits, and well inside what
# skl2onnx and the ONNX Runtime the engine loads support.
DEFAULT_OPSET = 18


@dataclass(frozen=True)
class ExportOptions:
    """``input_names``/``output_names`` empty means the exporter's defaults (see each exporter).
    ``dynamic_batch`` makes the first dimension of every input and output ``-1``; without it,
    the batch size is fixed to the sample's row count. ``opset`` is the highest opset of the
    default domain the converter may use: skl2onnx writes the lowest one the operators it
    emits need (11 for the tabular examples), torch's exporter writes ``opset`` itself;
    :attr:`ExportResult.opsets` says what the file imports."""

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
    """A validated artifact: the opsets the file imports (domain -> version, ``""`` for the
    default domain), its signature as the engine sees it, and the parity figures."""

    path: Path
    framework: str
    opsets: dict[str, int]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    parity: ParityReport

    @property
    def opset(self) -> int | None:
        """The file's opset of the default domain (None if it imports none)."""
        return self.opsets.get("")

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "framework": self.framework,
            "opset": self.opset,
            "opsets": dict(sorted(self.opsets.items())),
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "parity": self.parity.to_dict(),
        }


def describe_opsets(opsets: dict[str, int]) -> str:
    """``"opset 11 for the default domain, ai.onnx.ml 1"``: what a file imports, for people."""
    parts = [f"opset {opsets['']} for the default domain"] if "" in opsets else []
    parts += [f"{domain} {version}" for domain, version in sorted(opsets.items()) if domain]
    return ", ".join(parts) or "no opset imports"


def check_output_path(out: str | Path) -> Path:
    """``out`` as a Path; raises ExportError if it is a folder, or if a file stands where one
    of its folders should be (the write would fail only after the whole export)."""
    if isinstance(out, str) and out.endswith(("/", os.sep)):
        raise ExportError(
            f"--out {out!r} names a folder; give the ONNX file to write, "
            f"e.g. {str(Path(out) / 'model.onnx')!r}"
        )
    out = Path(out)
    if out.is_dir():
        raise ExportError(
            f"--out {str(out)!r} is a folder; give the ONNX file to write, "
            f"e.g. {str(out / 'model.onnx')!r}"
        )
    _refuse_file_in_the_way("--out", out, out.parent)
    return out


def check_output_dir(option: str, folder: str | Path) -> Path:
    """``folder`` as a Path; raises ExportError if it, or one of its parents, is a file."""
    folder = Path(folder)
    _refuse_file_in_the_way(option, folder, folder)
    return folder


def _refuse_file_in_the_way(option: str, given: Path, folder: Path) -> None:
    for path in (folder, *folder.parents):
        if path.exists() or path.is_symlink():
            if not path.is_dir():
                raise ExportError(
                    f"{option} {str(given)!r}: {str(path)!r} is a file, not a folder; "
                    "give a path in an existing folder, or one that can be created"
                )
            return


@contextmanager
def staged_output(out: str | Path) -> Iterator[Path]:
    """A temporary path beside ``out``, renamed onto ``out`` only if the block succeeds: a file
    at ``out`` is therefore always one that passed validation. It gets the mode of any new
    file (``0o666`` less the umask), not mkstemp's private ``0o600``: the artifact is meant to
    be copied to and served from places other users read."""
    out = check_output_path(out)
    with created_folders_removed_on_failure(out.parent):
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".onnx", dir=out.parent)
        os.close(fd)
        try:
            yield Path(tmp)
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, out)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


@contextmanager
def created_folders_removed_on_failure(folder: Path) -> Iterator[None]:
    """If the block raises, removes again the folders of ``folder``'s path that did not exist
    before it (deepest first), where they are still empty: a failed command leaves no empty
    folders behind, and keeps whatever it or anything else wrote into them."""
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        yield
    except BaseException:
        for path in created:
            with contextlib.suppress(OSError):  # not empty: something wrote there
                path.rmdir()
        raise


def _umask() -> int:
    """The process's umask, read without changing it where Linux shows it (since 4.7); else
    by setting and restoring it, which another thread creating a file meanwhile could see."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
