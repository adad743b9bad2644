"""The batcher's deadlines against its queue delay and busy instances, Model.close() against
runs on callers' threads, and batch-size statistics that stay exact at any size."""

from __future__ import annotations

import threading
from pathlib import Path

import factories
import numpy as np
import pytest

import engine
from engine.errors import DeadlineExceededError, UnavailableError

ROW = np.ones((1, 32), np.float32)


def test_a_queue_delay_longer_than_the_deadline_still_runs_the_request(mlp_path: Path) -> None:
    # Waiting 1 s for company would let a 200 ms deadline pass on an idle model; the batch
    # starts a fifth of the timeout (40 ms, ample for a wake-up) before the deadline instead.
    config = engine.ModelConfig(max_queue_delay_us=1_000_000, max_batch_size=8)
    with engine.load(mlp_path, config=config) as model:
        outcomes = []
        for _ in range(2):
            future = model.submit(ROW, timeout_us=200_000)
            outcomes.append(future.exception(timeout=30))
        assert outcomes == [None, None]
        model.predict(ROW, timeout_us=200_000)
        stats = model.stats()
    assert stats.requests["ok"] == 3
    assert stats.requests["expired"] == 0


def test_a_nearer_deadline_queued_behind_a_farther_one_still_runs(mlp_path: Path) -> None:
    # The idle worker sleeps until the first request must start (800 ms); the second must
    # start by 80 ms, so its arrival wakes the worker, and both run in one batch then.
    config = engine.ModelConfig(max_queue_delay_us=2_000_000, max_batch_size=8)
    with engine.load(mlp_path, config=config) as model:
        far = model.submit(ROW, timeout_us=1_000_000)
        near = model.submit(ROW, timeout_us=100_000)
        assert near.exception(timeout=30) is None
        assert far.exception(timeout=30) is None
        stats = model.stats()
    assert stats.batch_sizes == {2: 1}


def test_a_request_expires_while_the_only_instance_is_busy(slow_path: Path) -> None:
    # The error arrives at the deadline, while the long batch still runs: not when it ends.
    config = engine.ModelConfig(instances=1, max_batch_size=256)
    with engine.load(slow_path, config=config) as model:
        busy = model.submit(np.ones((256, 512), np.float32))
        for _ in range(10_000):  # until a worker has taken it
            if model.stats().queue_depth == 0:
                break
            threading.Event().wait(0.0005)
        late = model.submit(np.ones((1, 512), np.float32), timeout_us=1000)
        # Both times are named: a timeout set too short, or a queue too long.
        with pytest.raises(DeadlineExceededError,
                           match=r"its timeout of 1000 us passed after \d+ us in the queue; "
                                 r"the request was not run"):
            late.result(timeout=60)
        batches_when_expired = model.stats().batches
        busy.result(timeout=60)
    assert batches_when_expired == 0, "the expiry waited for the running batch to end"


def _predict_into(model: engine.Model, rows: np.ndarray, results: list[object]) -> None:
    """Appends the predict's outputs, or its UnavailableError (closed before it took the
    instance)."""
    try:
        results.append(model.predict(rows))
    except UnavailableError as exc:
        results.append(exc)


def test_close_waits_for_a_predict_running_on_the_callers_thread(slow_path: Path) -> None:
    rows = np.ones((256, 512), np.float32)
    for _ in range(5):  # until close() lands while the predict runs, not before it started
        model = engine.load(slow_path, config=engine.ModelConfig(instances=1, max_batch_size=256))
        results: list[object] = []

        caller = threading.Thread(target=_predict_into, args=(model, rows, results))
        caller.start()
        for _ in range(10_000):  # until the predict is in flight
            if model.stats().in_flight == 1:
                break
            threading.Event().wait(0.0005)
        threading.Event().wait(0.005)  # from in flight to running is a few instructions
        model.close()
        batches_at_close = model.stats().batches
        caller.join(timeout=60)
        assert len(results) == 1
        if not isinstance(results[0], UnavailableError):
            # A run is counted before its instance is released: one still going shows 0 here.
            assert batches_at_close == 1, "close() returned while predict still ran"
            return
        assert batches_at_close == 0
    pytest.fail("close() came before the predict took its instance in each of 5 tries")


def test_without_batching_each_run_counts_its_own_rows(mlp_path: Path) -> None:
    config = engine.ModelConfig(batching=False, max_batch_size=64)
    with engine.load(mlp_path, config=config) as model:
        for rows in (10, 10, 40, 0):
            model.predict(np.ones((rows, 32), np.float32))
        stats = model.stats()
    assert stats.batch_sizes == {0: 1, 10: 2, 40: 1}
    assert stats.inferred_rows == 60


