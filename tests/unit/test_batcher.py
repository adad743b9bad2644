"""The dynamic batcher through the Python API: batching, priorities, deadlines, queue bound,
cancellation, poison isolation, shutdown and statistics."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future, wait
from pathlib import Path

import factories
import numpy as np
import pytest

import engine
from engine.errors import (
    DeadlineExceededError,
    ExecutionError,
    InvalidConfigError,
    InvalidInputError,
    OverloadedError,
    UnavailableError,
)

ONE_INSTANCE = engine.ModelConfig(instances=1, max_batch_size=64)


def slow_rows(n: int = 64) -> np.ndarray:
    return np.ones((n, 512), np.float32)


def occupy(model: engine.Model) -> Future:
    """Start a long request so the model's only instance is busy."""
    busy = model.submit(slow_rows())
    # The request leaves the queue once a worker takes it; wait until then.
    for _ in range(10_000):
        if model.stats().queue_depth == 0:
            break
        threading.Event().wait(0.0005)
    return busy


def test_thousand_concurrent_requests_with_mixed_rows(mlp_path: Path) -> None:
    rng = np.random.default_rng(11)
    inputs = [rng.standard_normal((int(rng.integers(1, 6)), 32)).astype(np.float32)
              for _ in range(1000)]
    with engine.load(mlp_path, config=engine.ModelConfig(max_batch_size=64)) as model:
        futures = [model.submit(x) for x in inputs]
        results = [f.result(timeout=60)["y"] for f in futures]
        stats = model.stats()
    for x, y in zip(inputs, results):
        np.testing.assert_allclose(y, factories.reference_mlp(x, mlp_path), rtol=1e-4, atol=1e-5)
    assert stats.requests["ok"] == 1000
    assert stats.inferred_rows == sum(len(x) for x in inputs)
    # Requests really were batched: fewer runs than requests, none above max_batch_size.
    assert stats.batches < 1000
    assert max(stats.batch_sizes) <= 64
    assert sum(stats.batch_sizes.values()) == stats.batches


def test_completion_spin_off_serves_batches_without_spinning(mlp_path: Path) -> None:
    # The same 1,000 requests with the completion thread only sleeping: results are unchanged,
    # and none of the batches it completed found it spinning or napping.
    rng = np.random.default_rng(12)
    inputs = [rng.standard_normal((int(rng.integers(1, 6)), 32)).astype(np.float32)
              for _ in range(1000)]
    config = engine.ModelConfig(max_batch_size=64, completion_spin=False)
    with engine.load(mlp_path, config=config) as model:
        futures = [model.submit(x) for x in inputs]
        results = [f.result(timeout=60)["y"] for f in futures]
        counts = model._core.completion_counts()
    for x, y in zip(inputs, results):
        np.testing.assert_allclose(y, factories.reference_mlp(x, mlp_path), rtol=1e-4, atol=1e-5)
    assert counts["posted"] > 0  # 1,000 queued requests make batches for the completion thread
    assert counts["found_spinning"] == 0
    assert counts["left_to_timer"] == 0
    assert counts["naps"] == 0


def test_concurrent_sync_predicts_are_batched(mlp_path: Path) -> None:
    rng = np.random.default_rng(12)
    inputs = [rng.standard_normal((1, 32)).astype(np.float32) for _ in range(64 * 20)]
    results: list[np.ndarray | None] = [None] * len(inputs)
    with engine.load(mlp_path) as model:
        def worker(offset: int) -> None:
            for i in range(offset, len(inputs), 64):
                results[i] = model.predict(inputs[i])["y"]

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(64)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stats = model.stats()
    for x, y in zip(inputs, results):
        np.testing.assert_allclose(y, factories.reference_mlp(x, mlp_path), rtol=1e-4, atol=1e-5)
    assert stats.requests["ok"] == len(inputs)


def test_requests_with_different_inner_dims_are_not_mixed(tmp_path: Path) -> None:
    from onnx import TensorProto

    path = factories.elementwise(tmp_path / "neg.onnx", TensorProto.FLOAT, "Neg", width=-1)
    with engine.load(path) as model:
        shapes = [(2, 3), (1, 5), (3, 3), (2, 5)] * 50
        futures = [model.submit(np.full(s, i, np.float32)) for i, s in enumerate(shapes)]
        for i, (f, s) in enumerate(zip(futures, shapes)):
            np.testing.assert_array_equal(f.result(timeout=30)["y"], np.full(s, -i, np.float32))


