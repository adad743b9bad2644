"""Sampled prediction logs: complete and readable Parquet at the sampled rate, rotation by
size and time, drop-on-full counted, and the poller that drains the core's samples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import factories
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import engine
from engine.errors import InvalidConfigError
from engine.monitoring.prediction_log import (
    PredictionLog,
    PredictionLogConfig,
    read_prediction_logs,
    scan_prediction_logs,
    tensor_values,
)
from engine.monitoring.sampler import SamplePoller


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def monotonic_s(self) -> float:
        return self.now_s

    def wall_ms(self) -> int:
        return 1_700_000_000_000 + int(self.now_s * 1000)


def request(i: int) -> tuple[dict[str, Any], dict[str, Any]]:
    x = np.array([[i, i + 0.5, -1.0]], dtype=np.float32)
    return (
        {"x": x, "city": np.array([[f"c{i % 3}"]], dtype=object)},
        {"score": np.array([[i / 10]], dtype=np.float32), "label": np.array([i % 2])},
    )


def test_sampled_rate_and_complete_files(tmp_path: Path) -> None:
    config = PredictionLogConfig(sample_rate=0.1, flush_rows=64)
    with PredictionLog(tmp_path, model="churn", version=3, config=config, seed=42) as log:
        kept = [
            i
            for i in range(5000)
            if log.record(*request(i), latency_us=100 + i, request_id=f"r{i}")
        ]
    # Binomial(5000, 0.1): mean 500, sd 21.2; +-5 sd.
    assert 394 <= len(kept) <= 606
    counters = log.counters()
    assert counters == {
        "offered": 5000,
        "records": len(kept),
        "dropped_writer": 0,
        "dropped_write_error": 0,
        "dropped_core": 0,
        "orphans_removed": 0,
    }
    assert not list(tmp_path.glob("*.partial"))
    table = read_prediction_logs(tmp_path)
    assert table.num_rows == len(kept)
    rows = table.to_pylist()
    assert [r["request_id"] for r in rows] == [f"r{i}" for i in kept]
    first, i = rows[0], kept[0]
    assert first["model"] == "churn" and first["version"] == "3"
    assert first["latency_us"] == 100 + i
    assert first["input.x"] == [i, i + 0.5, -1.0] and first["input.x.shape"] == [1, 3]
    assert first["input.city"] == [f"c{i % 3}"]
    assert first["output.score"] == [pytest.approx(i / 10)] and first["output.label"] == [i % 2]
    meta = pq.read_schema(log.files[0]).metadata
    assert meta[b"engine.sample_rate"] == b"0.1"


def test_rotation_by_size_and_by_time(tmp_path: Path) -> None:
    clock = FakeClock()
    config = PredictionLogConfig(
        sample_rate=1.0, flush_rows=10, max_file_bytes=4096, max_file_age_s=60.0
    )
    log = PredictionLog(tmp_path / "size", model="m", version=1, config=config, clock=clock)
    for i in range(200):
        log.record(*request(i), latency_us=1)
    log.close()
    assert len(log.files) > 2
    assert sum(pq.read_metadata(f).num_rows for f in log.files) == 200

    log = PredictionLog(
        tmp_path / "time",
        model="m",
        version=1,
        clock=clock,
        config=PredictionLogConfig(sample_rate=1.0, max_file_age_s=60.0),
    )
    log.record(*request(1), latency_us=1)
    assert log.flush() and log.files == []  # written, but the file is still open
    clock.now_s += 61
    assert log.flush()
    assert len(log.files) == 1  # past max_file_age_s: closed even without new records
    log.record(*request(2), latency_us=1)
    log.close()
    assert [pq.read_metadata(f).num_rows for f in log.files] == [1, 1]


def test_drop_on_full_is_counted_and_never_blocks(tmp_path: Path) -> None:
    config = PredictionLogConfig(sample_rate=1.0, queue_capacity=4)
    log = PredictionLog(tmp_path, model="m", version=1, config=config)
    accepted = sum(log.record(*request(i), latency_us=1) for i in range(2000))
    log.close()
    counters = log.counters()
    assert counters["dropped_writer"] == 2000 - accepted
    assert counters["records"] == accepted
    assert read_prediction_logs(tmp_path).num_rows == accepted
    assert log.record(*request(0), latency_us=1) is False  # closed


class FakeCore:
    """The core's sampling API (set_sampling / take_samples / stats) over a list."""

    def __init__(self, samples: list[dict[str, Any]]) -> None:
        self.samples = samples
        self.sampling: list[tuple[float, int]] = []

    def set_sampling(self, rate: float, capacity: int) -> None:
        self.sampling.append((rate, capacity))

    def take_samples(self, max_items: int) -> list[dict[str, Any]]:
        taken, self.samples = self.samples[:max_items], self.samples[max_items:]
        return taken

    def stats(self) -> dict[str, Any]:
        return {"samples_dropped": 7}


