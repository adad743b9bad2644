"""Process logging: plain text or one JSON object per line, with the request id in every line.

``configure(json=True)`` installs one handler on the root logger. Every record gets a
``request_id`` attribute from :data:`request_id_var` (set it with :func:`request_context`
around a request's work; "-" outside one), so text lines show it too. JSON lines carry
``time`` (ISO 8601, UTC, milliseconds), ``level``, ``logger``, ``message``, ``request_id``,
the exception text when there is one, and any ``extra={...}`` fields that are JSON-able.
"""

from __future__ import annotations

import contextlib
import contextvars
import json as _json
import logging
import sys
import uuid
from collections.abc import Iterator, MutableMapping
from datetime import datetime, timezone
from typing import IO, Any

__all__ = [
    "JsonFormatter",
    "RequestIdFilter",
    "RequestLoggerAdapter",
    "configure",
    "new_request_id",
    "request_context",
    "request_id_var",
]

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "engine_request_id", default=None
)

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "request_id",
}
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
_HANDLER_NAME = "engine-monitoring"


def new_request_id() -> str:
    return uuid.uuid4().hex


@contextlib.contextmanager
def request_context(request_id: str | None = None) -> Iterator[str]:
    """Set the request id of log lines emitted inside the block (a new one if not given)."""
    rid = request_id or new_request_id()
    token = request_id_var.set(rid)
    try:
        yield rid
    finally:
        request_id_var.reset(token)


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` (from the context, unless the record has one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = request_id_var.get() or "-"
        return True


class RequestLoggerAdapter(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger bound to one request id, for work that leaves the request's context."""

    def __init__(self, logger: logging.Logger, request_id: str) -> None:
        super().__init__(logger, {"request_id": request_id})

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(kwargs.get("extra") or {}), "request_id": self.extra["request_id"]}  # type: ignore[index]
        return msg, kwargs


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, timezone.utc)
        line: dict[str, Any] = {
            "time": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_id_var.get() or "-",
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in line:
                line[key] = value if _jsonable(value) else repr(value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return _json.dumps(line, default=repr, ensure_ascii=False)


def configure(
    *, json: bool = False, level: int | str = logging.INFO, stream: IO[str] | None = None
) -> logging.Handler:
    """Install (or replace) the engine's handler on the root logger; returns the handler."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
            handler.close()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if json else logging.Formatter(_TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(level)
    return handler


def _jsonable(value: Any) -> bool:
    try:
        _json.dumps(value, allow_nan=False)
        return True
    except (TypeError, ValueError):
        return False
