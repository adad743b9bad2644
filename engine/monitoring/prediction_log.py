"""Sampled prediction logs: records of requests written to Parquet by a background writer.

A record holds a request's inputs and outputs, the model name and version, its latency and
request id. :meth:`PredictionLog.record` samples (``sample_rate``) and queues a record
without blocking: a full queue drops it and counts ``dropped_writer``.
:meth:`PredictionLog.record_sampled` queues a record already sampled by the core (see
:mod:`engine.monitoring.sampler`). One daemon thread writes queued records in row groups of
``flush_rows`` (or every ``flush_interval_s``) to ``<directory>/<model>-v<version>-
<UTC time>-<seq>.parquet``, starting a new file once the current one passes
``max_file_bytes`` or ``max_file_age_s``. A file is written as ``*.parquet.partial`` and
renamed when closed, so every ``*.parquet`` file is complete.

Columns: ``timestamp`` (timestamp[ms, UTC]), ``request_id``, ``model``, ``version``,
``latency_us`` (int64), then for each input tensor ``input.<name>`` (the tensor's elements,
flattened, as a list of its type) and ``input.<name>.shape`` (list of int64), and the same
for outputs with ``output.``. Strings are UTF-8. The file's schema metadata carries
``engine.sample_rate``. :func:`read_prediction_logs` reads a folder back into one table.
"""

from __future__ import annotations

import logging
import os
import queue
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.errors import InvalidConfigError
from engine.monitoring.clock import Clock, SystemClock

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self needs Python 3.11

__all__ = ["PredictionLog", "PredictionLogConfig", "read_prediction_logs"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictionLogConfig:
    sample_rate: float = 0.01
    queue_capacity: int = 10_000
    max_file_bytes: int = 64 << 20
    max_file_age_s: float = 3600.0
    flush_rows: int = 1000
    flush_interval_s: float = 5.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.sample_rate <= 1.0:
            raise InvalidConfigError(f"sample_rate must be in [0, 1]; was {self.sample_rate}")
        if self.queue_capacity < 1:
            raise InvalidConfigError(f"queue_capacity must be >= 1; was {self.queue_capacity}")
        if self.max_file_bytes < 1 or not self.max_file_age_s > 0:
            raise InvalidConfigError(
                f"max_file_bytes and max_file_age_s must be > 0; were "
                f"{self.max_file_bytes} and {self.max_file_age_s}"
            )
        if self.flush_rows < 1 or not self.flush_interval_s > 0:
            raise InvalidConfigError(
                f"flush_rows and flush_interval_s must be > 0; were "
                f"{self.flush_rows} and {self.flush_interval_s}"
            )


@dataclass(frozen=True)
class _Record:
    timestamp_ms: int
    request_id: str
    latency_us: int
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]


class _Marker:
    """Queued by flush/close: the writer writes what it holds, then sets ``done``."""

    def __init__(self, close_file: bool, stop: bool) -> None:
        self.close_file = close_file
        self.stop = stop
        self.done = threading.Event()


