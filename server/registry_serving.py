"""Serving from the registry: every model that has an alias, following alias moves live.

``engine serve --registry --alias production`` serves, for each model with the alias:

- the alias's target version, which is also the model's default route (requests that name no
  version go there);
- the versions a version policy selects among the model's ready versions (``latest:N``,
  ``all``, or specific numbers ``1,3``), each reachable by explicit version. The policy comes
  from ``--versions``, else from the ``version_policy`` tag of the alias's target version, else
  the alias's target alone is served.

:class:`RegistryServing` reconciles the serving table with the registry on a background
thread (control plane; one registry read per model per poll). An alias move is followed as:
load the new version (the artifact's hash is verified), warm it with one request of zeros,
add it to the serving table, switch the default route to it, then take the old version out of
the table, wait until no request is in flight on it, and close it (draining its queue). No
request fails: one that already holds the old version finishes on it.

A version that fails to load (bad artifact, hash mismatch, failed warm-up) leaves what was
serving in place; the failure is logged and counted in
``engine_model_load_failures_total{model,version}``, and the load is retried after
``retry_failed_s``. ``engine_model_default_version{model,alias}`` shows where requests without
a version go, so a stuck rollout is visible as a difference from the registry.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from engine.errors import EngineError, InvalidConfigError, ModelNotFoundError
from engine.model import Model, load
from engine.monitoring import (
    DriftCollector,
    ModelMonitoring,
    MonitorConfig,
    drift_reference_for_version,
    monitor_model,
)
from engine.monitoring.prediction_log import PredictionLogConfig
from engine.names import validate_name
from engine.registry import ModelVersion, Registry
from engine.repository import POLICY_TAG, VersionPolicy, parse_version_policy

from .control import ServingControl

__all__ = ["POLICY_TAG", "RegistryServing", "parse_version_policy"]

log = logging.getLogger("engine.server")

def _select(policy: VersionPolicy | None, records: list[ModelVersion]) -> set[int]:
    """Versions the policy picks: latest/all among ready versions; specific ones that exist
    (archived included: they stay loadable by number). A version whose number cannot be read
    (SQLite only: see engine.registry.records) is never picked: it cannot be loaded."""
    if policy is None:
        return set()
    numbered = [(r.version, r.status) for r in records if r.version is not None]
    if policy.kind == "specific":
        return set(policy.versions) & {version for version, _ in numbered}
    ready = sorted(version for version, status in numbered if status == "ready")
    return set(policy.select(ready))


def _stop_quietly(monitoring: ModelMonitoring, name: str, version: int) -> None:
    """Stop one version's monitoring; a failure is logged, never raised, so that the other
    versions' monitorings still stop and a retiring version is still drained and closed."""
    try:
        monitoring.stop()
    except Exception:  # logged with its trace; serving must go on
        log.exception("stopping the drift monitoring of %s:%d failed", name, version)


@dataclass(frozen=True)
class _Desired:
    target: int  # the alias's version: the default route
    versions: frozenset[int]  # every version to serve, target included


class _ServingMetrics(Collector):
    """engine_model_load_failures_total and engine_model_default_version."""

    def __init__(self, owner: RegistryServing) -> None:
        self._owner = owner

    def collect(self) -> Iterator[Any]:
        failures, defaults = self._owner.metrics_snapshot()
        counter = CounterMetricFamily(
            "engine_model_load_failures",
            "Model versions that failed to load, warm or serve.",
            labels=["model", "version"],
        )
        for (name, version), count in sorted(failures.items()):
            counter.add_metric([name, str(version)], count)
        gauge = GaugeMetricFamily(
            "engine_model_default_version",
            "The version requests without a version are served by.",
            labels=["model", "alias"],
        )
        for name, version in sorted(defaults.items()):
            gauge.add_metric([name, self._owner.alias], version)
        yield counter
        yield gauge


