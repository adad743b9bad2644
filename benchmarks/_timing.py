"""Interleaved timing: run candidate and baseline in alternating rounds so machine noise hits
both alike, and report medians and their ratio."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Comparison:
    ours_per_s: float
    base_per_s: float

    @property
    def ratio(self) -> float:
        return self.ours_per_s / self.base_per_s


def calls_per_second(ours: Callable[[], object], base: Callable[[], object], *,
                     calls: int = 2000, rounds: int = 15) -> Comparison:
    for _ in range(calls // 4):  # warm-up of both
        ours()
        base()
    ours_rates, base_rates = [], []
    for _ in range(rounds):
        for fn, rates in ((ours, ours_rates), (base, base_rates)):
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            rates.append(calls / (time.perf_counter() - start))
    return Comparison(statistics.median(ours_rates), statistics.median(base_rates))


def p50_latency_us(fn: Callable[[], object], other: Callable[[], object], *,
                   calls: int = 20000) -> tuple[float, float]:
    """p50 of single calls of fn and other, interleaved call by call."""
    for _ in range(1000):
        fn()
        other()
    a, b = [], []
    clock = time.perf_counter_ns
    for _ in range(calls):
        t0 = clock()
        fn()
        t1 = clock()
        other()
        t2 = clock()
        a.append(t1 - t0)
        b.append(t2 - t1)
    return statistics.median(a) / 1000, statistics.median(b) / 1000


def threaded_rows_per_second(predict: Callable[[], object], rows_per_call: int, *,
                             threads: int, seconds: float) -> float:
    """Rows per second of ``threads`` threads calling ``predict`` in a loop for ``seconds``
    (after a short warm-up)."""
    count = [0] * threads
    stop = threading.Event()

    def worker(i: int) -> None:
        while not stop.is_set():
            predict()
            count[i] += rows_per_call

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    time.sleep(0.1)
    before, start = sum(count), time.perf_counter()
    time.sleep(seconds)
    rate = (sum(count) - before) / (time.perf_counter() - start)
    stop.set()
    for t in pool:
        t.join()
    return rate