class PredictionLog:
    """Sampled request records to rotated Parquet files (see the module docstring)."""

    def __init__(
        self,
        directory: str | Path,
        *,
        model: str,
        version: str | int,
        config: PredictionLogConfig | None = None,
        clock: Clock | None = None,
        seed: int | None = None,
    ) -> None:
        import pyarrow  # type: ignore[import-untyped]  # noqa: F401  fail early if missing

        self.directory = Path(directory)
        self.model = model
        self.version = str(version)
        self.config = config or PredictionLogConfig()
        self._clock = clock or SystemClock()
        self._random = random.Random(seed)
        self._queue: queue.Queue[_Record | _Marker] = queue.Queue(self.config.queue_capacity)
        self._lock = threading.Lock()
        self._offered = 0
        self._records = 0
        self._dropped_writer = 0
        self._dropped_core = 0
        self._closed = False
        self.files: list[Path] = []  # finished files, oldest first
        self._writer = _ParquetRotator(self)
        self._thread = threading.Thread(target=self._run, name=f"predlog-{model}", daemon=True)
        self._thread.start()

    # --- producers (never block) ------------------------------------------------------------

    def record(
        self,
        inputs: Mapping[str, Any],
        outputs: Mapping[str, Any],
        *,
        latency_us: int,
        request_id: str | None = None,
        timestamp_ms: int | None = None,
    ) -> bool:
        """Offer one request; it is kept with probability ``sample_rate``. True if queued."""
        with self._lock:
            self._offered += 1
        rate = self.config.sample_rate
        if rate <= 0.0 or (rate < 1.0 and self._random.random() >= rate):
            return False
        return self.record_sampled(
            inputs,
            outputs,
            latency_us=latency_us,
            request_id=request_id,
            timestamp_ms=timestamp_ms,
            copy=True,
        )

    def record_sampled(
        self,
        inputs: Mapping[str, Any],
        outputs: Mapping[str, Any],
        *,
        latency_us: int,
        request_id: str | None = None,
        timestamp_ms: int | None = None,
        copy: bool = False,
    ) -> bool:
        """Queue a record chosen by someone else's sampling. False if dropped (queue full)."""
        if self._closed:
            return False
        record = _Record(
            int(timestamp_ms if timestamp_ms is not None else self._clock.wall_ms()),
            "" if request_id is None else str(request_id),
            int(latency_us),
            {k: np.array(v, copy=copy) if copy else np.asarray(v) for k, v in inputs.items()},
            {k: np.array(v, copy=copy) if copy else np.asarray(v) for k, v in outputs.items()},
        )
        try:
            self._queue.put_nowait(record)
            return True
        except queue.Full:
            with self._lock:
                self._dropped_writer += 1
            return False

    def set_core_dropped(self, count: int) -> None:
        """The core's own count of samples it dropped (its ring buffer was full)."""
        with self._lock:
            self._dropped_core = int(count)

    def counters(self) -> dict[str, int]:
        with self._lock:
            return {
                "offered": self._offered,
                "records": self._records,
                "dropped_writer": self._dropped_writer,
                "dropped_core": self._dropped_core,
            }

    # --- control ------------------------------------------------------------------------------

    def flush(self, *, close_file: bool = False, timeout_s: float = 30.0) -> bool:
        """Write every record queued so far (and close the file if asked). True when done."""
        return self._marker(_Marker(close_file, stop=False), timeout_s)

    def close(self, timeout_s: float = 30.0) -> None:
        """Write what is queued, close the current file and stop the writer."""
        if self._closed:
            return
        self._closed = True
        self._marker(_Marker(close_file=True, stop=True), timeout_s)
        self._thread.join(timeout_s)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _marker(self, marker: _Marker, timeout_s: float) -> bool:
        try:
            self._queue.put(marker, timeout=timeout_s)
        except queue.Full:
            return False
        return marker.done.wait(timeout_s)

    # --- the writer thread ----------------------------------------------------------------------

    def _run(self) -> None:
        cfg = self.config
        buffer: list[_Record] = []
        last_write = time.monotonic()
        tick_s = max(0.05, min(cfg.flush_interval_s, 1.0))
        while True:
            try:
                item = self._queue.get(timeout=tick_s)
            except queue.Empty:
                item = None
            try:
                if isinstance(item, _Record):
                    buffer.append(item)
                due = (
                    len(buffer) >= cfg.flush_rows
                    or time.monotonic() - last_write >= cfg.flush_interval_s
                    or isinstance(item, _Marker)
                )
                if buffer and due:
                    written = self._writer.write(buffer)
                    with self._lock:
                        self._records += written
                    buffer = []
                    last_write = time.monotonic()
                if isinstance(item, _Marker) and item.close_file:
                    self._writer.close_file()
                else:
                    self._writer.rotate_if_old()
            except Exception:  # noqa: BLE001  logged; the writer thread must not die
                _log.exception(
                    "prediction log writer of %s:%s failed; %d record(s) lost",
                    self.model,
                    self.version,
                    len(buffer),
                )
                buffer = []
            if isinstance(item, _Marker):
                item.done.set()
                if item.stop:
                    return


class _ParquetRotator:
    """The open Parquet file of a log and its rotation (used by the writer thread only)."""

    def __init__(self, log: PredictionLog) -> None:
        self._log = log
        self._writer: Any = None
        self._sink: Any = None
        self._schema: Any = None
        self._partial: Path | None = None
        self._opened_s = 0.0
        self._seq = 0

    def write(self, records: list[_Record]) -> int:
        """Write records (grouped by schema); returns how many were written."""
        written = 0
        start = 0
        keys = [_schema_key(r) for r in records]
        for i in range(1, len(records) + 1):
            if i == len(records) or keys[i] != keys[start]:
                written += self._write_group(records[start:i])
                start = i
        return written

    def _write_group(self, records: list[_Record]) -> int:
        table = _to_table(records, self._log)
        if self._writer is not None and not table.schema.equals(self._schema):
            self.close_file()
        if self._writer is None:
            self._open(table.schema)
        self._writer.write_table(table)
        if self._sink.tell() >= self._log.config.max_file_bytes:
            self.close_file()
        return len(records)

    def rotate_if_old(self) -> None:
        if (
            self._writer is not None
            and self._log._clock.monotonic_s() - self._opened_s >= self._log.config.max_file_age_s
        ):
            self.close_file()

    def _open(self, schema: Any) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq  # type: ignore[import-untyped]

        log = self._log
        log.directory.mkdir(parents=True, exist_ok=True)
        stamp = datetime.fromtimestamp(log._clock.wall_ms() / 1000, timezone.utc)
        self._seq += 1
        name = f"{log.model}-v{log.version}-{stamp:%Y%m%dT%H%M%S}-{os.getpid()}-{self._seq:04d}"
        self._partial = log.directory / f"{name}.parquet.partial"
        self._sink = pa.OSFile(str(self._partial), "wb")
        self._writer = pq.ParquetWriter(self._sink, schema, compression="zstd")
        self._schema = schema
        self._opened_s = log._clock.monotonic_s()

    def close_file(self) -> None:
        if self._writer is None or self._partial is None:
            return
        self._writer.close()
        self._sink.close()
        final = self._partial.with_suffix("")  # drop ".partial"
        os.replace(self._partial, final)
        self._log.files.append(final)
        self._writer = self._sink = self._schema = self._partial = None


