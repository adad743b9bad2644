"""The drift history: one JSON line per closed window, appended by the monitor, read by reports.

File ``<dir>/drift.jsonl``; when it passes ``max_bytes`` it is renamed ``drift.jsonl.1``
(replacing the previous one), so the history stays bounded at about twice ``max_bytes``.
Each line is ``WindowResult.to_dict()`` plus ``time_ms`` and, when the monitor has a stats
source, ``requests``: the core's cumulative request counts by outcome at that time.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from engine.monitoring.monitor import WindowResult

__all__ = ["HISTORY_FILE", "DriftHistory", "read_history"]

HISTORY_FILE = "drift.jsonl"
_log = logging.getLogger(__name__)


class DriftHistory:
    """Window listener appending each result to ``<directory>/drift.jsonl``."""

    def __init__(
        self,
        directory: str | Path,
        *,
        max_bytes: int = 64 << 20,
        requests: Callable[[], Mapping[str, int]] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.path = self.directory / HISTORY_FILE
        self.max_bytes = max_bytes
        self._requests = requests
        self._lock = threading.Lock()

    def __call__(self, result: WindowResult) -> None:
        line: dict[str, Any] = {"time_ms": result.ended_ms, **result.to_dict()}
        if self._requests is not None:
            try:
                line["requests"] = {k: int(v) for k, v in self._requests().items()}
            except Exception:  # noqa: BLE001  the window is still worth recording
                _log.exception("could not read request counts for the drift history")
        text = json.dumps(line, allow_nan=False, separators=(",", ":")) + "\n"
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            if self.path.exists() and self.path.stat().st_size >= self.max_bytes:
                os.replace(self.path, self.path.with_name(HISTORY_FILE + ".1"))
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(text)


def read_history(
    directory: str | Path, *, since_ms: int | None = None, version: str | None = None
) -> Iterator[dict[str, Any]]:
    """History lines (oldest first), optionally from ``since_ms`` on and of one version."""
    directory = Path(directory)
    for path in (directory / (HISTORY_FILE + ".1"), directory / HISTORY_FILE):
        if not path.exists():
            continue
        # Undecodable bytes become U+FFFD, so such a line fails to parse and is skipped.
        with open(path, encoding="utf-8", errors="replace") as f:
            for number, text in enumerate(f, 1):
                if not text.strip():
                    continue
                line = _parse(text)
                if line is None:
                    _log.warning("skipping a malformed line %d of %s", number, path)
                    continue
                if since_ms is not None and line.get("time_ms", 0) < since_ms:
                    continue
                if version is not None and str(line.get("version")) != version:
                    continue
                yield line


def _parse(text: str) -> dict[str, Any] | None:
    """A history line, or None for text that is not one (readers rely on ``time_ms``)."""
    try:
        line = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(line, dict) or not isinstance(line.get("time_ms"), (int, float)):
        return None
    return line
