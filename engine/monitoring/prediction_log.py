"""Sampled prediction logs: records of requests written to Parquet by a background writer.

A record holds a request's inputs and outputs, the model name and version, its latency and
request id. :meth:`PredictionLog.record` samples (``sample_rate``) and queues a record
without blocking: a full queue drops it and counts ``dropped_writer``.
:meth:`PredictionLog.record_sampled` queues a record already sampled by the core (see
:mod:`engine.monitoring.sampler`). One daemon thread writes queued records in row groups of
``flush_rows`` (or every ``flush_interval_s``) to ``<directory>/<model>-v<version>-
<UTC time>-<pid>-<seq>.parquet``, starting a new file once the current one passes
``max_file_bytes`` or ``max_file_age_s``. A file is written as ``*.parquet.partial`` and
renamed when closed, so every ``*.parquet`` file is complete. A Parquet file is readable only
once it is closed (its footer is written last), so ``max_file_age_s`` (default 5 minutes) is
how far behind the newest readable record may be, and what a killed process loses at most.

Write failures (a full disk, a lost mount, a file-size limit) never reach the producers and
never stop the writer. The file being written is abandoned: deleted (or, if even that fails,
left as ``*.parquet.partial``), never renamed to ``*.parquet``. Every record that is not in a
complete file is counted in ``dropped_write_error``: the records of the failed write, the ones
already in the abandoned file, and the ones that arrive while the writer backs off
(``retry_initial_s``, doubling up to ``retry_max_s``) before it opens a new file. A failure
spell is logged once at ERROR when it starts and once at WARNING when a file is complete
again (or the log is closed), with the number of records lost.

Files of writers that died: the writer holds an exclusive ``flock`` on its open
``*.parquet.partial`` for as long as it writes it, and the kernel drops the lock when the
process ends, however it ends. When a writer starts, it removes every ``*.parquet.partial`` of
its folder (any model or version, names as the writer gives them) that it can lock and that
nothing has written to for two hours (``ORPHAN_MIN_AGE_S``, longer than any writer keeps a
file open): no live writer holds it, so it was left by one that was killed (SIGKILL, OOM,
power loss). Each is
logged at WARNING with its size and counted in ``orphans_removed``. Its records are lost
anyway: without the footer a Parquet file cannot be read. ``engine monitor report
--remove-orphans`` does the same on demand (:func:`remove_orphaned_partials`). The name alone
(its pid) proves nothing: pids are reused, and servers in containers sharing a folder are
often all pid 1. Limits: the lock is only as good as the filesystem's ``flock``: local
filesystems and bind mounts shared between containers of one host are fine; where locks are
not shared between hosts (some network and FUSE mounts), run the clean-up only on the host of
the writers. Where ``flock`` fails outright nothing can be locked, so nothing is removed. A
writer that holds no lock (an engine without it, during a rolling upgrade; a filesystem where
flock fails) is covered by the age rule alone: its open file is written or closed within its
rotation age, so it is never two hours idle.

Counters (:meth:`PredictionLog.counters`): ``offered`` (requests offered to :meth:`record`),
``records`` (records in complete ``*.parquet`` files, counted when the file is closed),
``dropped_writer``, ``dropped_write_error``, ``dropped_core`` (the core's own drops) and
``orphans_removed`` (files of dead writers this log removed when it started).

Columns: ``timestamp`` (timestamp[ms, UTC]), ``request_id`` (null for a request without
one), ``model``, ``version``, ``latency_us`` (int64), then for each input tensor
``input.<name>`` (the tensor's elements, flattened, as a list of its type) and
``input.<name>.shape`` (list of int64), and the same for outputs with ``output.``. A string
(BYTES) tensor also has ``input.<name>.bytes`` (list of binary): elements that are valid UTF-8
are strings in ``input.<name>``; any other is null there and its exact bytes are in
``.bytes`` at the same position (a row without such elements is null in ``.bytes``). The
file's schema metadata carries ``engine.sample_rate``, ``engine.model`` and
``engine.version``.

:func:`read_prediction_logs` reads a folder back into one table; :func:`scan_prediction_logs`
also says which files it skipped (not valid Parquet) and which are still open. Both read the
``""`` request id of logs written before ids could be null as null. :func:`tensor_values`
gives a tensor column's elements with the non-UTF-8 ones back as ``bytes``.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import queue
import random
import re
import stat
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

__all__ = [
    "LogFolder",
    "PredictionLog",
    "PredictionLogConfig",
    "read_prediction_logs",
    "remove_orphaned_partials",
    "scan_prediction_logs",
    "tensor_values",
]

_log = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".partial"
# <model>-v<version>-<YYYYmmddTHHMMSS>-<pid>-<seq>.parquet[.partial]
_FILE_NAME = re.compile(
    r"^(?P<model>.+)-v(?P<version>.+)-\d{8}T\d{6}-\d+-\d+\.parquet(?:\.partial)?$"
)
# An unlocked ``*.partial`` is removed only when nothing has been written to it for this long:
# longer than any writer keeps a file open (max_file_age_s, 5 minutes by default; 1 hour in
# releases before the lock), so a live writer that holds no lock (an older release during an
# upgrade, a filesystem where flock fails) never loses its file. A writer whose own
# max_file_age_s is longer waits twice that.
ORPHAN_MIN_AGE_S = 2 * 3600.0
# Names tried before a write fails when each is taken (by a writer with the same pid, the same
# second and sequence number: pid 1 in two containers).
_NAME_ATTEMPTS = 16


@dataclass(frozen=True)
class PredictionLogConfig:
    sample_rate: float = 0.01
    queue_capacity: int = 10_000
    max_file_bytes: int = 64 << 20
    max_file_age_s: float = 300.0
    flush_rows: int = 1000
    flush_interval_s: float = 5.0
    retry_initial_s: float = 1.0  # back-off after a write failure, doubling ...
    retry_max_s: float = 60.0  # ... up to this

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
        if not 0 < self.retry_initial_s <= self.retry_max_s:
            raise InvalidConfigError(
                f"retry_initial_s must be > 0 and <= retry_max_s; were "
                f"{self.retry_initial_s} and {self.retry_max_s}"
            )


@dataclass(frozen=True)
class _Record:
    timestamp_ms: int
    request_id: str | None  # None: the request had no id
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
        self._dropped_write_error = 0
        self._dropped_core = 0
        self._orphans_removed = 0
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
            # "" is how the core and the server say "no id": logged as null, not as an id.
            None if request_id is None or request_id == "" else str(request_id),
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
                "dropped_write_error": self._dropped_write_error,
                "dropped_core": self._dropped_core,
                "orphans_removed": self._orphans_removed,
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

    # --- counters, from the writer thread -------------------------------------------------------

    def _count_written(self, count: int) -> None:
        with self._lock:
            self._records += count

    def _count_lost(self, count: int) -> None:
        with self._lock:
            self._dropped_write_error += count

    # --- the writer thread ----------------------------------------------------------------------

    def _remove_orphans(self) -> None:
        """Remove the files of dead writers in the folder (see the module docstring)."""
        min_age_s = max(ORPHAN_MIN_AGE_S, 2 * self.config.max_file_age_s)
        try:
            removed = remove_orphaned_partials(self.directory, min_age_s=min_age_s)
        except Exception:  # noqa: BLE001  a failed clean-up must not stop the writer
            _log.exception("cleaning up dead prediction logs in %s failed", str(self.directory))
            return
        for path, size in removed:
            _log.warning(
                "removed %s (%d bytes): a prediction log left open by a writer that died "
                "(killed); a file without its Parquet footer cannot be read, so its records "
                "are lost",
                str(path),
                size,
            )
        with self._lock:
            self._orphans_removed += len(removed)

    def _run(self) -> None:
        self._remove_orphans()  # before any file of ours exists
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
                    batch, buffer = buffer, []
                    last_write = time.monotonic()
                    self._writer.write(batch)  # counts what it could not write; never raises
                if isinstance(item, _Marker) and item.close_file:
                    self._writer.close_file()
                else:
                    self._writer.rotate_if_old()
                if isinstance(item, _Marker) and item.stop:
                    self._writer.stopped()
            except Exception as exc:  # noqa: BLE001  a bug here must not kill the writer thread
                self._count_lost(len(buffer))
                self._writer.failures.failed("the prediction log writer", exc, len(buffer))
                buffer = []
            if isinstance(item, _Marker):
                item.done.set()
                if item.stop:
                    return


class _FailureSpell:
    """Write failures, logged once per spell: ERROR when it starts, WARNING when it ends."""

    def __init__(self, log: PredictionLog) -> None:
        self._log = log
        self.since_s: float | None = None
        self.lost = 0

    @property
    def active(self) -> bool:
        return self.since_s is not None

    def failed(self, what: str, exc: BaseException, lost: int) -> None:
        self.lost += lost
        if self.since_s is not None:
            return
        self.since_s = self._log._clock.monotonic_s()
        log = self._log
        _log.error(
            "prediction log of %s:%s in %s: %s failed: %s: %s; %d record(s) lost. Until a "
            "file is complete again, records that cannot be written are dropped and counted "
            'in engine_prediction_log_dropped_total{where="write_error"} (logged once, with '
            "the count, when it ends). Serving is not affected.",
            log.model,
            log.version,
            str(log.directory),
            what,
            type(exc).__name__,
            _one_line(exc),
            lost,
            exc_info=None if _expected_failure(exc) else exc,  # a bug: keep its traceback
        )

    def ended(self, how: str) -> None:
        if self.since_s is None:
            return
        log = self._log
        _log.warning(
            "prediction log of %s:%s %s after %.1fs of write failures; %d record(s) lost",
            log.model,
            log.version,
            how,
            log._clock.monotonic_s() - self.since_s,
            self.lost,
        )
        self.since_s = None
        self.lost = 0


class _ParquetRotator:
    """The open Parquet file of a log and its rotation (used by the writer thread only).

    Invariants: ``_writer`` is None exactly when no file is open; ``_rows_in_file`` rows were
    written to the open file and are counted (as ``records`` or as lost) when it is closed or
    abandoned; while ``_retry_at_s`` is in the future nothing is written; ``_lock_fd`` holds
    the flock on ``_partial`` from its creation until it is renamed or deleted.
    """

    def __init__(self, log: PredictionLog) -> None:
        self._log = log
        self._writer: Any = None
        self._sink: Any = None
        self._schema: Any = None
        self._partial: Path | None = None
        self._lock_fd: int | None = None  # holds the flock on _partial while it is open
        self._lock_warned = False
        self._opened_s = 0.0
        self._seq = 0
        self._rows_in_file = 0
        self._retry_at_s: float | None = None
        self._retry_delay_s = log.config.retry_initial_s
        self.failures = _FailureSpell(log)

    def write(self, records: list[_Record]) -> None:
        """Write records (grouped by schema). Never raises: what is lost is counted."""
        now = self._log._clock.monotonic_s()
        if self._retry_at_s is not None and now < self._retry_at_s:
            self._log._count_lost(len(records))
            self.failures.lost += len(records)
            return
        self._retry_at_s = None
        start = 0
        keys = [_schema_key(r) for r in records]
        for i in range(1, len(records) + 1):
            if i == len(records) or keys[i] != keys[start]:
                if not self._write_group(records[start:i]):
                    self._log._count_lost(len(records) - i)  # the groups not tried
                    self.failures.lost += len(records) - i
                    return
                start = i

    def _write_group(self, records: list[_Record]) -> bool:
        """False when the file failed (the group and the file's rows are counted lost)."""
        try:
            table = _to_table(records, self._log)
        except Exception as exc:  # noqa: BLE001  records pyarrow cannot hold: the file is fine
            self._log._count_lost(len(records))
            self.failures.failed("converting records to Arrow", exc, len(records))
            return True
        try:
            if self._writer is not None and not table.schema.equals(self._schema):
                self._finish()
            if self._writer is None:
                self._open(table.schema)
            self._writer.write_table(table)
        except Exception as exc:  # noqa: BLE001  a full disk, a lost mount, ...
            self._abandon("writing", exc, len(records))
            return False
        self._rows_in_file += len(records)
        if self._sink.tell() >= self._log.config.max_file_bytes:
            return self.close_file()
        return True

    def rotate_if_old(self) -> None:
        if (
            self._writer is not None
            and self._log._clock.monotonic_s() - self._opened_s >= self._log.config.max_file_age_s
        ):
            self.close_file()

    def close_file(self) -> bool:
        """Close and publish the open file. False if that failed (the file is abandoned)."""
        if self._writer is None:
            return True
        try:
            self._finish()
        except Exception as exc:  # noqa: BLE001
            self._abandon("closing the file", exc, 0)
            return False
        return True

    def stopped(self) -> None:
        """The log is closing: end a failure spell with its count."""
        self.failures.ended("closed")

    def _open(self, schema: Any) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq  # type: ignore[import-untyped]

        log = self._log
        log.directory.mkdir(parents=True, exist_ok=True)
        stamp = datetime.fromtimestamp(log._clock.wall_ms() / 1000, timezone.utc)
        self._partial = self._create_locked(f"{log.model}-v{log.version}-{stamp:%Y%m%dT%H%M%S}")
        self._sink = pa.OSFile(str(self._partial), "wb")  # the file we created and lock
        self._writer = pq.ParquetWriter(self._sink, schema, compression="zstd")
        self._schema = schema
        self._rows_in_file = 0
        self._opened_s = log._clock.monotonic_s()

    def _create_locked(self, prefix: str) -> Path:
        """Create a new ``<prefix>-<pid>-<seq>.parquet.partial`` and lock it (``_lock_fd``).

        Never opens an existing file (another writer's, whose name matches when the pid
        does). A clean-up running at the same moment can lock and delete the file between its
        creation and our lock: then the lock fails, or the name no longer leads to our file,
        and the next name is tried. Raises OSError when every name failed.
        """
        directory = self._log.directory
        for _ in range(_NAME_ATTEMPTS):
            self._seq += 1
            path = directory / f"{prefix}-{os.getpid()}-{self._seq:04d}.parquet{PARTIAL_SUFFIX}"
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:  # a clean-up holds it and deletes it
                    os.close(fd)
                    continue
                except OSError as exc:  # no locks here: only the age rule protects the file
                    self._warn_unlockable(exc)
                if not _names(path, fd):  # deleted by a clean-up before we locked it
                    os.close(fd)
                    continue
            except BaseException:  # an unexpected failure: no descriptor or empty file left
                os.close(fd)
                path.unlink(missing_ok=True)
                raise
            self._lock_fd = fd
            return path
        raise OSError(errno.EEXIST, f"no free file name after {_NAME_ATTEMPTS} tries", str(path))

    def _warn_unlockable(self, exc: OSError) -> None:
        if not self._lock_warned:
            self._lock_warned = True
            _log.warning(
                "prediction logs in %s cannot be locked (%s): files left there by killed "
                "writers cannot be told from open ones, so they are never cleaned up",
                str(self._log.directory),
                exc.strerror or exc,
            )

    def _unlock(self) -> None:
        """Release the lock (after the file was renamed or deleted)."""
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:  # Linux frees the descriptor (and the lock) anyway
                pass

    def _finish(self) -> None:
        """Write the footer and rename the file to ``*.parquet``; raises on failure."""
        assert self._partial is not None
        self._writer.close()
        self._sink.close()
        final = self._partial.with_suffix("")  # drop ".partial"
        os.replace(self._partial, final)
        self._unlock()
        self._log.files.append(final)
        self._log._count_written(self._rows_in_file)
        self._writer = self._sink = self._schema = self._partial = None
        self._rows_in_file = 0
        self._retry_delay_s = self._log.config.retry_initial_s
        self.failures.ended(f"wrote {final.name}")

    def _abandon(self, what: str, exc: BaseException, lost: int) -> None:
        """Drop the open file after a failure: never published; its rows count as lost."""
        lost += self._rows_in_file
        partial = self._partial
        if self._writer is not None:
            self._writer.is_open = False  # no footer: the file is not complete
        if self._sink is not None:
            try:
                self._sink.close()
            except Exception:  # noqa: BLE001, S110  already failed; the file goes anyway
                pass
        self._writer = self._sink = self._schema = self._partial = None
        self._rows_in_file = 0
        if partial is not None:
            try:
                partial.unlink(missing_ok=True)
            except OSError as unlink_exc:
                _log.warning(
                    "could not delete the abandoned prediction log %s (%s); it keeps its "
                    "%s name, which readers skip (and a later clean-up removes)",
                    str(partial),
                    unlink_exc.strerror or unlink_exc,
                    PARTIAL_SUFFIX,
                )
        self._unlock()  # only now: a file left in place is then a later clean-up's to remove
        self._log._count_lost(lost)
        self.failures.failed(what, exc, lost)
        config = self._log.config
        self._retry_at_s = self._log._clock.monotonic_s() + self._retry_delay_s
        self._retry_delay_s = min(self._retry_delay_s * 2, config.retry_max_s)


def _names(path: Path, fd: int) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (not deleted or replaced)."""
    try:
        now = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (now.st_dev, now.st_ino) == (opened.st_dev, opened.st_ino)


def remove_orphaned_partials(
    directory: str | Path, *, min_age_s: float = ORPHAN_MIN_AGE_S
) -> list[tuple[Path, int]]:
    """Remove the ``*.parquet.partial`` files of ``directory`` that no live writer holds.

    A writer holds an exclusive ``flock`` on its open file until it renames or deletes it,
    and a process that dies loses its locks: a file we can lock, and that nothing has written
    to for ``min_age_s`` (see ORPHAN_MIN_AGE_S: the lock alone does not cover writers that
    hold none), was left by a writer that died. Its records are lost anyway (no Parquet
    footer). Only names the writer gives are
    considered; a file we cannot open, lock or check is kept. Never waits for a lock (a
    held file is skipped at once); logs only files it failed to delete. Returns ``(path, size
    in bytes)`` of each file removed, for the caller to report. See the module docstring for
    the limits (filesystems whose locks are not shared between hosts).
    """
    try:
        candidates = sorted(Path(directory).glob(f"*.parquet{PARTIAL_SUFFIX}"))
    except OSError:
        return []
    removed = []
    for path in candidates:
        if not _FILE_NAME.match(path.name):
            continue
        size = _remove_if_unheld(path, min_age_s)
        if size is not None:
            removed.append((path, size))
    return removed


def _remove_if_unheld(path: Path, min_age_s: float) -> int | None:
    """Delete ``path`` if we can lock it and it was last written ``min_age_s`` ago or more;
    its size, or None when it was kept."""
    try:
        # Read-write: on NFS an exclusive lock needs a file open for writing.
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:  # gone (completed meanwhile), a symlink, or not ours to check
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held by a live writer (or no locks here: cannot tell, keep it)
            return None
        # Locked after its writer renamed it and let go: the name is gone or someone else's.
        if not _names(path, fd):
            return None
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or time.time() - info.st_mtime < min_age_s:
            return None
        try:
            # Still locked: a writer that just created this name finds it locked, or gone.
            os.unlink(path)
        except OSError as exc:
            _log.warning(
                "could not remove the dead prediction log %s: %s",
                str(path),
                exc.strerror or exc,
            )
            return None
        return int(info.st_size)
    finally:
        os.close(fd)


def _expected_failure(exc: BaseException) -> bool:
    """An I/O error (a full disk, ...) rather than a bug: logged without a traceback."""
    import pyarrow as pa

    return isinstance(exc, (OSError, pa.ArrowException))


def _one_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or ["no details"])[0]


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
            values, raw = _list_columns(arrays)
            columns[f"{prefix}.{name}"] = values
            columns[f"{prefix}.{name}.shape"] = pa.array(
                [list(a.shape) for a in arrays], pa.list_(pa.int64())
            )
            if raw is not None:
                columns[f"{prefix}.{name}.bytes"] = raw
    table = pa.table(columns)
    return table.replace_schema_metadata(
        {
            "engine.sample_rate": str(log.config.sample_rate),
            "engine.model": log.model,
            "engine.version": log.version,
        }
    )


def _list_columns(arrays: list[np.ndarray]) -> tuple[Any, Any]:
    """A tensor's elements as a list column, and for strings its ``.bytes`` column (else None).

    String elements that are valid UTF-8 are strings; any other is null there and its exact
    bytes are in the ``.bytes`` column at the same position (a row without any: null), so
    nothing is logged altered and readers of plain strings keep working.
    """
    import pyarrow as pa

    sizes = np.array([a.size for a in arrays], dtype=np.int64)
    offsets = pa.array(np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32))
    flat = [a.reshape(-1) for a in arrays]
    if arrays[0].dtype.kind not in "OSU":
        values = pa.array(np.concatenate(flat) if flat else np.array([]))
        return pa.ListArray.from_arrays(offsets, values), None
    texts: list[str | None] = []
    raw_rows: list[list[bytes | None] | None] = []
    for a in flat:
        pairs = [_text_or_bytes(v) for v in a.tolist()]
        texts.extend(text for text, _ in pairs)
        binary = any(raw is not None for _, raw in pairs)
        raw_rows.append([raw for _, raw in pairs] if binary else None)
    return (
        pa.ListArray.from_arrays(offsets, pa.array(texts, pa.string())),
        pa.array(raw_rows, pa.list_(pa.binary())),
    )


def _text_or_bytes(value: Any) -> tuple[str | None, bytes | None]:
    """(the element as text, None), or (None, its bytes) when they are not valid UTF-8."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8"), None
        except UnicodeDecodeError:
            return None, value
    text = str(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # The core hands BYTES over as str, bytes that are not UTF-8 as surrogate escapes.
        # Other lone surrogates were never bytes: this raises, and the record counts as lost.
        return None, text.encode("utf-8", "surrogateescape")
    return text, None


# --- reading --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogFolder:
    """What :func:`scan_prediction_logs` found in a folder.

    ``table``: the matching rows of every complete log (None when no complete file matched);
    ``files``: the complete logs read; ``skipped``: ``*.parquet`` files that are not valid
    Parquet (truncated, or damaged), each with the reason, left out with a warning;
    ``open_files``: ``*.parquet.partial`` files, not readable yet: being written by a running
    server (closed within its ``max_file_age_s``), or left by one that stopped abruptly.
    """

    table: Any
    files: tuple[Path, ...]
    skipped: tuple[tuple[Path, str], ...]
    open_files: tuple[Path, ...]


def read_prediction_logs(
    directory: str | Path, *, since_ms: int | None = None, version: str | None = None
) -> Any:
    """All complete ``*.parquet`` logs of a folder as one pyarrow Table (None if there are none).

    See :func:`scan_prediction_logs`, whose ``table`` this is.
    """
    return scan_prediction_logs(directory, since_ms=since_ms, version=version).table


def scan_prediction_logs(
    directory: str | Path, *, since_ms: int | None = None, version: str | None = None
) -> LogFolder:
    """Read the complete logs of a folder (rows of ``version`` only, at or after ``since_ms``).

    With ``version``, only that version's files are read (a file's ``engine.version``
    metadata, else its rows' ``version``), so versions with other tensors or dtypes do not
    matter. Files whose schemas differ are combined with missing columns as nulls and types
    widened where that loses nothing (float32 and float64 -> float64); files that still
    disagree raise InvalidConfigError naming the column and two of the files. A ``*.parquet``
    that is not valid Parquet is skipped with a warning naming it; a valid Parquet file that
    is not a prediction log raises InvalidConfigError naming it (the folder is not a logs
    folder).
    """
    import pyarrow as pa
    import pyarrow.compute as pc  # type: ignore[import-untyped]

    folder = Path(directory)
    wanted = None if version is None else str(version)
    tables: list[Any] = []
    read: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for path in sorted(folder.glob("*.parquet")):
        if wanted is not None and _named_version(path) not in (None, wanted):
            continue
        table = _read_log(path, wanted, skipped)
        if table is None:
            continue
        if wanted is not None:
            table = table.filter(pc.equal(table["version"], wanted))
        if since_ms is not None:
            cutoff = pa.scalar(since_ms, pa.timestamp("ms", tz="UTC"))
            table = table.filter(pc.greater_equal(table["timestamp"], cutoff))
        read.append(path)
        tables.append(table)
    open_files = [
        p
        for p in sorted(folder.glob(f"*.parquet{PARTIAL_SUFFIX}"))
        if (wanted is None or _named_version(p) in (None, wanted))
        and (since_ms is None or _mtime_ms(p) >= since_ms)
    ]
    return LogFolder(_concat(tables, read), tuple(read), tuple(skipped), tuple(open_files))


def tensor_values(table: Any, column: str) -> list[list[Any] | None]:
    """The elements of a tensor column (``input.<name>`` or ``output.<name>``), row by row
    (flattened; a row without the tensor is None). BYTES elements that are not valid UTF-8
    come back as the exact ``bytes`` from ``<column>.bytes``; the rest as the column has them.
    """
    rows: list[list[Any] | None] = table.column(column).to_pylist()
    if f"{column}.bytes" not in table.column_names:
        return rows
    for row, raw in zip(rows, table.column(f"{column}.bytes").to_pylist()):
        if row is not None and raw is not None:
            for i, value in enumerate(raw):
                if value is not None:
                    row[i] = value
    return rows


def _named_version(path: Path) -> str | None:
    """The version in a log file's name (None if the name is not the writer's)."""
    match = _FILE_NAME.match(path.name)
    return match["version"] if match else None


def _mtime_ms(path: Path) -> int:
    try:
        return int(path.stat().st_mtime * 1000)
    except OSError:  # gone meanwhile (closed and renamed)
        return 0


def _read_log(path: Path, version: str | None, skipped: list[tuple[Path, str]]) -> Any:
    """One log file (None: not this version, or skipped as not valid Parquet)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        with pq.ParquetFile(path) as parquet:
            meta = parquet.schema_arrow.metadata or {}
            named = meta.get(b"engine.version")
            if version is not None and named is not None and named.decode() != version:
                return None
            table = parquet.read()
    except (pa.ArrowException, OSError) as exc:
        reason = f"{type(exc).__name__}: {_one_line(exc)}"
        _log.warning("skipping prediction log %r: not valid Parquet (%s)", str(path), reason)
        skipped.append((path, reason))
        return None
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
    ids = schema.get_field_index("request_id")
    if ids >= 0 and pa.types.is_string(schema.field(ids).type):
        # Logs written before null ids have "" for a request without one.
        column = table.column(ids)
        no_id = pc.equal(column, "")
        table = table.set_column(ids, "request_id", pc.if_else(no_id, None, column))
    return table


def _concat(tables: list[Any], paths: list[Path]) -> Any:
    import pyarrow as pa

    if not tables:
        return None
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowTypeError, pa.ArrowInvalid) as exc:
        seen: dict[str, tuple[Any, Path]] = {}
        for table, path in zip(tables, paths):
            for f in table.schema:
                first = seen.setdefault(f.name, (f.type, path))
                if first[0] == f.type:
                    continue
                try:
                    pa.unify_schemas(
                        [pa.schema([(f.name, first[0])]), pa.schema([f])],
                        promote_options="permissive",
                    )
                except (pa.ArrowTypeError, pa.ArrowInvalid):
                    raise InvalidConfigError(
                        f"prediction logs disagree on column {f.name!r}: {first[0]} in "
                        f"{str(first[1])!r}, {f.type} in {str(path)!r}; read one version at "
                        f"a time (report MODEL:VERSION) or move one of the files away"
                    ) from None
        raise InvalidConfigError(
            f"cannot combine the prediction logs of {str(paths[0].parent)!r}: {_one_line(exc)}"
        ) from None
