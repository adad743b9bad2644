"""The package's public names resolve, and importing it leaves the heavy extras unloaded."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest


def test_public_names() -> None:
    package = importlib.import_module("engine.monitoring")
    if getattr(package, "__file__", None) is None:
        pytest.skip(
            "stale editable install: engine.monitoring was mapped before its "
            "__init__.py existed; rerun `pip install -e .`"
        )
    assert package.__all__ == sorted(package.__all__)
    for name in package.__all__:
        assert getattr(package, name) is not None, name


def test_importing_the_monitor_does_not_load_pyarrow_or_matplotlib() -> None:
    code = (
        "import sys, engine.monitoring.monitor, engine.monitoring.prediction_log, "
        "engine.monitoring.alerts, engine.monitoring.collector; "
        "print(sorted(m for m in ('pyarrow', 'matplotlib', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_request_metric_names_are_the_servers() -> None:
    import importlib.util
    from pathlib import Path

    from engine.monitoring import metric_names as n

    spec = importlib.util.find_spec("engine.server.metrics")
    if spec is None or spec.origin is None:
        pytest.skip("engine.server.metrics is not in this build")
    source = Path(spec.origin).read_text()
    names = (
        n.REQUESTS_TOTAL,
        n.REQUEST_QUEUE_SECONDS,
        n.REQUEST_COMPUTE_SECONDS,
        n.REQUEST_DURATION_SECONDS,
        n.BATCH_SIZE,
        n.QUEUE_DEPTH,
        n.INFLIGHT_REQUESTS,
        n.INFERRED_ROWS_TOTAL,
    )
    for name in names:
        # prometheus_client counter families are declared without their "_total" suffix.
        assert f'"{name.removesuffix("_total")}"' in source, name