def test_too_many_rows_is_invalid_not_split(mlp_path: Path) -> None:
    with engine.load(mlp_path, config=engine.ModelConfig(max_batch_size=8)) as model:
        with pytest.raises(InvalidInputError, match="9 rows; max_batch_size is 8"):
            model.predict(np.zeros((9, 32), np.float32))
        assert model.stats().requests["invalid"] == 1


def test_inputs_must_agree_on_rows(multi_io_path: Path) -> None:
    feeds = {"a": np.zeros((2, 4), np.float32), "b": np.zeros((3, 4), np.float32),
             "k": np.zeros((2, 1), np.int64)}
    with (engine.load(multi_io_path) as model,
          pytest.raises(InvalidInputError, match=r"disagree on the batch dimension: 'a' has 2 "
                                                 r"rows, 'b' has 3; .*batching=False, or no "
                                                 r"dynamic_batching in its config.pbtxt")):
        model.predict(feeds)


def test_higher_priority_runs_first(slow_path: Path) -> None:
    config = engine.ModelConfig(instances=1, max_batch_size=64)
    with engine.load(slow_path, config=config) as model:
        busy = occupy(model)
        order: list[str] = []
        low = [model.submit(slow_rows(40), priority=0) for _ in range(3)]
        high = model.submit(slow_rows(40), priority=5)
        for i, f in enumerate(low):
            f.add_done_callback(lambda _f, i=i: order.append(f"low{i}"))
        high.add_done_callback(lambda _f: order.append("high"))
        wait([busy, high, *low], timeout=60)
    # 40 + 40 rows exceed max_batch_size, so each ran in its own batch; high went first.
    assert order[0] == "high"
    assert order[1:] == ["low0", "low1", "low2"]


def test_deadline_passed_in_queue_is_never_run(slow_path: Path) -> None:
    with engine.load(slow_path, config=ONE_INSTANCE) as model:
        busy = occupy(model)
        late = model.submit(slow_rows(8), timeout_us=1)
        with pytest.raises(DeadlineExceededError, match="not run"):
            late.result(timeout=60)
        busy.result(timeout=60)
        stats = model.stats()
    assert stats.requests["expired"] == 1
    assert stats.requests["ok"] == 1
    assert stats.batches == 1  # only the busy request ever ran


def test_default_timeout_from_config(slow_path: Path) -> None:
    config = engine.ModelConfig(instances=1, default_timeout_us=1)
    with engine.load(slow_path, config=config) as model:
        busy = model.submit(slow_rows(), timeout_us=0)  # 0: no deadline for this one
        late = model.submit(slow_rows(8))
        with pytest.raises(DeadlineExceededError):
            late.result(timeout=60)
        busy.result(timeout=60)


def test_queue_full_is_refused_at_once_and_retryable(slow_path: Path) -> None:
    config = engine.ModelConfig(instances=1, max_queue_size=2, max_batch_size=64)
    with engine.load(slow_path, config=config) as model:
        busy = occupy(model)
        futures = [model.submit(slow_rows(40)) for _ in range(6)]
        errors = [f.exception(timeout=60) for f in futures]
        busy.result(timeout=60)
        stats = model.stats()
    refused = [e for e in errors if isinstance(e, OverloadedError)]
    assert len(refused) == 4
    assert all(e.retryable for e in refused)
    assert "queue is full (max_queue_size=2)" in str(refused[0])
    assert errors[:2] == [None, None]
    assert stats.requests["overloaded"] == 4


def test_cancel_removes_a_queued_request(slow_path: Path) -> None:
    with engine.load(slow_path, config=ONE_INSTANCE) as model:
        busy = occupy(model)
        queued = model.submit(slow_rows(8))
        assert queued.cancel()
        assert queued.cancelled()
        assert queued.cancel()  # again: True, as for any concurrent.futures.Future
        busy.result(timeout=60)
        assert not busy.cancel()  # finished requests cannot be cancelled
        stats = model.stats()
    assert stats.requests["cancelled"] == 1
    assert stats.batches == 1