def test_poller_drains_the_core(tmp_path: Path) -> None:
    samples = []
    for i in range(250):
        inputs, outputs = request(i)
        samples.append(
            {
                "id": f"q{i}",
                "inputs": inputs,
                "outputs": outputs,
                "total_us": i,
                "timestamp_ms": 1_700_000_000_000 + i,
            }
        )
    core = FakeCore(samples)
    log = PredictionLog(
        tmp_path, model="m", version=2, config=PredictionLogConfig(sample_rate=0.25)
    )
    poller = SamplePoller(core, log, capacity=512, max_items=100, interval_s=0.01)
    poller.start()
    poller.stop()
    log.close()
    assert core.sampling == [(0.25, 512), (0.0, 512)]
    table = read_prediction_logs(tmp_path)
    assert table.column("request_id").to_pylist() == [f"q{i}" for i in range(250)]
    assert table.column("latency_us").to_pylist() == list(range(250))
    assert log.counters()["dropped_core"] == 7


def test_config_validation() -> None:
    with pytest.raises(InvalidConfigError, match=r"sample_rate must be in \[0, 1\]; was 1.5"):
        PredictionLogConfig(sample_rate=1.5)
    with pytest.raises(InvalidConfigError, match="queue_capacity must be >= 1; was 0"):
        PredictionLogConfig(queue_capacity=0)


def test_files_rotate_every_five_minutes_by_default() -> None:
    # A file is readable only once closed: this bounds how far behind a report can be.
    assert PredictionLogConfig().max_file_age_s == 300.0


def _one_row_log(directory: Path, version: int, x: np.ndarray) -> None:
    config = PredictionLogConfig(sample_rate=1.0)
    with PredictionLog(directory, model="m", version=version, config=config) as log:
        log.record({"x": x}, {"y": x[:, :1]}, latency_us=5, request_id=f"v{version}")


def test_reader_reads_only_the_requested_version(tmp_path: Path) -> None:
    # All versions share the model's folder; their tensors may differ in dtype or kind.
    _one_row_log(tmp_path, 1, np.ones((1, 3), np.float32))
    _one_row_log(tmp_path, 2, np.ones((1, 3), np.float64))
    table = read_prediction_logs(tmp_path, version="2")
    assert table.column("request_id").to_pylist() == ["v2"]
    assert str(table.schema.field("input.x").type) == "list<element: double>"
    v1 = read_prediction_logs(tmp_path, version="1")
    assert str(v1.schema.field("input.x").type) == "list<element: float>"
    # All versions: float32 widens to float64 (nothing lost).
    both = read_prediction_logs(tmp_path)
    assert both.column("request_id").to_pylist() == ["v1", "v2"]
    assert both.column("input.x").to_pylist() == [[1.0, 1.0, 1.0]] * 2
    # A version whose x holds strings cannot be combined with the others: one clear error
    # (reading one version still works).
    _one_row_log(tmp_path, 3, np.array([["a", "b", "c"]], dtype=object))
    with pytest.raises(InvalidConfigError, match="prediction logs disagree on column 'input.x'"):
        read_prediction_logs(tmp_path)
    assert read_prediction_logs(tmp_path, version="3").column("input.x").to_pylist() == [
        ["a", "b", "c"]
    ]
    # A damaged file of another version is not even opened.
    (tmp_path / "m-v1-20231114T221320-1-0001.parquet").write_bytes(b"junk")
    assert scan_prediction_logs(tmp_path, version="2").skipped == ()


