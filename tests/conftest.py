"""Shared fixtures: generated models (see factories.py) in a session-wide temp folder."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# Load the native core before anything imports grpc_tools: the other order is refused with an
# ImportError (two C++ protobuf runtimes clash; see engine/_load_order.py).
import engine._core  # noqa: F401

sys.path.insert(0, str(Path(__file__).parent))

import factories


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def mlp_path(model_dir: Path) -> Path:
    return factories.mlp(model_dir / "mlp.onnx")


@pytest.fixture(scope="session")
def slow_path(model_dir: Path) -> Path:
    return factories.slow_mlp(model_dir / "slow.onnx")


@pytest.fixture(scope="session")
def multi_io_path(model_dir: Path) -> Path:
    return factories.multi_io(model_dir / "multi_io.onnx")


@pytest.fixture(scope="session")
def string_path(model_dir: Path) -> Path:
    return factories.string_lookup(model_dir / "strings.onnx")


@pytest.fixture(scope="session")
def poison_path(model_dir: Path) -> Path:
    return factories.poison_gather(model_dir / "poison.onnx")


@pytest.fixture(scope="session")
def fixed_path(model_dir: Path) -> Path:
    return factories.fixed_shape(model_dir / "fixed.onnx")
