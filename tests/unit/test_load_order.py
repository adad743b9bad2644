"""The import-order guard: a process that loaded grpc_tools' protoc before engine gets an
ImportError that says what to do, never an abort inside the dynamic loader."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str) -> subprocess.CompletedProcess[str]:
    # Not check=True: callers assert on the exit code and show stderr when it is wrong.
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120, check=False)


def test_grpc_tools_first_is_a_clear_import_error() -> None:
    result = _run("""
        import grpc_tools.protoc
        try:
            import engine
        except ImportError as e:
            print("refused:", e)
        """)
    assert result.returncode == 0, result.stderr  # no abort (it was SIGABRT before the guard)
    assert "refused: engine must be imported before grpc_tools" in result.stdout


def test_engine_first_then_grpc_tools_works() -> None:
    result = _run("""
        import engine, engine._core
        import grpc_tools.protoc
        print("ok", engine._core.Model is not None)
        """)
    assert result.returncode == 0, result.stderr
    assert "ok True" in result.stdout
