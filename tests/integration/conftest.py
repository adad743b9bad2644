"""Fixtures for the integration tests: a generated model repository and the shared server."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import tritonclient.grpc as grpcclient

sys.path.insert(0, str(Path(__file__).parent))

from _models import build_repository
from _server import ServerProcess, start_server


@pytest.fixture(scope="session")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_repository(tmp_path_factory.mktemp("repository"))


@pytest.fixture(scope="session")
def server(repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The shared plain server over the test repository."""
    srv = start_server(["--model-repository", str(repository)], tmp_path_factory.mktemp("srv"))
    yield srv
    assert srv.terminate() == 0, srv.stderr()


@pytest.fixture
def client(server: ServerProcess) -> Iterator[grpcclient.InferenceServerClient]:
    c = grpcclient.InferenceServerClient(server.url)
    yield c
    c.close()