def test_asyncio_cancellation_removes_a_queued_request(slow_path: Path) -> None:
    async def scenario(model: engine.Model) -> None:
        busy = asyncio.ensure_future(model.predict_async(slow_rows()))
        await asyncio.sleep(0.005)
        queued = asyncio.ensure_future(model.predict_async(slow_rows(8)))
        await asyncio.sleep(0)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        assert (await busy)["y"].shape == (64, 512)

    with engine.load(slow_path, config=ONE_INSTANCE) as model:
        asyncio.run(scenario(model))
        assert model.stats().requests["cancelled"] == 1


def test_poison_request_fails_alone(poison_path: Path) -> None:
    with engine.load(poison_path, config=engine.ModelConfig(instances=1)) as model:
        busy = model.submit(np.zeros(1, np.int64))
        indices = [np.array([i % 10, (i + 1) % 10], np.int64) for i in range(40)]
        indices[17] = np.array([3, 999], np.int64)  # out of range: ORT fails the whole run
        futures = [model.submit(ix) for ix in indices]
        busy.result(timeout=30)
        for i, f in enumerate(futures):
            if i == 17:
                with pytest.raises(ExecutionError, match="ONNX Runtime failed"):
                    f.result(timeout=30)
            else:
                expected = np.arange(20, dtype=np.float32).reshape(10, 2)[indices[i]]
                np.testing.assert_array_equal(f.result(timeout=30)["rows"], expected)
        # The batcher survived: a later request still works.
        np.testing.assert_array_equal(model.predict(np.array([1], np.int64))["rows"], [[2, 3]])
        stats = model.stats()
    assert stats.requests["failed"] == 1
    assert stats.requests["ok"] == 1 + 39 + 1  # busy, the good ones, the later one
    # The failed runs (the poison's batch, then the poison alone if it had company) count as
    # batches, and only as failed ones: the batch-size stats are of runs that produced outputs.
    assert stats.failed_batches in (1, 2)
    assert sum(stats.batch_sizes.values()) == stats.batches - stats.failed_batches


def test_a_poison_batch_is_logged_once(poison_path: Path,
                                       capfd: pytest.CaptureFixture[str]) -> None:
    # One batch of three, one of them poison: the batch fails, then each request runs alone.
    # ONNX Runtime logs the poison's own run only; the batch's failed runs are quiet.
    config = engine.ModelConfig(instances=1, max_queue_delay_us=200_000, preferred_batch_sizes=(3,))
    with engine.load(poison_path, config=config) as model:
        futures = [model.submit(np.array(ix, np.int64)) for ix in ([1, 2], [3, 999], [4, 5])]
        with pytest.raises(ExecutionError, match="idx=999"):
            futures[1].result(timeout=30)
        assert futures[0].result(timeout=30)["rows"].shape == (2, 2)
        assert futures[2].result(timeout=30)["rows"].shape == (2, 2)
        stats = model.stats()
    assert stats.failed_batches == 2  # the batch, then the poison alone
    errors = [line for line in capfd.readouterr().err.splitlines() if "Non-zero status" in line]
    assert len(errors) == 1, errors
    assert "idx=999" in errors[0]


def test_close_with_drain_completes_everything(slow_path: Path) -> None:
    model = engine.load(slow_path, config=ONE_INSTANCE)
    futures = [model.submit(slow_rows(16)) for _ in range(20)]
    model.close(drain=True)
    assert all(f.result(timeout=1)["y"].shape == (16, 512) for f in futures)


def test_close_without_drain_fails_queued_requests_clearly(slow_path: Path) -> None:
    model = engine.load(slow_path, config=engine.ModelConfig(instances=1, max_batch_size=16))
    futures = [model.submit(slow_rows(16)) for _ in range(20)]
    model.close(drain=False)
    _, not_done = wait(futures, timeout=10)
    assert not not_done
    outcomes = [f.exception() for f in futures]
    ran = [e for e in outcomes if e is None]
    refused = [e for e in outcomes if isinstance(e, UnavailableError)]
    assert len(ran) + len(refused) == 20
    assert refused, "a request queued at close without drain must fail"
    assert "closed before the request ran" in str(refused[0])


