"""A shared artifact store at an fsspec URL (engine/registry/remote_artifacts.py).

Runs against real fsspec backends: the local filesystem through a ``file://`` URL (a folder
apart from every ENGINE_HOME, as NFS would be) and fsspec's ``memory://`` filesystem. Small
MemoryFileSystem subclasses stand in for a store that fails (network, permission) and one that
reports no modification times. "Another machine" is a Registry with another ENGINE_HOME (an
empty cache) on the same database and artifacts URL.
"""

from __future__ import annotations

import errno
import io
import os
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

import engine
from engine.cli import main
from engine.errors import ModelLoadError, RegistryError
from engine.registry import Registry
from engine.registry.remote_artifacts import RemoteArtifactStore
from engine.settings import get_settings

fsspec = pytest.importorskip("fsspec", reason="fsspec (the 'objectstore' extra) is not installed")
from fsspec.core import url_to_fs
from fsspec.implementations.memory import MemoryFileSystem

STORES = ["file", "memory"]
GRACE_S = 3600.0


class FailingFileSystem(MemoryFileSystem):
    """The memory filesystem, except that the calls named in ``failing`` raise as an
    unreachable or forbidding store would, naming the key (which holds the URL's user:password,
    as some backends' keys do)."""

    protocol = "enginefail"
    failing: ClassVar[set[str]] = set()

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        return super()._strip_protocol(str(path).removeprefix("enginefail://"))

    def _fail(self, call: str, path: Any) -> None:
        if call in self.failing:
            raise ConnectionError(f"connection refused while reaching {path}")

    def put_file(self, lpath: Any, rpath: Any, *args: Any, **kwargs: Any) -> Any:
        self._fail("put_file", rpath)
        return super().put_file(lpath, rpath, *args, **kwargs)

    def _open(self, path: Any, *args: Any, **kwargs: Any) -> Any:
        self._fail("open", path)
        opened = super()._open(path, *args, **kwargs)
        if "read" in self.failing:
            return _ResetOnRead()
        return opened

    def find(self, path: Any, *args: Any, **kwargs: Any) -> Any:
        self._fail("find", path)
        return super().find(path, *args, **kwargs)


class _ResetOnRead(io.BytesIO):
    """A remote file whose connection drops once the download starts (an OSError)."""

    def read(self, *args: Any) -> bytes:
        raise ConnectionResetError(104, "Connection reset by peer")


class TimelessFileSystem(MemoryFileSystem):
    """The memory filesystem without modification times in info(), as some backends are."""

    protocol = "enginetimeless"

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        return super()._strip_protocol(str(path).removeprefix("enginetimeless://"))

    def info(self, path: Any, **kwargs: Any) -> dict[str, Any]:
        info = dict(super().info(path, **kwargs))
        info.pop("created", None)
        return info

    def find(self, path: Any, *args: Any, **kwargs: Any) -> Any:
        found = super().find(path, *args, **kwargs)
        if isinstance(found, dict):
            return {k: {f: v for f, v in i.items() if f != "created"} for k, i in found.items()}
        return found


fsspec.register_implementation("enginefail", FailingFileSystem, clobber=True)
fsspec.register_implementation("enginetimeless", TimelessFileSystem, clobber=True)


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "file":
        yield f"file://{tmp_path / 'shared-artifacts'}"
        return
    url = f"memory://engine-test-{uuid.uuid4().hex[:12]}/artifacts"
    yield url
    _remove_tree(url)


def _remove_tree(url: str) -> None:
    fs, base = url_to_fs(url)
    if fs.exists(base):
        fs.rm(base, recursive=True)


@pytest.fixture
def db_url(registry_url: str | None, tmp_path: Path) -> str:
    """One database for every "machine" of the test: SQLite in a file apart, or PostgreSQL."""
    return registry_url or f"sqlite:///{tmp_path / 'shared.db'}"


@pytest.fixture
def machines(tmp_path: Path, db_url: str, store_url: str) -> Iterator[Any]:
    """``machines(i)``: a Registry on "machine" i, its own ENGINE_HOME, the shared database
    and artifacts URL."""
    opened: list[Registry] = []

    def make(i: int) -> Registry:
        registry = Registry(home=tmp_path / f"home-{i}", url=db_url, artifacts_url=store_url)
        opened.append(registry)
        return registry

    yield make
    for registry in opened:
        registry.close()


