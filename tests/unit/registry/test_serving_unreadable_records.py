"""The registry watcher of `engine serve --registry` says why it ignores a version's tags or
params that cannot be read (they hold its version policy and drift profile), on SQLite and
PostgreSQL; the tags warning is said once, not on every poll."""

from __future__ import annotations

import logging

import pytest
from test_old_records import store_text

from engine.registry import Registry
from server.control import ServingControl
from server.registry_serving import RegistryServing


def test_unreadable_tags_are_warned_once_and_the_default_policy_applies(
    registry: Registry, raw_sql, onnx_model, caplog: pytest.LogCaptureFixture
) -> None:
    registry.register("m", onnx_model(bias=1.0), tags={"version_policy": "all"})
    store_text(raw_sql, "m", 1, tags="[1, 2]")  # JSON, but not a mapping
    watcher = RegistryServing(registry, ServingControl())
    with caplog.at_level(logging.WARNING, logger="engine.server"):
        for _ in range(3):  # three polls
            assert watcher._registered_policy("m", 1, registry.versions("m")) is None
    warnings = [r.getMessage() for r in caplog.records if "tags cannot be read" in r.getMessage()]
    assert warnings == [
        ("m:1: its tags cannot be read (tags must be a mapping; was [1, 2]); served with the "
         "default version policy")
    ]


def test_unreadable_params_mean_no_drift_monitoring_and_say_why(
    registry: Registry, raw_sql, onnx_model, caplog: pytest.LogCaptureFixture
) -> None:
    registry.register("m", onnx_model(bias=1.0), params={"reference_profile": "{}"})
    store_text(raw_sql, "m", 1, params="[1, 2]")
    watcher = RegistryServing(registry, ServingControl())
    with caplog.at_level(logging.WARNING, logger="engine.server"):
        # Returns before the model is needed: nothing to monitor with.
        watcher._start_monitoring("m", 1, registry.get("m:1"), model=None)  # type: ignore[arg-type]
    assert watcher._monitors == {}
    assert ("model m:1 is served without drift monitoring: its params cannot be read (params "
            "must be a mapping; was [1, 2])") in caplog.text
