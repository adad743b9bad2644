"""A registry home or SQLite database the process cannot write: a RegistryError that names the
path and why, never SQLite's bare "unable to open database file", and nothing lost.

Tests run as root, where a mode of 0o555 denies nothing; as root a path is made immutable
(``chattr +i``), which the kernel refuses to write even for root (EPERM), as it would a
read-only mount. Other users get ``chmod``. Either way the test first checks that writing is
really denied, and skips, saying why, when it cannot be.
"""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine.errors import RegistryError
from engine.registry import Registry

ReadOnly = Callable[[Path], None]


@pytest.fixture
def read_only() -> Iterator[ReadOnly]:
    """``read_only(path)`` denies writing ``path`` (a file, or a folder's entries) until the
    test ends."""
    undo: list[Callable[[], None]] = []

    def make(path: Path) -> None:
        if os.geteuid() == 0:
            done = subprocess.run(
                ["chattr", "+i", str(path)], capture_output=True, text=True, check=False
            )
            if done.returncode != 0:
                pytest.skip(f"running as root and chattr +i fails here: {done.stderr.strip()}")
            undo.append(lambda: subprocess.run(["chattr", "-i", str(path)], check=True))
        else:
            mode = path.stat().st_mode
            path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
            undo.append(lambda: path.chmod(mode))
        if os.access(path, os.W_OK):
            pytest.skip(f"could not deny writing {path} to this process")

    yield make
    for step in reversed(undo):
        step()


def _blobs(home: Path) -> list[Path]:
    return sorted((home / "artifacts" / "sha256").rglob("*"))


def test_a_home_that_cannot_be_created_says_so(tmp_path: Path, read_only: ReadOnly) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("")
    with pytest.raises(RegistryError, match="cannot create registry home .*: Not a directory"):
        Registry(home=a_file / "home")
    parent = tmp_path / "parent"
    parent.mkdir()
    read_only(parent)
    with pytest.raises(RegistryError, match="cannot create registry home '.*/parent/home'"):
        Registry(home=parent / "home")


def test_a_new_database_in_an_unwritable_home_says_so(tmp_path: Path, read_only: ReadOnly) -> None:
    home = tmp_path / "home"
    home.mkdir()
    read_only(home)
    with pytest.raises(RegistryError) as info:
        Registry(home=home)
    message = str(info.value)
    assert f"cannot create {str(home / 'registry.db')!r}" in message
    assert f"directory {str(home)!r} is not writable" in message


def test_a_sqlite_url_in_a_missing_folder_says_so(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("")
    for db, why in (
        (tmp_path / "nope" / "r.db", f"directory {str(tmp_path / 'nope')!r} does not exist"),
        (a_file / "r.db", f"{str(a_file)!r} is not a directory"),
    ):
        with pytest.raises(RegistryError) as info:
            Registry(home=tmp_path / "home", url=f"sqlite:///{db}")
        assert f"cannot create {str(db)!r}: {why}" in str(info.value)


def test_register_into_a_read_only_database_file_says_so_and_keeps_it(
    home: Path, onnx_model: Callable[..., Path], read_only: ReadOnly
) -> None:
    with Registry(home=home) as registry:
        registry.register("m", onnx_model(bias=1.0))
    blobs = _blobs(home)
    read_only(home / "registry.db")
    with Registry(home=home) as registry:
        assert [v.version for v in registry.versions("m")] == [1]  # reads still work
        with pytest.raises(RegistryError) as info:
            registry.register("m", onnx_model(bias=2.0))
        assert f"{str(home / 'registry.db')!r} is not writable" in str(info.value)
        assert [v.version for v in registry.versions("m")] == [1]
    assert _blobs(home) == blobs  # the new file's blob was not kept
    assert list((home / "artifacts" / "tmp").glob("*.part")) == []


def test_a_read_only_home_whose_journal_files_are_gone_says_sqlite_must_create_them(
    home: Path, onnx_model: Callable[..., Path], read_only: ReadOnly
) -> None:
    """SQLite removes registry.db-wal and -shm when the last connection closes; reading a WAL
    database needs them (or the right to create them), so a read-only home cannot be read."""
    with Registry(home=home) as registry:
        registry.register("m", onnx_model())
    assert not (home / "registry.db-wal").exists()
    read_only(home)
    with pytest.raises(RegistryError) as info:
        Registry(home=home)
    message = str(info.value)
    assert "registry.db-wal and registry.db-shm" in message
    assert f"directory {str(home)!r} is not writable" in message


def test_a_read_only_home_with_its_journal_files_can_be_read(
    home: Path, onnx_model: Callable[..., Path], read_only: ReadOnly
) -> None:
    with Registry(home=home) as holder:
        holder.register("m", onnx_model(bias=1.0))
        # While a connection is open the journal files exist; a read-only home keeps them.
        read_only(home / "registry.db")
        read_only(home)
        assert (home / "registry.db-wal").exists() and (home / "registry.db-shm").exists()
        with Registry(home=home) as registry:
            assert [v.version for v in registry.versions("m")] == [1]
            with pytest.raises(RegistryError, match="'.*registry.db' is not writable"):
                registry.register("m", onnx_model(bias=2.0))
