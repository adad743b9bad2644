"""predict_async: asyncio futures resolved on their own loop, a batch's results in one hand-off
per loop, loops in several threads at once, and loops that close while a request is pending."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import engine

ONE_INSTANCE = engine.ModelConfig(instances=1, max_batch_size=64)


def _feeds(seed: int) -> dict[str, np.ndarray]:
    rows = 1 + seed % 3
    a = np.arange(rows * 4, dtype=np.float32).reshape(rows, 4) + seed
    return {"a": a, "b": a * 2, "k": np.full((rows, 1), seed, np.int64)}


def _check(seed: int, out: dict[str, np.ndarray]) -> None:
    feeds = _feeds(seed)
    np.testing.assert_array_equal(out["sum"], feeds["a"] + feeds["b"])
    np.testing.assert_array_equal(out["prod"], feeds["a"] * feeds["b"])
    np.testing.assert_array_equal(out["k2"], feeds["k"] * 2)


def test_loops_in_several_threads_each_get_their_own_results(multi_io_path: Path) -> None:
    failures: list[BaseException] = []

    async def many(model: engine.Model, first: int) -> None:
        seeds = range(first, first + 300)
        outs = await asyncio.gather(*(model.predict_async(_feeds(s)) for s in seeds))
        for seed, out in zip(seeds, outs):
            _check(seed, out)

    def run(model: engine.Model, first: int) -> None:
        try:
            asyncio.run(many(model, first))
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread below
            failures.append(exc)

    with engine.load(multi_io_path) as model:
        threads = [threading.Thread(target=run, args=(model, 1000 * i)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert model.stats().requests["ok"] == 900
    assert failures == []


def test_a_batch_reaches_its_loop_in_few_wake_ups(slow_path: Path) -> None:
    """32 requests run as one batch; their results reach the loop in a handful of
    call_soon_threadsafe calls (one per group the drain thread takes), not 32."""
    calls = 0

    async def scenario(model: engine.Model) -> None:
        nonlocal calls
        loop = asyncio.get_running_loop()
        original = loop.call_soon_threadsafe

        def counting(callback: Any, *args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            return original(callback, *args, **kwargs)

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        busy = asyncio.ensure_future(model.predict_async(np.ones((64, 512), np.float32)))
        while model.stats().queue_depth:  # until the worker took it: the instance is busy
            await asyncio.sleep(0.0005)
        rows = [np.full((1, 512), i, np.float32) for i in range(32)]
        outs = await asyncio.gather(*(model.predict_async(r) for r in rows))
        await busy
        assert all(out["y"].shape == (1, 512) for out in outs)
        expected = model.predict(np.concatenate(rows))["y"]
        np.testing.assert_array_equal(np.concatenate([out["y"] for out in outs]), expected)

    with engine.load(slow_path, config=ONE_INSTANCE) as model:
        asyncio.run(scenario(model))
        sizes = model.stats().batch_sizes
    assert sizes.get(32) == 2, sizes  # the 32 ran as one batch; the reference run is the other
    assert 1 <= calls <= 8, calls  # the busy request's, and the batch's in few groups


def test_a_loop_closed_while_its_request_runs_does_not_stop_delivery(
        slow_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="engine")
    with engine.load(slow_path, config=ONE_INSTANCE) as model:
        # Runs queued ahead (about 20 ms each), so the request is still in the engine when its
        # loop closes however slowly this test's own steps run (a 10 ms sleep was once longer
        # than the request's whole run on a loaded CI machine).
        ahead = [model.submit(np.ones((64, 512), np.float32)) for _ in range(4)]
        abandoned = asyncio.new_event_loop()
        task = abandoned.create_task(model.predict_async(np.ones((64, 512), np.float32)))
        abandoned.run_until_complete(asyncio.sleep(0))  # the task's first step submits it
        assert not task.done()
        abandoned.close()  # its result has no loop to go to any more
        for f in ahead:
            f.result(timeout=60)
        out = asyncio.run(model.predict_async(np.ones((2, 512), np.float32)))
        assert out["y"].shape == (2, 512)
    # Read once closed: the abandoned request's completion may still be on the completion
    # thread when the later one, run alone on the worker, has already returned.
    assert model.stats().requests["ok"] == 2 + len(ahead)  # the abandoned one ran too
    assert not [r for r in caplog.records if "could not resolve" in r.getMessage()]


def test_cancelling_a_running_request_drops_its_result(slow_path: Path) -> None:
    async def scenario(model: engine.Model) -> None:
        running = asyncio.ensure_future(model.predict_async(np.ones((64, 512), np.float32)))
        while model.stats().queue_depth or not model.stats().in_flight:
            await asyncio.sleep(0.0005)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        out = await model.predict_async(np.ones((1, 512), np.float32))  # delivery goes on
        assert out["y"].shape == (1, 512)

    with engine.load(slow_path, config=ONE_INSTANCE) as model:
        asyncio.run(scenario(model))
    requests = model.stats().requests  # once closed: every completion is counted
    assert requests["ok"] == 2  # it had started: it ran, and only its result was dropped
    assert requests["cancelled"] == 0


def test_an_interrupted_hand_off_still_settles_the_rest_of_its_group() -> None:
    """A KeyboardInterrupt (or a signal handler's SystemExit) raised inside the callback that
    settles a group must not strand the group's other futures: they are registered nowhere
    else by then, and nothing would ever resolve them."""
    from engine._completion import _settle_on_loop

    class InterruptedAfterSet(asyncio.Future):  # type: ignore[type-arg]
        def set_result(self, result: Any) -> None:
            super().set_result(result)
            raise KeyboardInterrupt  # as if SIGINT landed right here

    loop = asyncio.new_event_loop()
    try:
        futures = [loop.create_future(), InterruptedAfterSet(loop=loop), loop.create_future(),
                   loop.create_future()]
        loop.call_soon(_settle_on_loop, [(f, 0, "", i) for i, f in enumerate(futures)])
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(asyncio.sleep(0.05))
        loop.run_until_complete(asyncio.sleep(0))  # the program goes on running its loop
        assert [f.result() for f in futures] == [0, 1, 2, 3]
    finally:
        loop.close()


def test_the_request_is_taken_when_predict_async_is_called(mlp_path: Path) -> None:
    """Called in a running loop, predict_async checks and queues at once, as submit does: a
    buffer reused before the tasks run, a bad argument and a close() before the await each
    behave as they would with submit()."""
    async def main(model: engine.Model) -> None:
        buffer = np.zeros((1, 32), np.float32)
        pending = []
        for k in range(5):
            buffer[:] = k
            pending.append(model.predict_async(buffer))  # read now, not when awaited
        outs = await asyncio.gather(*pending)
        expected = [model.predict(np.full((1, 32), k, np.float32))["y"] for k in range(5)]
        for out, want in zip(outs, expected):
            np.testing.assert_array_equal(out["y"], want)
        with pytest.raises(TypeError, match="priority must be an int"):
            model.predict_async(buffer, priority=1.5)  # type: ignore[arg-type]
        queued = model.predict_async(buffer)
        model.close()  # drains what was queued before it
        assert (await queued)["y"].shape == (1, 1)

    asyncio.run(main(engine.load(mlp_path)))


def test_predict_async_outside_a_running_loop_runs_when_the_loop_starts(mlp_path: Path) -> None:
    with engine.load(mlp_path) as model:
        out = asyncio.run(model.predict_async(np.ones((2, 32), np.float32)))
        assert out["y"].shape == (2, 1)
