"""Webhook delivery to a loopback receiver: JSON body, retry after a 500, no retry on a 4xx,
a full queue that drops instead of blocking, and a close() that is bounded against a
receiver that hangs and counts every alert it did not deliver."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from engine.errors import InvalidConfigError
from engine.monitoring.alerts import Alert, WebhookNotifier


class Receiver:
    """An HTTP server on 127.0.0.1:0 answering POSTs with the queued status codes."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []  # answered POSTs, in arrival order
        self.statuses: list[int] = []  # answered in order; 200 once exhausted
        self.received = threading.Condition()  # notified on arrival and on answer
        self.arrived = 0  # POSTs read, answered or not
        self.gate = threading.Event()  # handlers wait for it; set unless a test holds them
        self.gate.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.received:
                    receiver.arrived += 1
                    arrival = receiver.arrived
                    receiver.received.notify_all()
                receiver.gate.wait(10.0)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                with receiver.received:
                    receiver.bodies.append(
                        {
                            "arrival": arrival,
                            "status": status,
                            "type": self.headers["Content-Type"],
                            "json": json.loads(body),
                        }
                    )
                    # Handler threads record after answering, so the next POST's thread can
                    # record first: keep the list in arrival order.
                    receiver.bodies.sort(key=lambda b: b["arrival"])
                    receiver.received.notify_all()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def wait_for(self, count: int, timeout_s: float = 10.0) -> None:
        with self.received:
            assert self.received.wait_for(lambda: len(self.bodies) >= count, timeout_s), self.bodies

    def wait_arrived(self, count: int, timeout_s: float = 10.0) -> None:
        with self.received:
            assert self.received.wait_for(lambda: self.arrived >= count, timeout_s), self.arrived

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


def alert(status: str = "firing") -> Alert:
    return Alert(
        status,
        "churn",
        "3",
        1_700_000_000_000,
        2000,
        ({"name": "b", "kind": "numeric", "breaches": ["psi"], "psi": 0.7, "ks": 0.3},),
    )


def test_delivers_json_and_retries_after_a_500(receiver: Receiver) -> None:
    receiver.statuses = [500, 503]
    hook = WebhookNotifier(receiver.url, backoff_initial_s=0.01, max_attempts=4)
    try:
        hook(alert())
        receiver.wait_for(3)
    finally:
        hook.close()
    assert [b["status"] for b in receiver.bodies] == [500, 503, 200]
    body = receiver.bodies[-1]
    assert body["type"] == "application/json"
    assert body["json"]["status"] == "firing" and body["json"]["model"] == "churn"
    assert body["json"]["features"][0]["name"] == "b"
    assert (hook.delivered, hook.failures, hook.attempts) == (1, 0, 3)


def test_a_4xx_is_not_retried_and_exhausted_retries_count_as_failures(receiver: Receiver) -> None:
    receiver.statuses = [400, 500, 500]
    hook = WebhookNotifier(receiver.url, backoff_initial_s=0.01, max_attempts=2)
    try:
        hook(alert())
        hook(alert("resolved"))
        receiver.wait_for(3)
    finally:
        hook.close()
    assert [b["status"] for b in receiver.bodies] == [400, 500, 500]
    assert (hook.delivered, hook.failures, hook.attempts) == (0, 2, 3)


def test_a_stuck_receiver_never_blocks_the_caller(receiver: Receiver) -> None:
    receiver.gate.clear()  # the receiver holds every request until released
    hook = WebhookNotifier(receiver.url, queue_capacity=2, max_attempts=1)
    try:
        for _ in range(50):
            hook(alert())  # returns at once: the queue holds 2, the worker at most 1 more
        assert hook.failures in (47, 48)
        receiver.gate.set()
    finally:
        hook.close()
    assert hook.delivered + hook.failures == 50 and hook.delivered in (2, 3)


def test_close_is_bounded_and_counts_every_undelivered_alert(receiver: Receiver) -> None:
    receiver.gate.clear()  # the receiver holds every request (for up to 10 s)
    hook = WebhookNotifier(receiver.url, max_attempts=1, timeout_s=30.0)
    try:
        for _ in range(3):
            hook(alert())
        receiver.wait_arrived(1)  # one POST in flight, two alerts queued
        started = time.monotonic()
        hook.close(timeout_s=0.2)
        closing_s = time.monotonic() - started
        # Bounded: neither the receiver's 10 s hold nor the 30 s HTTP timeout is waited for.
        assert closing_s < 5.0
        assert (hook.delivered, hook.failures) == (0, 3)
        hook(alert())  # after close: dropped and counted, never sent
        assert (hook.delivered, hook.failures) == (0, 4)
    finally:
        receiver.gate.set()
    # The abandoned POST now completes with a 200; the worker ends without recounting it.
    receiver.wait_for(1)
    hook._thread.join(10.0)
    assert not hook._thread.is_alive()
    assert (hook.delivered, hook.failures, hook.attempts) == (0, 4, 1)
    assert receiver.arrived == 1
    hook.close()  # idempotent


def test_close_delivers_what_is_queued_within_the_bound(receiver: Receiver) -> None:
    hook = WebhookNotifier(receiver.url, max_attempts=1)
    for status in ("firing", "resolved", "firing"):
        hook(alert(status))
    hook.close()
    assert (hook.delivered, hook.failures) == (3, 0)
    receiver.wait_for(3)  # the receiver records a body after it has answered
    assert [b["json"]["status"] for b in receiver.bodies] == ["firing", "resolved", "firing"]


def test_unreachable_receiver_counts_a_failure() -> None:
    hook = WebhookNotifier(
        "http://127.0.0.1:9/unreachable", max_attempts=2, backoff_initial_s=0.01, timeout_s=1.0
    )
    hook(alert())
    hook.close()
    assert (hook.delivered, hook.failures, hook.attempts) == (0, 1, 2)


def test_bad_url() -> None:
    with pytest.raises(InvalidConfigError, match="must be http:// or https://; was 'ftp://x'"):
        WebhookNotifier("ftp://x")