def _remote_blobs(url: str) -> dict[str, str]:
    """sha256 -> key of every blob in the shared store."""
    fs, base = url_to_fs(url)
    return {key.rsplit("/", 1)[-1]: key for key in fs.find(f"{base}/sha256")}


def _rewrite_remote(url: str, sha256: str, data: bytes) -> None:
    fs, _ = url_to_fs(url)
    key = _remote_blobs(url)[sha256]
    fs.rm_file(key)
    fs.pipe_file(key, data)


def _cache_files(home: Path) -> list[Path]:
    return sorted(p for p in (home / "artifact-cache").rglob("*") if p.is_file())


def _flip_first_byte(data: bytes) -> bytes:
    return bytes([data[0] ^ 0xFF]) + data[1:]


def _age_remote(url: str, seconds: float) -> None:
    """Make every file of the shared store ``seconds`` old."""
    fs, base = url_to_fs(url)
    for key in fs.find(base):
        if isinstance(fs, MemoryFileSystem):
            fs.store[key].created = datetime.now(timezone.utc) - timedelta(seconds=seconds)
        else:
            old = time.time() - seconds
            os.utime(key, (old, old))


def _age_cache(home: Path, seconds: float) -> None:
    old = time.time() - seconds
    for path in _cache_files(home):
        os.utime(path, (old, old))


def _predict(model: engine.Model) -> np.ndarray:
    x = np.zeros((2, 4), dtype=np.float32)
    return np.asarray(model.predict({"x": x})["y"])


# ---- register and load ------------------------------------------------------------------