def test_the_largest_max_batch_size_keeps_only_the_sizes_seen(mlp_path: Path) -> None:
    # Counters for every possible size were gigabytes at this bound, copied by every stats().
    config = engine.ModelConfig(max_batch_size=2**31 - 1)
    with engine.load(mlp_path, config=config) as model:
        model.predict(np.ones((3, 32), np.float32))
        model.predict(np.ones((3000, 32), np.float32))
        stats = model.stats()
    assert stats.batch_sizes == {3: 1, 3000: 1}
    assert set(stats.batch_compute_us) == {3, 3000}
    assert stats.inferred_rows == 3003


def test_close_returns_once_every_future_is_resolved(slow_path: Path) -> None:
    # The core completes requests before its close() returns, but one engine thread resolves
    # their futures: close() now waits for that too, so none is left pending behind it. Here
    # that thread is held up by a slow done-callback of the first request.
    model = engine.load(slow_path, config=engine.ModelConfig(instances=1, max_batch_size=256))
    first = model.submit(np.ones((256, 512), np.float32))  # still running as the callback is added
    held = threading.Event()
    first.add_done_callback(lambda _: (held.set(), threading.Event().wait(0.5)))
    futures = [model.submit(np.ones((16, 512), np.float32)) for _ in range(12)]
    model.close()
    assert held.is_set()
    assert [f.done() for f in futures] == [True] * 12


def test_close_from_a_done_callback_does_not_wait_for_its_own_delivery(slow_path: Path) -> None:
    model = engine.load(slow_path, config=engine.ModelConfig(instances=1))
    closed = threading.Event()
    first = model.submit(np.ones((1, 512), np.float32))
    later = model.submit(np.ones((1, 512), np.float32))
    # Runs on the engine's delivery thread, which must deliver `later` too: waiting for it
    # there would wait for itself (DELIVERY_WAIT_S).
    first.add_done_callback(lambda _: (model.close(), closed.set()))
    assert closed.wait(timeout=5), "close() in a done-callback waited for its own thread"
    assert later.result(timeout=5)["y"].shape == (1, 512)


def test_a_second_close_waits_for_the_first(slow_path: Path) -> None:
    model = engine.load(slow_path, config=engine.ModelConfig(instances=1, max_batch_size=256))
    busy = model.submit(np.ones((256, 512), np.float32))
    first = threading.Thread(target=model.close)
    first.start()
    for _ in range(10_000):  # until the first close() has begun
        if model.closed:
            break
        threading.Event().wait(0.0005)
    model.close()
    assert busy.done(), "the second close() returned while the first still drained"
    first.join(timeout=60)
    assert busy.exception(timeout=0) is None
    assert model.stats().requests["ok"] == 1


class _Interrupted(Exception):
    """What this test's SIGINT handler raises (a stand-in for KeyboardInterrupt that cannot
    stop the test run if the signal came late)."""


def test_ctrl_c_stops_a_predict_waiting_in_the_queue(tmp_path: Path) -> None:
    # predict() waits with the GIL released; Python's signal handlers still run while it waits
    # in the queue, and the request they interrupt is cancelled, never run.
    import os
    import signal
    import time

    path = factories.slow_mlp(tmp_path / "slow.onnx", width=1024)
    config = engine.ModelConfig(instances=1, batching=False)
    x = np.ones((1, 1024), np.float32)

    def interrupt(signum: int, frame: object) -> None:
        raise _Interrupted

    with engine.load(path, config=config) as model:
        backlog = [model.submit(x) for _ in range(100)]  # tenths of a second of runs

        calling, returned = threading.Event(), threading.Event()

        def signal_while_predict_waits() -> None:
            calling.wait(10)
            time.sleep(0.05)  # predict queues behind the backlog within microseconds
            if not returned.is_set():
                os.kill(os.getpid(), signal.SIGINT)

        previous = signal.signal(signal.SIGINT, interrupt)
        sender = threading.Thread(target=signal_while_predict_waits)
        try:
            sender.start()
            calling.set()
            with pytest.raises(_Interrupted):
                try:
                    model.predict(x)
                finally:
                    returned.set()
        finally:
            sender.join()  # its signal, if any, is handled by `interrupt` before this returns
            signal.signal(signal.SIGINT, previous)
        for future in backlog:
            assert future.result(timeout=30)["y"].shape == (1, 1024)
        stats = model.stats()
    assert stats.requests["cancelled"] == 1  # the interrupted request never ran
    assert stats.requests["ok"] == len(backlog)