def _schema_key(record: _Record) -> tuple[Any, ...]:
    return (
        tuple((k, v.dtype.str) for k, v in record.inputs.items()),
        tuple((k, v.dtype.str) for k, v in record.outputs.items()),
    )


def _to_table(records: list[_Record], log: PredictionLog) -> Any:
    import pyarrow as pa

    columns: dict[str, Any] = {
        "timestamp": pa.array([r.timestamp_ms for r in records], pa.timestamp("ms", tz="UTC")),
        "request_id": pa.array([r.request_id for r in records], pa.string()),
        "model": pa.array([log.model] * len(records), pa.string()),
        "version": pa.array([log.version] * len(records), pa.string()),
        "latency_us": pa.array([r.latency_us for r in records], pa.int64()),
    }
    for prefix, field in (("input", "inputs"), ("output", "outputs")):
        for name in getattr(records[0], field):
            arrays = [getattr(r, field)[name] for r in records]
            columns[f"{prefix}.{name}"] = _list_column(arrays)
            columns[f"{prefix}.{name}.shape"] = pa.array(
                [list(a.shape) for a in arrays], pa.list_(pa.int64())
            )
    table = pa.table(columns)
    return table.replace_schema_metadata(
        {
            "engine.sample_rate": str(log.config.sample_rate),
            "engine.model": log.model,
            "engine.version": log.version,
        }
    )


def _list_column(arrays: list[np.ndarray]) -> Any:
    import pyarrow as pa

    sizes = np.array([a.size for a in arrays], dtype=np.int64)
    offsets = pa.array(np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32))
    flat = [a.reshape(-1) for a in arrays]
    if arrays[0].dtype.kind in "OSU":
        values = pa.array(
            [
                v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                for a in flat
                for v in a.tolist()
            ],
            pa.string(),
        )
    else:
        values = pa.array(np.concatenate(flat) if flat else np.array([]))
    return pa.ListArray.from_arrays(offsets, values)


def read_prediction_logs(
    directory: str | Path, *, since_ms: int | None = None, version: str | None = None
) -> Any:
    """All complete ``*.parquet`` logs of a folder as one pyarrow Table (None if there are none).

    Files whose schemas differ (a new model version with other tensors) are combined with
    missing columns as nulls. A file that cannot be read, or is not a prediction log, raises
    InvalidConfigError naming it.
    """
    import pyarrow as pa
    import pyarrow.compute as pc  # type: ignore[import-untyped]

    paths = sorted(Path(directory).glob("*.parquet"))
    if not paths:
        return None
    tables = [_read_log(p) for p in paths]
    table = pa.concat_tables(tables, promote_options="default")
    if since_ms is not None:
        cutoff = pa.scalar(since_ms, pa.timestamp("ms", tz="UTC"))
        table = table.filter(pc.greater_equal(table["timestamp"], cutoff))
    if version is not None:
        table = table.filter(pc.equal(table["version"], version))
    return table


def _read_log(path: Path) -> Any:
    """One log file, refused with its name if it is unreadable or another kind of table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        detail = (str(exc).strip().splitlines() or ["no details"])[0]
        raise InvalidConfigError(
            f"cannot read prediction log {str(path)!r}: {type(exc).__name__}: {detail}"
        ) from exc
    # The columns every reader relies on, with the types the writer gives them.
    expected = {
        "timestamp": pa.types.is_timestamp,
        "version": pa.types.is_string,
        "latency_us": pa.types.is_integer,
    }
    schema = table.schema
    wrong = [
        name
        for name, is_type in expected.items()
        if schema.get_field_index(name) < 0 or not is_type(schema.field(name).type)
    ]
    if wrong:
        raise InvalidConfigError(
            f"{str(path)!r} is not a prediction log: missing or mistyped column(s) {wrong} "
            f"(a log has timestamp, request_id, model, version, latency_us, input.*, output.*)"
        )
    return table