class RegistryServing:
    """Keeps a :class:`ServingControl` in step with the registry's ``alias``. Thread-safe.

    ``sync()`` is one reconcile pass (blocking: loads, warms, drains); ``start()`` runs it every
    ``poll_s`` seconds on a daemon thread until ``stop()``.
    """

    def __init__(
        self,
        registry: Registry,
        control: ServingControl,
        *,
        alias: str = "production",
        policy: VersionPolicy | None = None,
        poll_s: float = 2.0,
        retry_failed_s: float = 60.0,
        drain_timeout_s: float = 30.0,
        settle_s: float = 0.5,
        monitor_config: MonitorConfig | None = None,
        webhook_url: str | None = None,
        prediction_log: PredictionLogConfig | None = None,
    ) -> None:
        validate_name(alias, "alias")
        if poll_s <= 0:
            raise InvalidConfigError(f"poll_s must be > 0; was {poll_s}")
        self.registry = registry
        self.control = control
        self.alias = alias
        self.policy = policy
        self.poll_s = poll_s
        self.retry_failed_s = retry_failed_s
        self.drain_timeout_s = drain_timeout_s
        self.settle_s = settle_s
        self.collector = _ServingMetrics(self)
        # Drift gauges of every served version that was registered with a reference profile.
        self.drift_collector = DriftCollector()
        # How each monitored version is watched (see engine.monitoring.monitor_model).
        self.monitor_config = monitor_config or MonitorConfig()
        self.webhook_url = webhook_url
        self.prediction_log = prediction_log or PredictionLogConfig()
        self._monitors: dict[tuple[str, int], Any] = {}  # (name, version) -> ModelMonitoring
        self._lock = threading.Lock()
        self._defaults: dict[str, int] = {}  # name -> version set as the default route
        self._warned: set[tuple[Any, ...]] = set()  # warnings a poll would otherwise repeat
        self._failures: dict[tuple[str, int], int] = {}  # (name, version) -> count
        self._failed_at: dict[tuple[str, int], float] = {}  # monotonic time of the last failure
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="engine-registry-watch", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 60.0) -> None:
        """Stop watching; waits for a pass in progress (a load) up to ``timeout_s``."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        with self._lock:
            monitors, self._monitors = list(self._monitors.items()), {}
        for (name, version), monitoring in monitors:  # flushes the prediction logs
            _stop_quietly(monitoring, name, version)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.sync()
            except EngineError as exc:  # the registry is unreachable: keep serving, retry
                log.warning("registry poll failed: %s", exc)
            except Exception:  # one bad pass must not end the watcher
                log.exception("registry poll failed")

    def metrics_snapshot(self) -> tuple[dict[tuple[str, int], int], dict[str, int]]:
        with self._lock:
            return dict(self._failures), dict(self._defaults)

    # ---- one pass --------------------------------------------------------------------------

    def sync(self) -> None:
        """Bring the serving table in line with the registry. Raises EngineError when the
        registry cannot be read (nothing is changed then)."""
        desired = self._desired()
        for name, want in desired.items():
            if self._stop.is_set():
                return
            self._reconcile(name, want)
        with self._lock:
            gone = [name for name in self._defaults if name not in desired]
        served_names = {s.name for s in self.control.served()}
        gone += sorted(n for n in served_names if n not in desired and n not in gone)
        for name in gone:
            log.info("model %s lost alias %r: draining and removing it", name, self.alias)
            with self._lock:
                self._defaults.pop(name, None)
            for item in self.control.served():
                if item.name == name:
                    self._retire(name, item.version)

    def _desired(self) -> dict[str, _Desired]:
        out: dict[str, _Desired] = {}
        for summary in self.registry.list():
            if self.alias not in summary.aliases:
                continue
            target = summary.aliases[self.alias]
            if target is None:
                # The alias exists but its version cannot be told (a damaged row): keep what
                # serves rather than retire the model as if the alias were gone.
                held = self._hold(summary.name, summary.read_errors.get(f"alias {self.alias}"))
                if held is not None:
                    out[summary.name] = held
                continue
            policy = self.policy
            extra: set[int] = set()
            try:
                records = self.registry.versions(summary.name)
            except ModelNotFoundError:  # deleted between list() and versions()
                continue
            if policy is None:
                policy = self._registered_policy(summary.name, target, records)
            extra = _select(policy, records)
            if policy is not None and policy.kind == "specific":
                missing = sorted(set(policy.versions) - extra)
                if missing:  # told once, not once per poll: it may be registered later
                    self._warn_once((summary.name, "missing", tuple(missing)),
                                    "%s: versions %s named by the version policy are not "
                                    "registered; serving the others", summary.name,
                                    ",".join(map(str, missing)))
            out[summary.name] = _Desired(target, frozenset(extra | {target}))
        return out

    def _hold(self, name: str, error: str | None) -> _Desired | None:
        """What to want for ``name`` while its alias's version cannot be told: what serves now
        (None when nothing does). Warned once per damage and outcome, not once per poll."""
        with self._lock:
            current = self._defaults.get(name)
        outcome = "nothing of it is served" if current is None else "what was serving stays"
        self._warn_once((name, "alias", error, outcome), "%s@%s cannot be followed: %s; %s",
                        name, self.alias, error, outcome)
        if current is None:
            return None
        served = {s.version for s in self.control.served() if s.name == name}
        return _Desired(current, frozenset(served | {current}))

    def _registered_policy(
        self, name: str, target: int, records: list[ModelVersion]
    ) -> VersionPolicy | None:
        record = next((r for r in records if r.version == target), None)
        if record is not None and "tags" in record.read_errors:
            # Polled every few seconds: said once per version, not once per pass.
            self._warn_once((name, target, "tags"), "%s:%d: its tags cannot be read (%s); served "
                            "with the default version policy", name, target,
                            record.read_errors["tags"])
        text = record.tags.get(POLICY_TAG) if record is not None else None
        if text is None:
            return None
        try:
            return parse_version_policy(text)
        except InvalidConfigError as exc:
            log.warning("%s:%d tag %s ignored: %s", name, target, POLICY_TAG, exc)
            return None

    def _warn_once(self, key: tuple[Any, ...], message: str, *args: Any) -> None:
        with self._lock:
            if key in self._warned:
                return
            self._warned.add(key)
        log.warning(message, *args)

    def _reconcile(self, name: str, want: _Desired) -> None:
        served = {s.version for s in self.control.served() if s.name == name}
        # The alias's target first: it becomes the default route as soon as it serves.
        loaded = want.target not in served and self._load(name, want.target)
        if loaded:
            served.add(want.target)
        with self._lock:
            current = self._defaults.get(name)
        # A freshly added target is routed to even if it was the default before (an unload
        # through RepositoryModelUnload clears the table's default).
        if want.target in served and (current != want.target or loaded):
            self.control.set_default_version(name, want.target)
            with self._lock:
                self._defaults[name] = want.target
            if current is None:
                log.info("serving %s@%s -> version %d", name, self.alias, want.target)
            else:
                log.info(
                    "alias %s@%s moved: default route %d -> %d",
                    name,
                    self.alias,
                    current,
                    want.target,
                )
            current = want.target
        if current is not None:
            # Other versions only once a default exists: without one the table would route
            # requests that name no version to the highest of them.
            for version in sorted(want.versions - served):
                self._load(name, version)
        # Retire what is no longer wanted, but never the version the default route uses.
        for item in self.control.served():
            if item.name == name and item.version not in want.versions and item.version != current:
                self._retire(name, item.version)

    def _load(self, name: str, version: int) -> bool:
        key = (name, version)
        with self._lock:
            failed_at = self._failed_at.get(key)
        if failed_at is not None and time.monotonic() - failed_at < self.retry_failed_s:
            return False
        model: Model | None = None
        try:
            resolved = self.registry.resolve(f"{name}:{version}")  # verifies the hash
            model = load(resolved.path, config=resolved.config)
            self.control.serve(name, version, model)  # warms, then adds to the table
        except Exception as exc:  # noqa: BLE001 - any failure leaves the old version serving
            if model is not None:
                model.close(drain=False)
            with self._lock:
                self._failures[key] = self._failures.get(key, 0) + 1
                self._failed_at[key] = time.monotonic()
            detail = str(exc) if isinstance(exc, EngineError) else repr(exc)
            log.error(
                "model %s:%d failed to load; what was serving stays (retry in %gs): %s",
                name,
                version,
                self.retry_failed_s,
                detail,
            )
            return False
        with self._lock:
            self._failed_at.pop(key, None)
        log.info("model %s:%d loaded and warmed", name, version)
        self._start_monitoring(name, version, resolved.version, model)
        return True

    def _start_monitoring(self, name: str, version: int, record: ModelVersion,
                          model: Model) -> None:
        """Drift monitoring and the sampled prediction log, when the version has a profile."""
        if "params" in record.read_errors:  # the profile lives in params
            log.warning("model %s:%d is served without drift monitoring: its params cannot be "
                        "read (%s)", name, version, record.read_errors["params"])
            return
        if not (record.params or {}).get("reference_profile"):
            return
        try:
            monitoring = monitor_model(
                model.core, drift_reference_for_version(record), model=name, version=version,
                config=self.monitor_config, collector=self.drift_collector,
                home=self.registry.home, webhook_url=self.webhook_url,
                prediction_log=self.prediction_log)
        except EngineError as exc:  # serving goes on without drift figures; say why
            log.warning("model %s:%d is served without drift monitoring: %s", name, version, exc)
            return
        except Exception:  # a bug in monitoring must not stop serving: say it, with the trace
            log.exception("model %s:%d is served without drift monitoring: unexpected error",
                          name, version)
            return
        with self._lock:
            self._monitors[(name, version)] = monitoring

    def _stop_monitoring(self, name: str, version: int) -> None:
        with self._lock:
            monitoring = self._monitors.pop((name, version), None)
        if monitoring is not None:
            _stop_quietly(monitoring, name, version)

    def _retire(self, name: str, version: int) -> None:
        """Take name:version out of the table, wait for its requests, close it (draining)."""
        model = self.control.take_out(name, version)
        if model is None:
            return
        self._stop_monitoring(name, version)
        # A request that looked the version up just before the removal holds its own reference
        # and submits within microseconds: wait a moment, then until nothing is in flight.
        deadline = time.monotonic() + self.drain_timeout_s
        time.sleep(self.settle_s)
        while time.monotonic() < deadline:
            stats = model.stats()  # a closed model's final counts: nothing in flight
            if stats.in_flight == 0 and stats.queue_depth == 0:
                break
            time.sleep(0.05)
        model.close(drain=True)
        log.info("model %s:%d drained and unloaded", name, version)