@pytest.mark.parametrize("drain", [True, False])
def test_stats_after_close_are_the_final_counts(slow_path: Path, drain: bool) -> None:
    model = engine.load(slow_path, config=ONE_INSTANCE)
    futures = [occupy(model)] + [model.submit(slow_rows(8)) for _ in range(3)]
    before = model.stats()
    model.close(drain=drain)
    after = model.stats()
    # What close completed: the requests in flight just before it, every one of them.
    assert sum(after.requests.values()) == sum(before.requests.values()) + before.in_flight
    assert sum(after.requests.values()) == 4
    assert after.in_flight == after.queue_depth == 0
    refused = sum(isinstance(f.exception(timeout=10), UnavailableError) for f in futures)
    assert after.requests["unavailable"] == refused
    assert after.requests["ok"] == 4 - refused
    assert model.stats() == after  # final: reading again changes nothing


def test_submit_after_close_is_unavailable(mlp_path: Path) -> None:
    model = engine.load(mlp_path)
    model.close()
    with pytest.raises(UnavailableError):
        model.submit(np.zeros((1, 32), np.float32))


def test_close_under_load_from_many_threads(mlp_path: Path) -> None:
    model = engine.load(mlp_path)
    outcomes: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        x = np.zeros((1, 32), np.float32)
        for _ in range(500):
            try:
                model.predict(x)
                result = "ok"
            except UnavailableError:
                result = "unavailable"
            with lock:
                outcomes.append(result)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    threading.Event().wait(0.02)
    model.close()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    assert len(outcomes) == 8 * 500
    assert set(outcomes) <= {"ok", "unavailable"}


@pytest.mark.parametrize("mode", ["sessions", "shared"])
def test_instances_modes(mlp_path: Path, mode: str) -> None:
    config = engine.ModelConfig(instances=2, instance_mode=mode)
    x = np.random.default_rng(2).standard_normal((300, 32)).astype(np.float32)
    with engine.load(mlp_path, config=config) as model:
        futures = [model.submit(x[i:i + 3]) for i in range(0, 300, 3)]
        got = np.concatenate([f.result(timeout=30)["y"] for f in futures])
    np.testing.assert_allclose(got, factories.reference_mlp(x, mlp_path), rtol=1e-4, atol=1e-5)


def test_preferred_batch_sizes_and_queue_delay(mlp_path: Path) -> None:
    config = engine.ModelConfig(instances=1, max_batch_size=32, preferred_batch_sizes=(8,),
                                max_queue_delay_us=200_000)
    with engine.load(mlp_path, config=config) as model:
        futures = [model.submit(np.zeros((1, 32), np.float32)) for _ in range(16)]
        wait(futures, timeout=30)
        stats = model.stats()
    # 16 single-row requests with a long delay: two preferred batches of 8, no partial ones.
    assert stats.batch_sizes == {8: 2}


def test_batching_forced_on_a_fixed_model_is_a_config_error(fixed_path: Path) -> None:
    with pytest.raises(InvalidConfigError, match="dynamic first dimension"):
        engine.load(fixed_path, config=engine.ModelConfig(batching=True))