def test_reader_skips_files_that_are_not_valid_parquet(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = PredictionLogConfig(sample_rate=1.0, flush_rows=10, max_file_bytes=4096)
    with PredictionLog(tmp_path, model="m", version=1, config=config) as log:
        for i in range(100):
            log.record(*request(i), latency_us=1, request_id=f"r{i}")
    assert len(log.files) > 2
    # A file cut short (what a full disk left before this writer deleted such files) and one
    # that is not Parquet at all.
    data = log.files[0].read_bytes()
    lost = pq.read_metadata(log.files[0]).num_rows
    log.files[0].write_bytes(data[: len(data) // 2])
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet")
    with caplog.at_level("WARNING", logger="engine.monitoring.prediction_log"):
        folder = scan_prediction_logs(tmp_path)
    assert folder.table.num_rows == 100 - lost
    assert [p for p, _ in folder.skipped] == sorted([log.files[0], junk])
    assert all("ArrowInvalid" in reason for _, reason in folder.skipped)
    warned = [r.getMessage() for r in caplog.records]
    assert any(repr(str(junk)) in m and "not valid Parquet" in m for m in warned), warned
    assert any(repr(str(log.files[0])) in m for m in warned), warned


def test_open_files_are_listed_not_read(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, model="m", version=7, config=PredictionLogConfig(sample_rate=1))
    log.record(*request(1), latency_us=1)
    assert log.flush()
    folder = scan_prediction_logs(tmp_path)
    assert folder.table is None and folder.files == ()
    assert [p.name.endswith(".parquet.partial") for p in folder.open_files] == [True]
    assert scan_prediction_logs(tmp_path, version="6").open_files == ()
    log.close()
    folder = scan_prediction_logs(tmp_path, version="7")
    assert folder.open_files == () and folder.table.num_rows == 1


def test_bytes_that_are_not_utf8_round_trip(tmp_path: Path) -> None:
    """A BYTES element that is not UTF-8 is kept exactly (in ``<column>.bytes``), through the
    core's sampler (which hands it over as surrogate escapes) and through record(); UTF-8
    elements stay plain strings in the column itself."""
    log = PredictionLog(tmp_path, model="m", version=1, config=PredictionLogConfig(sample_rate=1))
    with engine.load(factories.string_lookup(tmp_path / "s.onnx")) as model:
        poller = SamplePoller(model.core, log, interval_s=0.01)
        poller.start()
        model.predict({"word": np.array([["ému"], [b"\xff\xfe"]], dtype=object)})
        poller.stop()
    log.record(
        {"word": np.array([[b"caf\xc3\xa9", b"\x80"]], dtype=np.bytes_)},
        {"id": np.array([[3, -1]])},
        latency_us=1,
    )
    log.close()
    table = read_prediction_logs(tmp_path)
    assert log.counters()["records"] == 2 and table.num_rows == 2
    assert table.column("input.word").to_pylist() == [["ému", None], ["café", None]]
    assert tensor_values(table, "input.word") == [["ému", b"\xff\xfe"], ["café", b"\x80"]]
    assert tensor_values(table, "output.echo") == [["ému", b"\xff\xfe"], None]
    assert table.column("input.word.shape").to_pylist() == [[2, 1], [1, 2]]
    assert tensor_values(table, "output.id") == [[3, -1], [3, -1]]


def test_requests_without_an_id_are_logged_as_null(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, model="m", version=1, config=PredictionLogConfig(sample_rate=1))
    with engine.load(factories.string_lookup(tmp_path / "s.onnx")) as model:
        poller = SamplePoller(model.core, log, interval_s=0.01)
        poller.start()
        model.predict({"word": np.array([["cat"]], dtype=object)})  # the core's id: ""
        poller.stop()
    log.record(*request(1), latency_us=1)
    log.record(*request(2), latency_us=1, request_id="")
    log.record(*request(3), latency_us=1, request_id="r3")
    log.close()
    assert read_prediction_logs(tmp_path).column("request_id").to_pylist() == [
        None,
        None,
        None,
        "r3",
    ]
    # Logs written before: "" for no id; read as null too.
    old = tmp_path / "old"
    old.mkdir()
    table = pa.table(
        {
            "timestamp": pa.array([1, 2], pa.timestamp("ms", tz="UTC")),
            "request_id": ["", "q2"],
            "model": ["m", "m"],
            "version": ["1", "1"],
            "latency_us": pa.array([5, 6], pa.int64()),
        }
    )
    pq.write_table(table, old / "m-v1-20231114T221320-1-0001.parquet")
    assert read_prediction_logs(old).column("request_id").to_pylist() == [None, "q2"]
