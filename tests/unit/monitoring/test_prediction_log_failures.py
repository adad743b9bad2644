"""The prediction log when writes really fail (predlog_failure_scenario.py, in a child process):
a file-size limit everywhere, and a full tmpfs where this test may mount one (root).

What must hold, whatever the cause: every record reaches the queue (serving never notices);
a file that failed is never published as ``*.parquet`` and no ``*.partial`` is left behind;
every record not in a complete file is counted in ``dropped_write_error`` (exported as
``where="write_error"``); ``records`` counts exactly the rows that can be read back; writing
resumes with a new file once the back-off is over; one ERROR per failure spell, no traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SCENARIO = Path(__file__).with_name("predlog_failure_scenario.py")


def run_scenario(mode: str, directory: Path) -> tuple[dict[str, Any], str]:
    done = subprocess.run(
        [sys.executable, str(SCENARIO), mode, str(directory)],
        capture_output=True,  # pipes: RLIMIT_FSIZE does not apply to them
        text=True,
        timeout=120,
        cwd=SCENARIO.parent,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 256 KB tmpfs, unmounted afterwards (skips where mounting is not allowed)."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


@pytest.mark.parametrize("mode", ["fsize", "tmpfs"])
def test_write_failures_are_counted_never_published_and_recovered_from(
    mode: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    root = request.getfixturevalue("tmpfs") if mode == "tmpfs" else tmp_path
    out, stderr = run_scenario(mode, root / "plog")

    def phase(name: str) -> tuple[int, int, list[str]]:
        c = out[name]["counters"]
        assert c["dropped_writer"] == 0 and c["dropped_core"] == 0
        return c["records"], c["dropped_write_error"], out[name]["files"]

    assert all(out["queued"]) and len(out["queued"]) == 135
    records, lost, files = phase("A")
    assert (records, lost) == (30, 0) and len(files) == 1 and files[0].endswith(".parquet")
    first = files[0]
    records, lost, files = phase("B")
    assert (records, lost) == (30, 0) and files[1].endswith(".parquet.partial")
    # The write failed: the open file (25 rows) and the 10 records are lost, the file deleted;
    # 30 more are dropped while the writer backs off.
    assert phase("C-backoff") == (30, 65, [first])
    assert phase("C-retry") == (30, 75, [first])  # a new file, failed too, deleted too
    records, lost, files = phase("D")  # space is back: a new file, complete
    assert (records, lost) == (50, 75) and len(files) == 2 and files[1].endswith(".parquet")
    # Rows in an open file when the disk fills before shutdown: not published on close.
    assert phase("E") == (50, 85, files)
    assert out["rows"] == [f"r{i}" for i in range(30)] + [f"r{i}" for i in range(105, 125)]
    assert 'engine_prediction_log_records_total{model="m",version="1"} 50.0' in out["metrics"]
    assert (
        'engine_prediction_log_dropped_total{model="m",version="1",where="write_error"} 85.0'
        in out["metrics"]
    )
    lines = stderr.splitlines()
    errors = [line for line in lines if line.startswith("ERROR")]
    assert len(errors) == 2, stderr  # one per failure spell, not one per record
    reason = "File too large" if mode == "fsize" else "No space left on device"
    assert all(reason in e and "writing failed: OSError" in e for e in errors)
    assert "35 record(s) lost" in errors[0] and str(root / "plog") in errors[0]
    assert any("after 30.0s of write failures; 75 record(s) lost" in line for line in lines)
    assert any("closed after 0.0s of write failures; 10 record(s) lost" in line for line in lines)
    assert "Traceback" not in stderr
