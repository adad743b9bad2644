"""Benchmarks: never part of the test run. Each prints its ratio to the baseline it ran beside.

Run with `make bench` or `.venv/bin/python -m pytest benchmarks/FILE -s`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).parent))

import factories


@pytest.fixture(scope="session")
def mlp_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The benchmark MLP of the issues: 32 -> 256 -> 256 -> 1, float32, dynamic batch."""
    return factories.mlp(tmp_path_factory.mktemp("bench") / "mlp.onnx")
