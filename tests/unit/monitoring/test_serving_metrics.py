"""The server's request metrics (server/metrics.py ServingCollector) as Prometheus reads them:
counters that never go down while a version is reloaded, unloaded and loaded again (a drop
between two scrapes that the new counts already exceed is invisible to rate()), and
histograms whose buckets are cumulative with +Inf equal to _count even when the core's
lock-free snapshot is torn (its total read apart from its buckets)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from engine.stats import OUTCOMES, Histogram, ModelStats
from server.metrics import ServingCollector

BOUNDS_US = (100, 1000, 10_000)


def stats(ok: int, *, hist_count: int | None = None) -> ModelStats:
    """``ok`` requests of one row each, every one in the 1 ms bucket."""
    h = Histogram(BOUNDS_US, (0, ok, 0, 0), 500 * ok, ok if hist_count is None else hist_count)
    return ModelStats(
        requests={"ok": ok},
        batches=ok,
        inferred_rows=ok,
        batch_sizes={1: ok} if ok else {},
        batch_compute_us={},
        queue=h,
        compute=h,
        total=h,
        queue_depth=0,
        in_flight=0,
        last_inference_ms=0,
    )


@dataclass
class FakeModel:
    counts: ModelStats
    closed: bool = False

    def stats(self) -> ModelStats:
        return self.counts


class Served:
    def __init__(self) -> None:
        self.models: list[tuple[str, int, Any]] = []

    def __call__(self) -> list[tuple[str, int, Any]]:
        return list(self.models)


def scrape(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted({"model": "m", "version": "1", **labels}.items()))))


COUNTERS = [
    ("engine_requests_total", {"outcome": "ok"}),
    ("engine_inferred_rows_total", {}),
    ("engine_request_duration_seconds_count", {}),
    ("engine_request_duration_seconds_bucket", {"le": "0.001"}),
    ("engine_request_duration_seconds_bucket", {"le": "+Inf"}),
    ("engine_request_queue_seconds_count", {}),
    ("engine_batch_size_count", {}),
    ("engine_batch_size_bucket", {"le": "1"}),
    ("engine_batch_size_sum", {}),
]


def assert_every_counter(samples: dict[Any, float], expected: float) -> None:
    for name, labels in COUNTERS:
        assert value(samples, name, **labels) == expected, name


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_counters_carry_on_across_reload_unload_and_load() -> None:
    served = Served()
    clock = FakeClock()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServingCollector(served, unloaded_series_s=600, clock=clock))
    first = FakeModel(stats(5))
    served.models = [("m", 1, first)]
    before = scrape(registry)
    assert_every_counter(before, 5)

    # Reloaded in place: a new model object for the same version, the old one closed with 2
    # more requests since the last scrape; the new one already answered 3.
    first.counts, first.closed = stats(7), True
    second = FakeModel(stats(3))
    served.models = [("m", 1, second)]
    after_reload = scrape(registry)
    assert_every_counter(after_reload, 10)

    # Unloaded, with 1 more request since the last scrape: the counters stay at their final
    # counts (so every scraper reads that request), without the gauges, ...
    second.counts, second.closed = stats(4), True
    served.models = []
    unloaded = scrape(registry)
    assert_every_counter(unloaded, 11)
    assert value(unloaded, "engine_queue_depth") is None
    assert value(unloaded, "engine_requests_in_flight") is None
    clock.now += 599
    assert_every_counter(scrape(registry), 11)
    # ... until the time is up: then no series ...
    clock.now += 1
    assert value(scrape(registry), "engine_requests_total", outcome="ok") is None
    # ... and loaded again: the counts go on from where they were, never down.
    served.models = [("m", 1, FakeModel(stats(1)))]
    again = scrape(registry)
    assert_every_counter(again, 12)
    for outcome in OUTCOMES:
        if outcome != "ok":
            assert value(again, "engine_requests_total", outcome=outcome) == 0


def test_a_replaced_model_still_draining_keeps_counting() -> None:
    served = Served()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServingCollector(served))
    old = FakeModel(stats(5))
    served.models = [("m", 1, old)]
    scrape(registry)
    new = FakeModel(stats(1))
    served.models = [("m", 1, new)]  # the old one is not closed yet: its queue drains
    assert value(scrape(registry), "engine_requests_total", outcome="ok") == 6
    old.counts, old.closed = stats(8), True
    assert value(scrape(registry), "engine_requests_total", outcome="ok") == 9
    new.counts = stats(2)
    assert value(scrape(registry), "engine_requests_total", outcome="ok") == 10


def test_other_versions_and_models_are_not_mixed_in() -> None:
    served = Served()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServingCollector(served))
    other = FakeModel(stats(2))
    served.models = [("m", 1, FakeModel(stats(5), closed=True)), ("n", 1, other)]
    scrape(registry)
    other.counts = stats(3)
    served.models = [("m", 2, FakeModel(stats(1))), ("n", 1, other)]
    samples = scrape(registry)
    assert value(samples, "engine_requests_total", outcome="ok", version="2") == 1
    assert value(samples, "engine_requests_total", outcome="ok", model="n") == 3


def test_histogram_buckets_stay_cumulative_when_the_snapshot_is_torn() -> None:
    # The core loads the buckets, then the total, without a lock: an observation can be in a
    # bucket and not yet in the total. +Inf must still be >= every bucket and equal _count.
    served = Served()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServingCollector(served))
    served.models = [("m", 1, FakeModel(stats(5, hist_count=4)))]
    text = generate_latest(registry).decode()
    for family in text_string_to_metric_families(text):
        if family.type != "histogram":
            continue
        buckets = [s for s in family.samples if s.name.endswith("_bucket")]
        count = next(s.value for s in family.samples if s.name.endswith("_count"))
        values = [s.value for s in buckets]
        assert values == sorted(values), (family.name, values)
        assert buckets[-1].labels["le"] == "+Inf" and buckets[-1].value == count == 5
