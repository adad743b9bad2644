"""Concurrent clients each get their own answer: sync threads, the asyncio client, streaming."""

from __future__ import annotations

import asyncio
import queue
import threading

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aioclient
from _server import ServerProcess

pytestmark = pytest.mark.integration

CLIENTS = 64
ROUNDS = 5


def _x(value: float, rows: int = 1) -> np.ndarray:
    return np.full((rows, 4), value, dtype=np.float32) + np.arange(4, dtype=np.float32)


def test_64_threads_distinct_inputs(server: ServerProcess) -> None:
    barrier = threading.Barrier(CLIENTS)
    errors: list[str] = []

    def worker(k: int) -> None:
        c = grpcclient.InferenceServerClient(server.url)
        try:
            barrier.wait(timeout=30)
            for r in range(ROUNDS):
                rows = 1 + (k + r) % 3
                x = _x(1000 * k + r, rows)
                i = grpcclient.InferInput("x", list(x.shape), "FP32")
                i.set_data_from_numpy(x)
                result = c.infer("add", [i], model_version="1", request_id=f"{k}-{r}")
                if result.get_response().id != f"{k}-{r}" or not np.array_equal(
                        result.as_numpy("y"), x + 1):
                    errors.append(f"client {k} round {r} got another answer")
        except Exception as exc:  # noqa: BLE001 - collected, asserted below
            errors.append(f"client {k}: {exc!r}")
        finally:
            c.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[:5]


def test_asyncio_client_64_concurrent(server: ServerProcess) -> None:
    async def main() -> None:
        client = aioclient.InferenceServerClient(server.url)
        try:
            assert await client.is_server_ready()
            meta = await client.get_model_metadata("add", as_json=True)
            assert meta["name"] == "add"

            async def one(k: int) -> None:
                x = _x(7 * k)
                i = aioclient.InferInput("x", [1, 4], "FP32")
                i.set_data_from_numpy(x)
                result = await client.infer("add", [i], model_version="2", request_id=str(k))
                assert result.get_response().id == str(k)
                np.testing.assert_array_equal(result.as_numpy("y"), x + 2)

            await asyncio.gather(*(one(k) for k in range(CLIENTS)))
        finally:
            await client.close()

    asyncio.run(main())


def test_stream_many_requests_and_an_error(server: ServerProcess) -> None:
    results: queue.Queue[tuple[object, object]] = queue.Queue()
    client = grpcclient.InferenceServerClient(server.url)
    client.start_stream(callback=lambda result, error: results.put((result, error)))
    try:
        sent = {}
        for k in range(100):
            x = _x(k, rows=1 + k % 4)
            i = grpcclient.InferInput("x", list(x.shape), "FP32")
            i.set_data_from_numpy(x)
            client.async_stream_infer("add", [i], request_id=f"s{k}", model_version="1")
            sent[f"s{k}"] = x
        bad = grpcclient.InferInput("x", [1, 5], "FP32")
        bad.set_data_from_numpy(np.zeros((1, 5), np.float32))
        client.async_stream_infer("add", [bad], request_id="bad")
        client.async_stream_infer("no_such_model", [bad], request_id="missing")
        got, failures = {}, []
        for _ in range(len(sent) + 2):
            result, error = results.get(timeout=30)
            if error is not None:
                failures.append(str(error))
            else:
                got[result.get_response().id] = result.as_numpy("y")  # type: ignore[union-attr]
        assert set(got) == set(sent)
        for key, x in sent.items():
            np.testing.assert_array_equal(got[key], x + 1)
        assert len(failures) == 2
        assert any("expected shape" in f for f in failures)
        assert any("unknown model 'no_such_model'" in f for f in failures)
    finally:
        client.stop_stream()
        client.close()


def _execution_count(client: grpcclient.InferenceServerClient, model: str) -> int:
    stats = client.get_inference_statistics(model, as_json=True)["model_stats"][0]
    return int(stats.get("execution_count", 0))


