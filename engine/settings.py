"""Process-wide settings: the one module that reads environment variables.

Everything else asks :func:`get_settings` (read once, then cached) or takes explicit
arguments, so tests and library users can override without touching ``os.environ``.

Variables:

``ENGINE_HOME``
    Folder of the embedded registry (``registry.db``) and its artifacts. Default ``~/.engine``.
``ENGINE_REGISTRY_URL``
    SQLAlchemy URL of the registry database (e.g. ``postgresql+psycopg://host/db``). Default:
    SQLite at ``$ENGINE_HOME/registry.db``.
``ENGINE_ARTIFACTS_URL``
    fsspec URL of an artifact store several machines share (``s3://bucket/models``, a path on a
    shared filesystem). Default: artifacts under ``$ENGINE_HOME/artifacts``.
``ENGINE_ORT_LIBRARY``
    Path of the ``libonnxruntime.so`` the core loads. Default: the one inside the installed
    ``onnxruntime`` (or ``onnxruntime-gpu``) wheel.

To add a variable: add a field to :class:`Settings` and one line to :meth:`Settings.from_env`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Settings", "get_settings"]


@dataclass(frozen=True)
class Settings:
    """Settings taken from the environment. Empty variables count as unset."""

    engine_home: Path
    registry_url: str | None = None
    artifacts_url: str | None = None
    ort_library: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            engine_home=Path(_get(env, "ENGINE_HOME") or "~/.engine").expanduser(),
            registry_url=_get(env, "ENGINE_REGISTRY_URL"),
            artifacts_url=_get(env, "ENGINE_ARTIFACTS_URL"),
            ort_library=_get(env, "ENGINE_ORT_LIBRARY"),
        )


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read from the environment on first call only."""
    return Settings.from_env()
