"""engine.Model across the process's lifecycle: interpreter exit, atexit handlers, fork().

Each case runs in a child interpreter (the thing under test is how that process ends) and
asserts its exit code and stderr, never how long it took.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import factories
import pytest


@pytest.fixture(scope="module")
def slow_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return factories.slow_mlp(tmp_path_factory.mktemp("lifecycle") / "slow.onnx")


def run_child(script: str, model: Path, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    prelude = textwrap.dedent(f"""
        import os, sys, threading, time
        import numpy as np
        import engine
        MODEL = {str(model)!r}
        X = np.ones((64, 512), np.float32)
    """)
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(script)],
                          capture_output=True, text=True, timeout=timeout_s, check=False,
                          env={**os.environ, "PYTHONFAULTHANDLER": "1"})


def test_exit_while_daemon_threads_wait_in_predict(slow_model: Path) -> None:
    # Daemon threads are inside predict() (GIL released) as the interpreter finalizes; the
    # model `busy` drains its queue during finalization, so they come back to take the GIL
    # while it finalizes. CPython then ends them with pthread_exit, whose unwinding must not
    # reach a noexcept frame of the bindings (std::terminate: the process aborted).
    done = run_child("""
        model = engine.load(MODEL)
        busy = engine.load(MODEL)
        queued = [busy.submit(X) for _ in range(40)]
        started = threading.Event()
        def loop():
            while True:
                model.predict(X)
                started.set()
        for _ in range(2):
            threading.Thread(target=loop, daemon=True).start()
        started.wait()
        print("exiting", flush=True)
    """, slow_model)
    assert "terminate called" not in done.stderr, done.stderr
    # The exit hook closed `model` under the looping threads: they are parked, not left to
    # print their UnavailableError as the process ends.
    assert "Exception in thread" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stderr
    assert done.stdout == "exiting\n"


def test_atexit_handler_can_wait_for_submitted_requests(slow_model: Path) -> None:
    # A handler registered after `import engine` runs before engine's own exit hook (atexit is
    # last in, first out), so the futures it waits on still complete.
    done = run_child("""
        import atexit
        pending = []
        def flush():
            shapes = [f.result(timeout=10)["y"].shape for f in pending]
            late = engine.load(MODEL).submit(X).result(timeout=10)["y"].shape
            print("flushed", len(shapes), late, flush=True)
        atexit.register(flush)
        model = engine.load(MODEL)
        pending += [model.submit(X) for _ in range(8)]
    """, slow_model)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "flushed 8 (64, 512)\n", done.stderr


def test_fork_child_gets_clear_errors_not_hangs(slow_model: Path) -> None:
    # The parent's model threads do not survive fork(): in the child its models refuse calls
    # and its pending futures fail, naming the fork; a model loaded in the child works. The
    # child ends with os._exit, as multiprocessing's children do (ONNX Runtime's own exit
    # handlers hang in a forked child that exits normally, with or without the engine).
    done = run_child("""
        model = engine.load(MODEL)
        pending = [model.submit(X) for _ in range(6)]
        pid = os.fork()
        if pid == 0:
            import signal
            signal.alarm(20)  # a hang fails the test instead of stalling it
            def outcome(call):
                try:
                    return type(call()).__name__
                except engine.errors.UnavailableError as exc:
                    return "fork" if "fork()" in str(exc) else str(exc)
            got = [outcome(lambda: model.predict(X)), outcome(lambda: model.submit(X)),
                   outcome(lambda: pending[-1].result(timeout=10)), outcome(model.stats)]
            model.close()  # nothing of it runs here: a no-op
            fresh = engine.load(MODEL)
            got.append(fresh.submit(X).result(timeout=10)["y"].shape)
            fresh.close()
            print(got, flush=True)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        assert [f.result(timeout=10)["y"].shape for f in pending] == [(64, 512)] * 6
        model.close()
    """, slow_model)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "['fork', 'fork', 'fork', 'fork', (64, 512)]\n", done.stderr


def test_fork_inside_a_running_loop_fails_the_childs_awaits(slow_model: Path) -> None:
    # Forked from a coroutine, the child goes on running the loop: its pending predict_async
    # awaits fail naming the fork (set on the spot: the loop's wake-up pipe is the parent's
    # too), and the parent's still get their results.
    done = run_child("""
        import asyncio
        async def main():
            model = engine.load(MODEL)
            tasks = [asyncio.ensure_future(model.predict_async(X)) for _ in range(6)]
            await asyncio.sleep(0.01)
            pid = os.fork()
            if pid == 0:
                import signal
                signal.alarm(20)  # a hang fails the test instead of stalling it
                try:
                    await tasks[-1]
                    print("ran", flush=True)
                except engine.errors.UnavailableError as exc:
                    print("fork" if "fork()" in str(exc) else str(exc), flush=True)
                os._exit(0)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0, status
            assert [(await t)["y"].shape for t in tasks] == [(64, 512)] * 6
            model.close()
        asyncio.run(main())
    """, slow_model)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "fork\n", done.stderr



def test_exit_fails_what_is_left_queued_instead_of_running_it(slow_model: Path) -> None:
    # Nobody waits for these futures as the interpreter exits: models left open are closed
    # without draining, so the queued requests fail with UnavailableError (and reach their
    # futures) instead of running while Python is torn down. The handler is registered before
    # `import engine`, so it runs after engine's exit hooks and sees the outcome.
    script = textwrap.dedent(f"""
        import atexit
        futures = []
        def report():
            kinds = {{type(f.exception(timeout=30)).__name__ for f in futures}}
            print(sorted(kinds), model.closed, model.stats().requests["unavailable"] > 0,
                  flush=True)
        atexit.register(report)
        import numpy as np
        import engine
        model = engine.load({str(slow_model)!r})
        futures += [model.submit(np.ones((64, 512), np.float32)) for _ in range(30)]
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    # The request running at exit may finish (no exception: NoneType); the queued ones fail.
    assert done.stdout in ("['NoneType', 'UnavailableError'] True True\n",
                           "['UnavailableError'] True True\n"), done.stdout + done.stderr
