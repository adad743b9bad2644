"""Where monitoring files live under ``ENGINE_HOME``: one folder per model name.

``<home>/logs/<model>/``        Parquet prediction logs
``<home>/monitoring/<model>/``  ``drift.jsonl`` (window history) read by the report
"""

from __future__ import annotations

from pathlib import Path

from engine.names import validate_name
from engine.settings import get_settings

__all__ = ["engine_home", "logs_dir", "monitoring_dir"]


def engine_home(home: str | Path | None = None) -> Path:
    return Path(home).expanduser() if home is not None else get_settings().engine_home


def logs_dir(model: str, home: str | Path | None = None) -> Path:
    return engine_home(home) / "logs" / validate_name(model)


def monitoring_dir(model: str, home: str | Path | None = None) -> Path:
    return engine_home(home) / "monitoring" / validate_name(model)
