"""Structured logs: one JSON object per line, the request id in every line."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator

import pytest

from engine.monitoring.logging import RequestLoggerAdapter, configure, request_context


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    out = io.StringIO()
    yield out
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_the_request_id(stream: io.StringIO) -> None:
    configure(json=True, stream=stream)
    log = logging.getLogger("engine.test")
    log.info("outside")
    with request_context("req-1"):
        log.warning("inside %d", 7, extra={"model": "churn", "rows": 3})
        try:
            raise ValueError("bad")
        except ValueError:
            log.exception("failed")
    RequestLoggerAdapter(log, "req-2").info("adapted")
    first, second, third, fourth = lines(stream)
    assert first["request_id"] == "-" and first["message"] == "outside"
    assert second["request_id"] == "req-1" and second["message"] == "inside 7"
    assert second["level"] == "WARNING" and second["logger"] == "engine.test"
    assert second["model"] == "churn" and second["rows"] == 3
    assert str(second["time"]).endswith("Z")
    assert third["request_id"] == "req-1" and "ValueError: bad" in str(third["exception"])
    assert fourth["request_id"] == "req-2"


def test_request_ids_stay_with_their_thread(stream: io.StringIO) -> None:
    configure(json=True, stream=stream)
    log = logging.getLogger("engine.test")

    def work(rid: str) -> None:
        with request_context(rid):
            for _ in range(20):
                log.info(rid)

    threads = [threading.Thread(target=work, args=(f"r{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records = lines(stream)
    assert len(records) == 80 and all(r["request_id"] == r["message"] for r in records)


def test_text_format_and_reconfigure(stream: io.StringIO) -> None:
    configure(json=True, stream=io.StringIO())
    configure(json=False, stream=stream)  # replaces the first handler, does not add one
    engine_handlers = [
        h for h in logging.getLogger().handlers if h.get_name() == "engine-monitoring"
    ]
    assert len(engine_handlers) == 1
    with request_context("abc") as rid:
        logging.getLogger("engine.test").info("hello")
    assert rid == "abc"
    assert "INFO engine.test [abc] hello" in stream.getvalue()
