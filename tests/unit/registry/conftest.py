"""Registry fixtures: a Registry per test on SQLite and on a real PostgreSQL server.

The PostgreSQL server is started once per session from Debian's ``postgresql`` binaries in a
temp folder (initdb + pg_ctl, on a free loopback port, as the ``postgres`` user when the tests
run as root). Each test gets its own schema. The PostgreSQL cases skip, saying why, only
when no server can be started.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import onnx
import pytest
import sqlalchemy as sa
from onnx import TensorProto, helper, numpy_helper

from engine.registry import Registry
from engine.registry.database import normalise_url

BACKENDS = ["sqlite", "postgresql"]

OnnxFactory = Callable[..., Path]


def make_add_model(
    path: Path,
    *,
    bias: float = 1.0,
    width: int = 4,
    dims: Sequence[int | str] = ("batch", 4),
    elem_type: int = TensorProto.FLOAT,
    external_data: bool = False,
) -> Path:
    """A tiny ``y = x + bias`` model; a different ``bias`` gives different bytes (and hash)."""
    x = helper.make_tensor_value_info("x", elem_type, list(dims))
    y = helper.make_tensor_value_info("y", elem_type, list(dims))
    b = numpy_helper.from_array(
        np.full(width, bias, dtype=helper.tensor_dtype_to_np_dtype(elem_type)), "b"
    )
    graph = helper.make_graph([helper.make_node("Add", ["x", "b"], ["y"])], "add", [x], [y], [b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    if external_data:
        onnx.save(
            model,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=path.name + ".data",
            size_threshold=0,
        )
    else:
        onnx.save(model, str(path))
    return path


@pytest.fixture
def onnx_model(tmp_path: Path) -> OnnxFactory:
    """Factory: ``onnx_model("name.onnx", bias=2.0)`` writes a tiny Add model under tmp_path."""
    counter = iter(range(1_000_000))

    def make(name: str | None = None, **kwargs: object) -> Path:
        filename = name or f"model-{next(counter)}.onnx"
        return make_add_model(tmp_path / "models" / filename, **kwargs)  # type: ignore[arg-type]

    return make


def _pg_bindir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    def __init__(self, bindir: Path, root: Path, run_as: list[str]) -> None:
        self.bindir, self.root, self.run_as = bindir, root, run_as
        self.data = root / "data"
        self.port = _free_port()

    def _run(self, *args: str) -> None:
        subprocess.run([*self.run_as, *args], check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "engine",
            "--no-sync",
            "-E",
            "UTF8",
        )
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            f"-c fsync=off -c max_connections=50"
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-t",
            "30",
            "start",
        )

    def stop(self) -> None:
        subprocess.run(
            [
                *self.run_as,
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            capture_output=True,
            timeout=60,
            check=False,
        )

    def url(self, schema: str) -> str:
        # Each test gets its own schema (far cheaper than a database) via search_path.
        return (
            f"postgresql+psycopg://engine@127.0.0.1:{self.port}/postgres"
            f"?options=-csearch_path%3D{schema}"
        )

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=engine dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(sql)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install 'engine[postgres]')")
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL binaries not found (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="engine-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        # initdb refuses to run as root; the server runs as the package's 'postgres' user.
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(root, ignore_errors=True)
            pytest.skip("running as root and there is no 'postgres' user to run PostgreSQL")
        os.chown(root, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    server = PostgresServer(bindir, root, run_as)
    try:
        server.start()
    except (subprocess.SubprocessError, OSError) as exc:
        log = root / "server.log"
        detail = log.read_text()[-500:] if log.exists() else getattr(exc, "stderr", b"")
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"could not start PostgreSQL from {bindir}: {exc}; {detail!r}")
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def registry_url(backend: str, request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None for SQLite under the test's home; a fresh, empty schema's URL for PostgreSQL."""
    if backend == "sqlite":
        yield None
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    server.admin(f"CREATE SCHEMA {schema}")
    yield server.url(schema)
    server.admin(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


RegistryFactory = Callable[[], Registry]


@pytest.fixture
def open_registry(home: Path, registry_url: str | None) -> Iterator[RegistryFactory]:
    """Opens more Registry instances on the same store (as other processes would)."""
    opened: list[Registry] = []

    def make() -> Registry:
        registry = Registry(home=home, url=registry_url)
        opened.append(registry)
        return registry

    yield make
    for registry in opened:
        registry.close()


@pytest.fixture
def registry(open_registry: RegistryFactory) -> Registry:
    return open_registry()


RawSql = Callable[..., None]


@pytest.fixture
def raw_sql(home: Path, registry_url: str | None) -> RawSql:
    """Runs SQL statements, in one transaction, on the test's registry database outside the
    engine (as an operator or an older release would): Python's sqlite3 on SQLite, a plain
    SQLAlchemy connection on PostgreSQL."""

    def run(*statements: str) -> None:
        if registry_url is None:
            with sqlite3.connect(home / "registry.db") as conn:
                for statement in statements:
                    conn.execute(statement)
            conn.close()
            return
        engine = sa.create_engine(normalise_url(registry_url))
        try:
            with engine.begin() as conn:
                for statement in statements:
                    conn.exec_driver_sql(statement)
        finally:
            engine.dispose()

    return run
