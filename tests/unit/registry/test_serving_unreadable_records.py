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


def test_a_tag_that_is_no_string_is_unreadable_and_the_default_policy_applies(
    registry: Registry, raw_sql, onnx_model, caplog: pytest.LogCaptureFixture
) -> None:
    """A mapping whose values break the rule they were written under (a tag must be a string)
    is named in read_errors like one that is no mapping: the watcher must never be handed a
    non-string version policy (that raised AttributeError and stopped every poll)."""
    registry.register("m", onnx_model(bias=1.0))
    registry.register("other", onnx_model(bias=2.0), metrics={"acc": 0.5})
    store_text(raw_sql, "m", 1, tags='{"version_policy": 5}')
    store_text(raw_sql, "other", 1, metrics='{"acc": "high"}')
    record = registry.get("m:1")
    assert record.tags == {}
    assert record.read_errors == {
        "tags": "tag 'version_policy' must be a string of at most 4096 characters; was 5"
    }
    other = registry.get("other:1")
    assert (other.metrics, other.read_errors) == (
        {}, {"metrics": "metric 'acc' must be a finite number; was 'high'"})
    watcher = RegistryServing(registry, ServingControl())
    with caplog.at_level(logging.WARNING, logger="engine.server"):
        assert watcher._registered_policy("m", 1, registry.versions("m")) is None
    assert "m:1: its tags cannot be read (tag 'version_policy' must be a string" in caplog.text
