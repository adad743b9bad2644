"""Finding and loading ONNX Runtime's shared library for the native core.

The core never links against ORT: it dlopens the ``libonnxruntime.so.*`` that the installed
``onnxruntime`` (or ``onnxruntime-gpu``) wheel ships in ``onnxruntime/capi/``. We locate the
wheel with ``importlib.util.find_spec`` instead of importing it, because importing the Python
module would load a second, 36 MB copy of ORT.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

from engine import _core
from engine.errors import ModelLoadError
from engine.settings import get_settings

__all__ = ["ensure_runtime", "find_ort_library"]

_lock = threading.Lock()


def find_ort_library() -> Path:
    """Path of the ORT shared library: ``ENGINE_ORT_LIBRARY``, else the installed wheel's."""
    configured = get_settings().ort_library
    if configured:
        path = Path(configured)
        if not path.is_file():
            raise ModelLoadError(f"ENGINE_ORT_LIBRARY={configured!r} is not a file")
        return path
    spec = importlib.util.find_spec("onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "ONNX Runtime is not installed: install the package with the `cpu` extra "
            "(onnxruntime) or the `gpu` extra (onnxruntime-gpu)"
        )
    capi = Path(next(iter(spec.submodule_search_locations))) / "capi"
    candidates = sorted(capi.glob("libonnxruntime.so.*")) or sorted(capi.glob("libonnxruntime.so"))
    if not candidates:
        raise ModelLoadError(f"no libonnxruntime.so in {capi}; reinstall onnxruntime")
    return candidates[-1]


def ensure_runtime() -> None:
    """Load ORT into the core once per process (thread-safe, cheap after the first call)."""
    if _core.runtime_initialized():
        return
    with _lock:
        if not _core.runtime_initialized():
            _core.init_runtime(str(find_ort_library()))
