from __future__ import annotations

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
