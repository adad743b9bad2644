from __future__ import annotations

import errno
import hashlib
import os
import time
from pathlib import Path

import pytest

from engine.errors import ModelLoadError, RegistryError
from engine.registry.artifacts import ArtifactStore


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "artifacts")


def _source(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "src.bin"
    path.write_bytes(data)
    return path


def test_stage_then_commit_stores_by_hash(store: ArtifactStore, tmp_path: Path) -> None:
    data = os.urandom(3 << 20)  # several copy chunks
    staged = store.stage(_source(tmp_path, data))
    assert staged.sha256 == hashlib.sha256(data).hexdigest()
    assert staged.size_bytes == len(data)
    assert staged.path.parent == store.root / "tmp"
    final = store.commit(staged)
    assert final == store.root / "sha256" / staged.sha256[:2] / staged.sha256
    assert final.read_bytes() == data
    assert not staged.path.exists()
    assert final.stat().st_mode & 0o777 == 0o444
    assert store.verify(staged.sha256, len(data)) == final


def test_discard_leaves_nothing(store: ArtifactStore, tmp_path: Path) -> None:
    staged = store.stage(_source(tmp_path, b"abc"))
    store.discard(staged)
    assert list((store.root / "tmp").iterdir()) == []


def test_unreadable_source_is_a_load_error(store: ArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="cannot read model file"):
        store.stage(tmp_path / "missing")
    assert list((store.root / "tmp").iterdir()) == []


def test_verify_refuses_flipped_byte_and_wrong_size(store: ArtifactStore, tmp_path: Path) -> None:
    staged = store.stage(_source(tmp_path, b"0123456789"))
    final = store.commit(staged)
    os.chmod(final, 0o644)
    final.write_bytes(b"0123456780")
    with pytest.raises(
        ModelLoadError, match=f"artifact {staged.sha256} is corrupt: its content hashes to sha256"
    ):
        store.verify(staged.sha256, 10)
    with pytest.raises(ModelLoadError, match="expected 11 bytes, found 10"):
        store.verify(staged.sha256, 11)


def test_hash_names_are_checked(store: ArtifactStore) -> None:
    for bad in ["../../etc/passwd", "A" * 64, "0" * 63, ""]:
        with pytest.raises(RegistryError, match="64 lowercase hex digits"):
            store.path(bad)


def test_gc_respects_grace_period_and_references(store: ArtifactStore, tmp_path: Path) -> None:
    keep = store.commit(store.stage(_source(tmp_path, b"keep")))
    drop = store.commit(store.stage(_source(tmp_path, b"drop")))
    part = store.root / "tmp" / "1-x.part"
    part.write_bytes(b"half")
    assert store.gc({keep.name}, min_age_s=3600) == []
    old = time.time() - 10
    for p in (keep, drop, part):
        os.utime(p, (old, old))
    assert sorted(store.gc({keep.name}, min_age_s=5)) == sorted([drop.name, part.name])
    assert keep.exists() and not drop.exists() and not part.exists()


def test_gc_on_an_empty_store(store: ArtifactStore) -> None:
    assert store.gc(set(), 0) == []


def test_a_full_store_is_a_registry_error_not_the_models(
    store: ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC while writing the copy names the store, never "cannot read model file"."""
    source = _source(tmp_path, b"abc")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(RegistryError, match="cannot write to the artifact store .*No space left"):
        store.stage(source)
    monkeypatch.undo()
    assert list((store.root / "tmp").iterdir()) == []


def test_gc_spares_a_blob_stored_again_while_it_runs(
    store: ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An old unreferenced blob (its version was deleted) is registered again while gc runs:
    the registration's commit lands between gc's age check and its removal. The fresh blob,
    which the new version's row references, must survive."""
    data = b"the same model bytes"
    sha256 = store.commit(store.stage(_source(tmp_path, data))).name
    blob = store.path(sha256)
    past = time.time() - 7200
    os.utime(blob, (past, past))
    again = store.stage(_source(tmp_path, data))
    real_stat = Path.stat
    stored_again: list[Path] = []

    def stat(self: Path, *args: object, **kwargs: object) -> os.stat_result:
        result = real_stat(self, *args, **kwargs)  # type: ignore[arg-type]
        if self == blob and not stored_again:
            stored_again.append(store.commit(again))  # the concurrent registration
        return result

    monkeypatch.setattr(Path, "stat", stat)
    removed = store.gc(referenced=set(), min_age_s=3600)
    monkeypatch.undo()
    assert stored_again == [blob]
    assert removed == []
    assert store.verify(sha256, len(data)) == blob
    assert list((store.root / "tmp").iterdir()) == []
    # Once it is old and still unreferenced, it goes.
    os.utime(blob, (past, past))
    assert store.gc(referenced=set(), min_age_s=3600) == [sha256]
    assert not blob.exists()