def test_stats_histograms(mlp_path: Path) -> None:
    with engine.load(mlp_path) as model:
        for _ in range(50):
            model.predict(np.zeros((2, 32), np.float32))
        stats = model.stats()
    assert stats.requests["ok"] == 50
    assert stats.total.count == stats.compute.count == stats.queue.count == 50
    assert sum(stats.total.counts) == 50
    assert stats.total.sum_us >= stats.compute.sum_us
    assert stats.batch_sizes == {2: 50}
    assert stats.in_flight == 0
    assert stats.last_inference_ms > 0
    assert 0 < stats.total.quantile_us(0.5) <= stats.total.quantile_us(0.99)
    # The ORT run dominates; the phases together fit in the compute time (us vs ns rounding
    # allows one microsecond per request).
    assert stats.compute_infer_ns > stats.compute_input_ns > 0
    assert stats.compute_output_ns > 0
    phases_ns = stats.compute_input_ns + stats.compute_infer_ns + stats.compute_output_ns
    assert phases_ns <= (stats.compute.sum_us + 50) * 1000


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("max_batch_size", -1, "max_batch_size must be an int >= 0; was -1"),
        ("max_queue_size", 0, "max_queue_size must be an int >= 1; was 0"),
        ("instances", 0, "instances must be an int >= 1; was 0"),
        ("max_queue_delay_us", -5, "max_queue_delay_us must be an int >= 0; was -5"),
        ("preferred_batch_sizes", (128,), r"preferred_batch_sizes must be ints in \[1, "),
        ("instance_mode", "threads", "instance_mode must be one of"),
        ("providers", ("tpu",), "providers must be among"),
    ],
)
def test_config_validation_names_the_bad_value(field: str, value: object, match: str) -> None:
    with pytest.raises(InvalidConfigError, match=match):
        engine.ModelConfig(**{field: value})


def test_config_round_trips_through_dict() -> None:
    config = engine.ModelConfig(max_batch_size=16, preferred_batch_sizes=(4, 8),
                                inputs=(engine.TensorSpec("x", "float32", (-1, 3)),))
    assert engine.ModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(InvalidConfigError, match="unknown model config fields"):
        engine.ModelConfig.from_dict({"max_batch": 3})


def _run_two_batches(model: engine.Model, width: int, axis: int) -> None:
    """Two batches of a 1-row and a 2-row request, each result checked: the request's input
    stacked on itself (axis 0) or beside itself (axis 1), as the factories' models compute."""
    for _ in range(2):
        a, b = np.full((1, width), 1, np.float32), np.full((2, width), 2, np.float32)
        fa, fb = model.submit(a), model.submit(b)
        np.testing.assert_array_equal(fa.result(timeout=10)["y"], np.concatenate([a, a], axis))
        np.testing.assert_array_equal(fb.result(timeout=10)["y"], np.concatenate([b, b], axis))


def test_outputs_that_do_not_follow_the_batch_are_said_once(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    # Batching is on by default for a dynamic first dim; an output whose first dim does not
    # follow the batch makes every batch fail the split and re-run request by request. The
    # results are right, and the model says once why it does twice the work.
    path = factories.doubled_rows(tmp_path / "doubled_rows.onnx")
    config = engine.ModelConfig(max_queue_delay_us=200_000, preferred_batch_sizes=(2,))
    with engine.load(path, config=config) as model:
        _run_two_batches(model, width=4, axis=0)
        stats = model.stats()
    assert stats.failed_batches == 2 and stats.requests["ok"] == 4
    warnings = [line for line in capfd.readouterr().err.splitlines() if "does not follow" in line]
    assert len(warnings) == 1, warnings
    assert "model 'doubled_rows': output 'y' has shape [6, ...] for a batch of 3 rows" in warnings[0]
    assert "Load it with batching off" in warnings[0]


def test_outputs_wider_than_declared_are_right_and_said_once(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    # A batch's outputs are written into buffers of the declared shape. An output that is
    # wider than declared fails that run; the batch runs again without the buffers, and so
    # does every later batch. The results are right, no batch counts as failed, and the model
    # says once what happened, with ONNX Runtime's reason.
    path = factories.understated_width(tmp_path / "understated_width.onnx")
    config = engine.ModelConfig(max_queue_delay_us=200_000, preferred_batch_sizes=(3,))
    with engine.load(path, config=config) as model:
        _run_two_batches(model, width=2, axis=1)
        stats = model.stats()
    assert stats.batches == 2 and stats.failed_batches == 0 and stats.requests["ok"] == 4
    err = capfd.readouterr().err
    warnings = [line for line in err.splitlines() if "not the shape it declares" in line]
    assert len(warnings) == 1, warnings
    assert "model 'understated_width': a batch failed" in warnings[0]
    assert "has shape {3,1} but the computed output shape for this run is {3,4}" in warnings[0]
    # The failed first try is not logged as an error.
    assert not [line for line in err.splitlines() if " ERROR " in line], err
