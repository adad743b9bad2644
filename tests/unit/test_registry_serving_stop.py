"""RegistryServing stops every version's monitoring even when one stop fails."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from engine.registry import Registry
from server.control import ServingControl
from server.registry_serving import RegistryServing


class _Monitoring:
    """Stands in for a ModelMonitoring whose stop() fails: no real monitoring part can be
    made to fail on stop, and only the watcher's handling of that failure is under test."""

    def __init__(self, fails: bool) -> None:
        self.fails = fails
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True
        if self.fails:
            raise RuntimeError("webhook close failed")


def test_a_failing_monitoring_stop_is_logged_and_the_others_still_stop(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    watcher = RegistryServing(Registry(home=tmp_path / "home"), ServingControl())
    failing, other = _Monitoring(fails=True), _Monitoring(fails=False)
    watcher._monitors = {("a", 1): failing, ("b", 2): other}
    with caplog.at_level(logging.ERROR, logger="engine.server"):
        watcher.stop()
    assert failing.stopped and other.stopped
    assert "stopping the drift monitoring of a:1 failed" in caplog.text
    assert "webhook close failed" in caplog.text
    assert watcher._monitors == {}


def test_stop_monitoring_of_one_version_logs_a_failure_instead_of_raising(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    watcher = RegistryServing(Registry(home=tmp_path / "home"), ServingControl())
    failing = _Monitoring(fails=True)
    watcher._monitors = {("a", 1): failing}
    with caplog.at_level(logging.ERROR, logger="engine.server"):
        watcher._stop_monitoring("a", 1)  # what _retire calls before draining and closing
    assert failing.stopped
    assert "stopping the drift monitoring of a:1 failed" in caplog.text
