"""Lineage helpers: fingerprints of training data and the training code's git revision."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["code_revision", "fingerprint_array", "fingerprint_file"]


def fingerprint_file(path: str | Path) -> str:
    """``sha256:<hex>`` of a data file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def fingerprint_array(array: Any) -> str:
    """``sha256:<hex>`` of an array's dtype, shape and C-order bytes.

    Dtype and shape are hashed too, so the same bytes viewed differently fingerprint apart.
    """
    arr = np.ascontiguousarray(array)
    if arr.dtype == object:
        raise TypeError("cannot fingerprint an object array; convert it to a fixed dtype first")
    digest = hashlib.sha256(f"{arr.dtype.str}{arr.shape}".encode())
    digest.update(arr.data)  # hashlib reads the contiguous buffer, no copy
    return f"sha256:{digest.hexdigest()}"


def code_revision(path: str | Path = ".") -> str | None:
    """The git commit checked out at ``path`` (``+dirty`` if modified), or None outside git."""
    try:
        head = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+dirty" if dirty else head
