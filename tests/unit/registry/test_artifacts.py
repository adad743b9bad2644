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


def test_gc_touches_only_blobs_of_the_layout(store: ArtifactStore, tmp_path: Path) -> None:
    """A folder or a stray file in the blob tree is not a blob: gc neither moves nor deletes
    it, and keeps working."""
    blob = store.commit(store.stage(_source(tmp_path, b"unreferenced")))
    shard = blob.parent
    subdir = shard / "subdir"
    subdir.mkdir()
    (subdir / "inside").write_bytes(b"x")
    notes = shard / "notes.txt"
    notes.write_text("not a blob")
    hash_named_dir = shard / (shard.name + "0" * 62)  # a blob's name, but a folder
    hash_named_dir.mkdir()
    other_shard = "00" if shard.name != "00" else "01"
    wrong_shard = store.root / "sha256" / other_shard / blob.name  # a blob's name, wrong shard
    wrong_shard.parent.mkdir()
    wrong_shard.write_bytes(b"unreferenced")
    tmp = store.root / "tmp"
    not_part = tmp / "notes.txt"
    not_part.write_text("not a temp file")
    part_dir = tmp / "1-x.part"
    part_dir.mkdir()
    old = time.time() - 10
    strays = [subdir, notes, hash_named_dir, wrong_shard, not_part, part_dir]
    for path in [blob, *strays]:
        os.utime(path, (old, old))
    assert store.gc(set(), min_age_s=5) == [blob.name]
    assert not blob.exists()
    assert all(path.exists() for path in strays)
    assert (subdir / "inside").read_bytes() == b"x"
    assert store.gc(set(), min_age_s=0) == []  # and again: nothing left that gc may touch
    assert [p.name for p in tmp.iterdir() if p.name.startswith("gc-")] == []


def test_gc_skips_a_folder_an_older_gc_moved_into_tmp(store: ArtifactStore) -> None:
    """An older engine's gc moved a folder of the blob tree into tmp/ and failed to unlink
    it; later gcs skip it instead of failing on it every time."""
    moved = store.root / "tmp" / "gc-123-0123456789abcdef.part"
    moved.mkdir(parents=True)
    (moved / "inside").write_bytes(b"x")
    old = time.time() - 10
    os.utime(moved, (old, old))
    assert store.gc(set(), min_age_s=0) == []
    assert (moved / "inside").read_bytes() == b"x"


def _make_unreadable(path: Path, how: str) -> None:
    """Replace the file at ``path`` by one that no open reads, even as root (tests run as root,
    where chmod 000 stops nothing): a folder (IsADirectoryError), or a symlink to itself
    (ELOOP)."""
    path.unlink()
    if how == "folder":
        path.mkdir()
    else:
        path.symlink_to(path)


def _empty_folder_size(tmp_path: Path) -> int:
    """What stat reports as the size of an empty folder on this filesystem, so that a blob of
    that size replaced by a folder gets past verify's size check to the open."""
    probe = tmp_path / "probe-folder"
    probe.mkdir()
    size = probe.stat().st_size
    probe.rmdir()
    return size


@pytest.mark.parametrize("how", ["folder", "symlink loop"])
def test_an_unreadable_blob_is_a_load_error_naming_it(
    store: ArtifactStore, tmp_path: Path, how: str
) -> None:
    data = b"m" * _empty_folder_size(tmp_path)
    staged = store.stage(_source(tmp_path, data))
    blob = store.commit(staged)
    _make_unreadable(blob, how)
    reason = "Is a directory" if how == "folder" else "Too many levels of symbolic links"
    with pytest.raises(ModelLoadError) as info:
        store.verify(staged.sha256, len(data))
    message = str(info.value)
    assert message.startswith(f"cannot read artifact {staged.sha256} at '{blob}': {reason}")
    assert "re-register the model" in message