def test_stream_requests_behind_a_running_one_are_batched(server: ServerProcess) -> None:
    # The stream keeps reading while a request runs, so requests pipelined on it queue and run
    # together instead of one run each. A 64-row request goes first: its run of `deep` takes
    # tens of milliseconds, so the one-row requests behind it are read and queued meanwhile
    # even on a loaded machine (with one-row requests only, each run took about a millisecond
    # and a slow client could send each after the previous had finished: 8 runs). The head is
    # placed in the model before the next read starts: when the next read started first, the
    # thread that read the head was sometimes preempted on 2 cores while another gRPC thread
    # ran every one-row request alone ahead of it (1 in 50-100 tries: 9 runs).
    results: queue.Queue[tuple[object, object]] = queue.Queue()
    client = grpcclient.InferenceServerClient(server.url)
    before = _execution_count(client, "deep")
    rng = np.random.default_rng(7)
    sent = {"head": rng.standard_normal((64, 512)).astype(np.float32)}
    sent |= {f"d{k}": rng.standard_normal((1, 512)).astype(np.float32) for k in range(8)}
    client.start_stream(callback=lambda result, error: results.put((result, error)))
    try:
        for key, x in sent.items():
            i = grpcclient.InferInput("x", list(x.shape), "FP32")
            i.set_data_from_numpy(x)
            client.async_stream_infer("deep", [i], request_id=key)
        got = {}
        for _ in sent:
            result, error = results.get(timeout=60)
            assert error is None, error
            got[result.get_response().id] = result.as_numpy("y")  # type: ignore[union-attr]
    finally:
        client.stop_stream()
    direct = grpcclient.InferenceServerClient(server.url)
    try:
        for key, x in sent.items():  # each row's answer is its own, as a lone request gives it
            i = grpcclient.InferInput("x", list(x.shape), "FP32")
            i.set_data_from_numpy(x)
            np.testing.assert_allclose(got[key], direct.infer("deep", [i]).as_numpy("y"),
                                       rtol=1e-5, atol=1e-5)
        runs = _execution_count(direct, "deep") - before - len(sent)
    finally:
        direct.close()
        client.close()
    assert runs < len(sent), f"{len(sent)} streamed requests took {runs} runs: none were batched"


@pytest.mark.parametrize("flag", [True, False])
def test_stream_final_response_flag(server: ServerProcess, flag: bool) -> None:
    # tritonclient's enable_empty_final_response: every answer of this engine is the final one.
    results: queue.Queue[tuple[object, object]] = queue.Queue()
    client = grpcclient.InferenceServerClient(server.url)
    client.start_stream(callback=lambda result, error: results.put((result, error)))
    try:
        i = grpcclient.InferInput("x", [1, 4], "FP32")
        i.set_data_from_numpy(_x(3))
        client.async_stream_infer("add", [i], request_id="f", model_version="1",
                                  enable_empty_final_response=flag)
        result, error = results.get(timeout=30)
        assert error is None, error
        response = result.get_response()  # type: ignore[union-attr]
        np.testing.assert_array_equal(result.as_numpy("y"), _x(3) + 1)  # type: ignore[union-attr]
        if flag:
            assert response.parameters["triton_final_response"].bool_param is True
        else:
            assert "triton_final_response" not in response.parameters
    finally:
        client.stop_stream()
        client.close()


def test_asyncio_stream(server: ServerProcess) -> None:
    async def main() -> None:
        client = aioclient.InferenceServerClient(server.url)
        try:
            async def requests():  # type: ignore[no-untyped-def]
                for k in range(20):
                    i = aioclient.InferInput("x", [1, 4], "FP32")
                    i.set_data_from_numpy(_x(k))
                    yield {"model_name": "add", "inputs": [i], "request_id": str(k),
                           "model_version": "1"}

            seen = {}
            async for result, error in client.stream_infer(requests()):
                assert error is None, error
                seen[result.get_response().id] = result.as_numpy("y")
                if len(seen) == 20:
                    break
            for k in range(20):
                np.testing.assert_array_equal(seen[str(k)], _x(k) + 1)
        finally:
            await client.close()

    asyncio.run(main())
