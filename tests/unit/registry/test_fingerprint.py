from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import numpy as np
import pytest

from engine.registry import code_revision, fingerprint_array, fingerprint_file


def test_file_fingerprint_is_sha256_of_bytes(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(b"a,b\n1,2\n")
    assert fingerprint_file(path) == "sha256:" + hashlib.sha256(b"a,b\n1,2\n").hexdigest()


def test_array_fingerprint_depends_on_values_dtype_and_shape() -> None:
    a = np.arange(6, dtype=np.float32)
    assert fingerprint_array(a) == fingerprint_array(a.copy())
    assert fingerprint_array(a) != fingerprint_array(a.reshape(2, 3))
    assert fingerprint_array(a) != fingerprint_array(a.astype(np.float64))
    assert fingerprint_array(a.reshape(2, 3).T) == fingerprint_array(a.reshape(2, 3).T.copy())
    assert fingerprint_array(np.array(True)).startswith("sha256:")
    with pytest.raises(TypeError, match="object array"):
        fingerprint_array(np.array(["a"], dtype=object))


def test_code_revision_in_and_outside_git(tmp_path: Path) -> None:
    assert code_revision(tmp_path) is None
    run = lambda *a: subprocess.run(
        ["git", "-C", str(tmp_path), *a], check=True, capture_output=True
    )
    run("init", "-q")
    (tmp_path / "f").write_text("1")
    run("add", "f")
    run("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "x")
    head = subprocess.run(
        ["git", "-C", str(tmp_path), "rev-parse", "HEAD"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert code_revision(tmp_path) == head
    (tmp_path / "f").write_text("2")
    assert code_revision(tmp_path) == head + "+dirty"