def test_register_then_load_runs_the_model(
    store_url: str, tmp_path: Path, onnx_model, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    with Registry(home=home, artifacts_url=store_url) as registry:
        version = registry.register("m", onnx_model(bias=3.0), alias="production")
        assert registry.artifacts_url == store_url
    assert list(_remote_blobs(store_url)) == [version.sha256]
    assert not (home / "artifacts").exists()  # the local store is not used
    with engine.load("m@production", registry_home=home, artifacts_url=store_url) as model:
        np.testing.assert_allclose(_predict(model), np.full((2, 4), 3.0))


def test_another_machine_loads_from_the_shared_store(
    machines: Any,
    store_url: str,
    db_url: str,
    tmp_path: Path,
    onnx_model,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = onnx_model(bias=5.0)
    version = machines(1).register("m", source, alias="production")
    other = machines(2)
    assert _cache_files(tmp_path / "home-2") == []
    resolved = other.resolve("m@production")
    cached = tmp_path / "home-2" / "artifact-cache" / "sha256" / version.sha256[:2] / version.sha256
    assert resolved.path == cached
    assert resolved.path.read_bytes() == source.read_bytes()
    assert _cache_files(tmp_path / "home-2") == [cached]  # no temp file left
    # engine.load reads the artifacts URL from the environment (Settings).
    monkeypatch.setenv("ENGINE_ARTIFACTS_URL", store_url)
    get_settings.cache_clear()
    with engine.load("m:1", registry_home=tmp_path / "home-3", registry_url=db_url) as model:
        np.testing.assert_allclose(_predict(model), np.full((2, 4), 5.0))


def test_a_home_without_the_url_does_not_see_the_shared_blobs(
    machines: Any, db_url: str, tmp_path: Path, onnx_model
) -> None:
    machines(1).register("m", onnx_model())
    with (
        Registry(home=tmp_path / "home-2", url=db_url) as local_only,
        pytest.raises(ModelLoadError, match="is missing from .*home-2/artifacts/sha256"),
    ):
        local_only.resolve("m:1")


# ---- damaged and missing blobs ------------------------------------------------------------


def test_a_corrupt_remote_blob_is_refused_and_not_cached(
    machines: Any, store_url: str, tmp_path: Path, onnx_model
) -> None:
    source = onnx_model(bias=2.0)
    version = machines(1).register("m", source)
    _rewrite_remote(store_url, version.sha256, _flip_first_byte(source.read_bytes()))
    other = machines(2)
    with pytest.raises(ModelLoadError) as info:
        other.resolve("m:1")
    message = str(info.value)
    assert message.startswith(f"m:1: artifact {version.sha256} is corrupt: its content hashes to")
    assert f"at '{store_url}/sha256/{version.sha256[:2]}/{version.sha256}'" in message
    assert "refusing to load it" in message
    assert _cache_files(tmp_path / "home-2") == []  # nothing kept, nothing half-written


def test_a_remote_blob_of_the_wrong_size_is_refused(
    machines: Any, store_url: str, tmp_path: Path, onnx_model
) -> None:
    source = onnx_model()
    version = machines(1).register("m", source)
    _rewrite_remote(store_url, version.sha256, source.read_bytes() + b"tail")
    with pytest.raises(
        ModelLoadError,
        match=f"artifact {version.sha256} is corrupt: expected {version.size_bytes} bytes, found "
        f"more than {version.size_bytes} at",
    ):
        machines(2).resolve("m:1")
    assert _cache_files(tmp_path / "home-2") == []


def test_a_corrupt_cached_blob_is_refused_then_fetched_again_once_deleted(
    machines: Any, tmp_path: Path, onnx_model, monkeypatch: pytest.MonkeyPatch, store_url: str
) -> None:
    registry = machines(1)
    version = registry.register("m", onnx_model(bias=4.0))
    [cached] = _cache_files(tmp_path / "home-1")  # the registering machine keeps a copy
    good = cached.read_bytes()
    cached.chmod(0o644)
    cached.write_bytes(_flip_first_byte(good))
    with pytest.raises(ModelLoadError) as info:
        registry.resolve("m:1")
    message = str(info.value)
    assert f"artifact {version.sha256} is corrupt: its content hashes to sha256" in message
    assert f"in the local cache at '{cached}'" in message
    assert "delete that file to fetch the blob again" in message
    with pytest.raises(ModelLoadError, match="is corrupt"):
        engine.load(
            "m:1",
            registry_home=tmp_path / "home-1",
            registry_url=registry.url,
            artifacts_url=store_url,
        )
    cached.unlink()
    assert registry.resolve("m:1").path.read_bytes() == good


def test_a_missing_remote_blob_is_refused(
    machines: Any, store_url: str, tmp_path: Path, onnx_model
) -> None:
    version = machines(1).register("m", onnx_model())
    fs, _ = url_to_fs(store_url)
    fs.rm_file(_remote_blobs(store_url)[version.sha256])
    with pytest.raises(
        ModelLoadError,
        match=f"^m:1: artifact {version.sha256} is missing from '{store_url}/sha256'; "
        f"re-register the model$",
    ):
        machines(2).resolve("m:1")
    assert _cache_files(tmp_path / "home-2") == []
    # Registering the same file again uploads the blob again.
    machines(1).register("m", onnx_model())
    assert machines(2).resolve("m:1").path.is_file()


# ---- gc ----------------------------------------------------------------------------------


def test_gc_removes_unreferenced_blobs_only_after_the_grace_period(
    machines: Any, store_url: str, tmp_path: Path, onnx_model
) -> None:
    registry = machines(1)
    kept = registry.register("m", onnx_model(bias=1.0)).sha256
    gone = registry.register("m", onnx_model(bias=2.0)).sha256
    registry.delete("m", 2)
    fs, base = url_to_fs(store_url)
    stale = f"{base}/tmp/123-abc.part"
    if not isinstance(fs, MemoryFileSystem):
        fs.makedirs(f"{base}/tmp", exist_ok=True)
    fs.pipe_file(stale, b"partial upload")
    assert registry.gc(min_age_s=GRACE_S) == []  # everything is younger than the grace period
    assert set(_remote_blobs(store_url)) == {kept, gone}
    _age_remote(store_url, 2 * GRACE_S)
    _age_cache(tmp_path / "home-1", 2 * GRACE_S)
    assert sorted(registry.gc(min_age_s=GRACE_S)) == sorted([gone, "123-abc.part"])
    assert set(_remote_blobs(store_url)) == {kept}
    assert not fs.exists(stale)
    assert [p.name for p in _cache_files(tmp_path / "home-1")] == [kept]  # cache pruned too
    assert machines(2).resolve("m:1").version.sha256 == kept


def test_gc_never_deletes_a_blob_that_a_registration_uploads_again_meanwhile(
    db_url: str, tmp_path: Path, onnx_model, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An old blob's version was deleted. While gc deletes the blob, another machine registers
    the same file again: that registration's upload must not land between gc's last age check
    and its delete, where the delete would remove the blob the new version references. gc
    deletes under the registry's write lock, so the registration waits for it."""
    url = f"memory://engine-test-{uuid.uuid4().hex[:12]}/artifacts"
    cleaner = Registry(home=tmp_path / "home-1", url=db_url, artifacts_url=url)
    other = Registry(home=tmp_path / "home-2", url=db_url, artifacts_url=url)
    try:
        model = onnx_model()
        sha256 = cleaner.register("m", model).sha256
        cleaner.delete("m", 1)
        _age_remote(url, 2 * GRACE_S)
        blob_key = MemoryFileSystem._strip_protocol(_remote_blobs(url)[sha256])
        gc_thread = threading.current_thread()
        registered: list[Any] = []
        registration: list[threading.Thread] = []
        real_rm_file = MemoryFileSystem.rm_file

        def rm_file(self: MemoryFileSystem, path: Any) -> Any:
            if (
                threading.current_thread() is gc_thread
                and MemoryFileSystem._strip_protocol(path) == blob_key
                and not registration
            ):
                # Right before gc's delete: the other machine registers the same bytes. It
                # would finish in well under this second were it not held off.
                thread = threading.Thread(
                    target=lambda: registered.append(other.register("m", model))
                )
                registration.append(thread)
                thread.start()
                thread.join(timeout=1.0)
                assert thread.is_alive(), "the registration ran while gc was deleting"
            return real_rm_file(self, path)

        monkeypatch.setattr(MemoryFileSystem, "rm_file", rm_file)
        assert cleaner.gc(min_age_s=GRACE_S) == [sha256]  # the old copy
        registration[0].join(timeout=60)
        monkeypatch.undo()
        assert [version.version for version in registered] == [2]
        assert sha256 in _remote_blobs(url)  # uploaded again after the delete
        with Registry(home=tmp_path / "home-3", url=db_url, artifacts_url=url) as third:
            assert third.resolve("m:2").path.read_bytes() == model.read_bytes()
    finally:
        cleaner.close()
        other.close()
        _remove_tree(url)


def _owner_files(url: str) -> list[str]:
    fs, base = url_to_fs(url)
    if not fs.exists(f"{base}/registries"):
        return []
    return sorted(str(key).rsplit("/", 1)[-1] for key in fs.ls(f"{base}/registries", detail=False))


def test_gc_refuses_a_store_that_another_registry_uses_too(
    db_url: str, store_url: str, tmp_path: Path, onnx_model
) -> None:
    """Two registries (their own databases) store blobs in one shared store. Each blob is
    unreferenced in one of them, so a gc from either would delete the other's models."""
    with (
        Registry(home=tmp_path / "home-1", url=db_url, artifacts_url=store_url) as ours,
        Registry(
            home=tmp_path / "home-2", url=f"sqlite:///{tmp_path / 'other.db'}",
            artifacts_url=store_url,
        ) as theirs,
    ):
        mine = ours.register("m", onnx_model(bias=1.0)).sha256
        their_blob = theirs.register("t", onnx_model(bias=2.0)).sha256
        assert len(_owner_files(store_url)) == 2  # each recorded itself at its first upload
        _age_remote(store_url, 2 * GRACE_S)
        their_id = (set(_owner_files(store_url)) - {_registry_id(ours)}).pop()
        for claim in (False, True):
            with pytest.raises(RegistryError, match=f"another registry uses it too \\({their_id};"):
                ours.gc(min_age_s=GRACE_S, claim_store=claim)
        assert set(_remote_blobs(store_url)) == {mine, their_blob}  # nothing deleted
        # Once that registry is gone (its file removed, as the message says), gc runs.
        fs, base = url_to_fs(store_url)
        fs.rm_file(f"{base}/registries/{their_id}")
        assert ours.gc(min_age_s=GRACE_S) == [their_blob]
        assert set(_remote_blobs(store_url)) == {mine}


def test_gc_refuses_a_mistyped_registry_on_a_store_holding_blobs(
    db_url: str, store_url: str, tmp_path: Path, onnx_model
) -> None:
    """A mistyped database (a new, empty registry) on a shared store: every blob would be
    unreferenced. gc refuses, naming the registry it would have cleaned for, and deletes
    nothing."""
    with Registry(home=tmp_path / "home-1", url=db_url, artifacts_url=store_url) as owner:
        kept = owner.register("m", onnx_model()).sha256
    _age_remote(store_url, 2 * GRACE_S)
    typo = tmp_path / "typo.db"
    with (
        Registry(home=tmp_path / "home-2", url=f"sqlite:///{typo}", artifacts_url=store_url) as
        mistyped,
        pytest.raises(
            RegistryError,
            match="another registry uses it too .* this registry \\(sqlite:///.*typo.db\\) "
            "does not reference, theirs included. Check that this is the registry you meant",
        ),
    ):
        mistyped.gc(min_age_s=GRACE_S)
    assert list(_remote_blobs(store_url)) == [kept]


def test_gc_on_a_store_filled_before_registries_were_recorded_needs_a_claim(
    db_url: str, store_url: str, tmp_path: Path, onnx_model
) -> None:
    with Registry(home=tmp_path / "home", url=db_url, artifacts_url=store_url) as registry:
        kept = registry.register("m", onnx_model(bias=1.0)).sha256
        gone = registry.register("m", onnx_model(bias=2.0)).sha256
        registry.delete("m", 2)
    fs, base = url_to_fs(store_url)
    fs.rm(f"{base}/registries", recursive=True)  # as an older engine left the store
    _age_remote(store_url, 2 * GRACE_S)
    with Registry(home=tmp_path / "home", url=db_url, artifacts_url=store_url) as registry:
        with pytest.raises(
            RegistryError,
            match="this registry \\(.*\\) never stored an artifact there, so every blob in it "
            "would be deleted.*claim it with 'engine models gc --claim-store'",
        ):
            registry.gc(min_age_s=GRACE_S)
        assert set(_remote_blobs(store_url)) == {kept, gone}
        assert registry.gc(min_age_s=GRACE_S, claim_store=True) == [gone]
        assert _owner_files(store_url) == [_registry_id(registry)]
        assert registry.gc(min_age_s=GRACE_S) == []  # claimed: no claim needed again


def test_gc_of_an_empty_store_needs_no_claim(db_url: str, store_url: str, tmp_path: Path) -> None:
    with Registry(home=tmp_path / "home", url=db_url, artifacts_url=store_url) as registry:
        assert registry.gc(min_age_s=0.0) == []
    assert _owner_files(store_url) == []


def _registry_id(registry: Registry) -> str:
    return registry._db.registry_id()


def test_gc_keeps_blobs_whose_age_the_backend_does_not_report(tmp_path: Path, onnx_model) -> None:
    url = f"enginetimeless://engine-test-{uuid.uuid4().hex[:12]}/artifacts"
    try:
        with Registry(home=tmp_path / "home", artifacts_url=url) as registry:
            sha256 = registry.register("m", onnx_model()).sha256
            registry.delete("m", 1)
            assert registry.gc(min_age_s=0.0) == []
            assert list(_remote_blobs(url)) == [sha256]
            # The same blob, with the times the memory backend reports, goes.
            memory_url = url.replace("enginetimeless://", "memory://")
            with Registry(home=tmp_path / "home", artifacts_url=memory_url) as same_store:
                assert same_store.gc(min_age_s=0.0) == [sha256]
    finally:
        _remove_tree(url.replace("enginetimeless://", "memory://"))


# ---- an unreachable store -----------------------------------------------------------------


def test_a_file_url_that_cannot_be_written_is_a_registry_error(tmp_path: Path, onnx_model) -> None:
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("")
    url = f"file://{a_file}/artifacts"
    with Registry(home=tmp_path / "home", artifacts_url=url) as registry:
        with pytest.raises(
            RegistryError,
            # The first write to the store records this registry in it.
            match=f"artifact store '{url}': cannot record this registry in "
            f"'{url}/registries/[0-9a-f]{{32}}'",
        ):
            registry.register("m", onnx_model())
        assert registry.list() == []  # the transaction rolled back: nothing registered
    assert _cache_files(tmp_path / "home") == []  # the staged copy was discarded


@pytest.fixture
def failing_url() -> Iterator[str]:
    url = f"enginefail://deploy:hunter2@engine-test-{uuid.uuid4().hex[:12]}/artifacts"
    yield url
    FailingFileSystem.failing.clear()
    fs, base = url_to_fs(url)
    if fs.exists(base):
        fs.rm(base, recursive=True)


def test_a_failing_store_is_a_registry_error_naming_the_url_not_its_password(
    failing_url: str, tmp_path: Path, onnx_model
) -> None:
    shown = failing_url.replace("deploy:hunter2@", "")
    registry = Registry(home=tmp_path / "home-1", artifacts_url=failing_url)
    assert registry.artifacts_url == shown
    FailingFileSystem.failing.add("put_file")
    with pytest.raises(RegistryError) as info:
        registry.register("m", onnx_model())
    message = str(info.value)
    assert message.startswith(
        f"artifact store '{shown}': cannot upload an artifact to '{shown}/tmp/"
    )
    assert "ConnectionError: connection refused" in message
    assert "hunter2" not in message and "deploy" not in message
    assert registry.list() == []
    FailingFileSystem.failing.clear()
    registry.register("m", onnx_model())
    registry.close()

    other = Registry(home=tmp_path / "home-2", url=registry.url, artifacts_url=failing_url)
    FailingFileSystem.failing.add("open")
    with pytest.raises(
        RegistryError, match=f"artifact store '{shown}': cannot download '{shown}/sha256/"
    ) as read:
        other.resolve("m:1")
    assert "hunter2" not in str(read.value)
    assert _cache_files(tmp_path / "home-2") == []
    # A connection lost mid-download is the store's failure, not the local cache's.
    FailingFileSystem.failing.clear()
    FailingFileSystem.failing.add("read")
    with pytest.raises(RegistryError) as reset:
        other.resolve("m:1")
    assert str(reset.value).startswith(f"artifact store '{shown}': cannot download '{shown}/")
    assert "Connection reset by peer" in str(reset.value)
    assert _cache_files(tmp_path / "home-2") == []
    FailingFileSystem.failing.add("find")
    with pytest.raises(RegistryError, match=f"artifact store '{shown}': cannot list '{shown}/tmp'"):
        other.gc(min_age_s=0.0)
    other.close()


def test_a_failed_upload_leaves_no_temp_file_in_the_store_or_the_cache(
    store_url: str, tmp_path: Path, onnx_model, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shared store fills up half-way through an upload: the partial temp key goes at
    once (not an hour later, by gc), and so does the cache's staged copy."""
    fs, base = url_to_fs(store_url)

    def full_half_way(self: Any, lpath: Any, rpath: Any, *args: Any, **kwargs: Any) -> None:
        data = Path(lpath).read_bytes()
        self.pipe_file(rpath, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    home = tmp_path / "home"
    with Registry(home=home, artifacts_url=store_url) as registry:
        monkeypatch.setattr(type(fs), "put_file", full_half_way)
        with pytest.raises(
            RegistryError,
            match=f"artifact store '{store_url}': cannot upload an artifact to "
            f"'{store_url}/tmp/.*\\.part': OSError: No space left on device",
        ):
            registry.register("m", onnx_model())
        monkeypatch.undo()
        assert registry.list() == []
        assert fs.find(f"{base}/tmp") == []
        assert list((home / "artifact-cache" / "tmp").iterdir()) == []
        registry.register("m", onnx_model())  # the space is back
    assert fs.find(f"{base}/tmp") == []


@pytest.mark.parametrize("how", ["folder", "symlink loop"])
def test_an_unreadable_cached_blob_is_a_load_error_naming_it(
    store_url: str, tmp_path: Path, how: str
) -> None:
    """Not readable even as root (see _make_unreadable): a folder of the blob's size, or a
    symlink to itself."""
    probe = tmp_path / "probe-folder"
    probe.mkdir()
    data = b"m" * probe.stat().st_size  # so that a folder passes the size check
    source = tmp_path / "src.bin"
    source.write_bytes(data)
    store = RemoteArtifactStore(store_url, tmp_path / "cache")
    staged = store.stage(source)
    cached = store.commit(staged)
    cached.unlink()
    if how == "folder":
        cached.mkdir()
    else:
        cached.symlink_to(cached)
    reason = "Is a directory" if how == "folder" else "Too many levels of symbolic links"
    with pytest.raises(ModelLoadError) as info:
        store.verify(staged.sha256, len(data))
    message = str(info.value)
    assert message.startswith(
        f"cannot read artifact {staged.sha256} in the local cache at '{cached}': {reason}; "
    )
    assert "delete that file to fetch the blob again" in message


def test_an_unknown_protocol_is_a_registry_error(tmp_path: Path) -> None:
    with pytest.raises(
        RegistryError, match="cannot use artifacts URL 'nosuchproto://bucket/x': ValueError"
    ):
        RemoteArtifactStore("nosuchproto://u:pw@bucket/x", tmp_path / "cache")


# ---- selecting the store: CLI option, environment, default ------------------------------


def test_cli_option_selects_the_store(
    tmp_path: Path, onnx_model, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    store_url = f"file://{tmp_path / 'shared-artifacts'}"  # commands refuse memory:// stores
    code = main(
        [
            "models",
            "register",
            "m",
            str(onnx_model()),
            "--home",
            str(home),
            "--artifacts-url",
            store_url,
            "--alias",
            "production",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert len(_remote_blobs(store_url)) == 1
    assert not (home / "artifacts").exists()
    # show/versions/gc take it too; without it the local store has no blob.
    assert main(["models", "gc", "--home", str(home), "--artifacts-url", store_url]) == 0
    capsys.readouterr()
    assert main(["models", "versions", "m", "--home", str(home), "--json"]) == 0


def test_environment_variable_selects_the_store(
    store_url: str,
    tmp_path: Path,
    onnx_model,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("ENGINE_ARTIFACTS_URL", store_url)
    assert main(["models", "register", "m", str(onnx_model()), "--home", str(home)]) == 0, (
        capsys.readouterr().err
    )
    assert len(_remote_blobs(store_url)) == 1
    assert not (home / "artifacts").exists()


def test_without_url_or_variable_artifacts_stay_local(
    tmp_path: Path, onnx_model, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    assert main(["models", "register", "m", str(onnx_model()), "--home", str(home)]) == 0
    assert len(list((home / "artifacts" / "sha256").rglob("*.*"))) == 0
    assert len([p for p in (home / "artifacts" / "sha256").rglob("*") if p.is_file()]) == 1
    assert not (home / "artifact-cache").exists()


def test_serve_passes_the_option_to_the_registry_it_opens(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from engine.cli import build_parser
    from engine.commands import serve

    args = build_parser().parse_args(["serve", "--registry", "--artifacts-url", "s3://b/x"])
    assert serve._options(args).artifacts_url == "s3://b/x"
    assert main(["serve", "--demo", "--artifacts-url", "s3://b/x", "--grpc-port", "0"]) == 1
    assert "--artifacts-url: registry options need --registry" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("memory://store/x", "is an in-memory store: what a command stores there is gone"),
        ("MEMORY://store/x", "is an in-memory store"),
        ("file://user:pw@host/tmp/x", "names a host ('user:pw@host'), which file URLs do not"),
    ],
)
@pytest.mark.parametrize(
    "command",
    [["models", "list"], ["models", "register", "m", "x.onnx"], ["tune", "m"],
     ["serve", "--registry"], ["train", "tabular-demo"]],
)
def test_commands_refuse_stores_that_would_lose_what_they_store(
    command: list[str], url: str, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main([*command, "--artifacts-url", url])
    assert info.value.code == 2
    assert reason in capsys.readouterr().err
