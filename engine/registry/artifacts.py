"""Content-addressed artifact files: written atomically, verified on every read.

Layout under the store's root (``$ENGINE_HOME/artifacts``)::

    sha256/<first two hex digits>/<64 hex digits>   read-only blobs, named by their sha256
    tmp/<pid>-<random>.part                         files being written
    tmp/gc-<pid>-<random>.part                      blobs gc is removing
    registries/<registry id>                        the registries that store blobs here

A blob is written as a temp file in ``tmp/`` (same filesystem), fsynced, renamed into place and
its folder fsynced, so after a crash a blob is either complete under its final name or absent.
A crash leaves at most a temp file or an unreferenced blob; :meth:`ArtifactStore.gc` removes
both once they are older than a grace period (so it never races a registration in flight).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from engine.errors import ModelLoadError, RegistryError

__all__ = ["ArtifactStore", "StagedArtifact"]

_CHUNK_BYTES = 1 << 20
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class StagedArtifact:
    """A fully written, fsynced temp copy not yet under its final name."""

    path: Path
    sha256: str
    size_bytes: int


class ArtifactStore:
    """Blobs by sha256 under ``root``. Safe to use from several processes at once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._blobs = root / "sha256"
        self._tmp = root / "tmp"

    def path(self, sha256: str) -> Path:
        """Where the blob with this hash lives (whether or not it exists)."""
        if not _is_hash(sha256):
            raise RegistryError(f"artifact hash must be 64 lowercase hex digits; was {sha256!r}")
        return self._blobs / sha256[:2] / sha256

    def stage(self, source: Path) -> StagedArtifact:
        """Copy ``source`` to a temp file, hashing as it goes; the caller commits or discards.

        Blocks on file I/O. Raises ModelLoadError if ``source`` cannot be read, RegistryError
        if the copy cannot be written (the store's disk is full or read-only).
        """
        with self._write_errors():
            self._tmp.mkdir(parents=True, exist_ok=True)
        tmp = self._tmp / f"{os.getpid()}-{secrets.token_hex(8)}.part"
        digest = hashlib.sha256()
        size = 0
        try:
            with _reading(source) as src, self._writing(tmp) as dst:
                while chunk := _read(src, source):
                    digest.update(chunk)
                    with self._write_errors():
                        dst.write(chunk)
                    size += len(chunk)
                with self._write_errors():
                    dst.flush()
                    os.fsync(dst.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return StagedArtifact(tmp, digest.hexdigest(), size)

    @contextmanager
    def _writing(self, tmp: Path) -> Iterator[BinaryIO]:
        with self._write_errors():
            dst = open(tmp, "xb")  # noqa: SIM115 - closed below, its errors told apart
        try:
            yield dst
        finally:
            with self._write_errors():
                dst.close()

    @contextmanager
    def _write_errors(self) -> Iterator[None]:
        """An OSError writing the store (ENOSPC, EROFS) is the store's, not the model's."""
        try:
            yield
        except OSError as exc:
            raise RegistryError(
                f"cannot write to the artifact store {str(self.root)!r}: {exc.strerror or exc}"
            ) from exc

    def commit(self, staged: StagedArtifact) -> Path:
        """Move a staged file to its final, read-only name; durable when this returns."""
        final = self.path(staged.sha256)
        shard = final.parent
        created = not shard.exists()
        shard.mkdir(parents=True, exist_ok=True)
        os.chmod(staged.path, 0o444)
        # Replacing an existing blob is harmless (same bytes) and repairs a damaged one; the new
        # mtime also protects a reused blob from a concurrent gc's grace period.
        os.replace(staged.path, final)
        _fsync_dir(shard)
        if created:
            _fsync_dir(shard.parent)
        return final

    def discard(self, staged: StagedArtifact) -> None:
        staged.path.unlink(missing_ok=True)

    def verify(self, sha256: str, size_bytes: int) -> Path:
        """Return the blob's path after checking its size and hash; blocks while hashing.

        Raises ModelLoadError if the blob is missing, cannot be read or its bytes do not match.
        """
        path = self.path(sha256)
        try:
            actual_size = path.stat().st_size
            if actual_size != size_bytes:
                raise ModelLoadError(
                    f"artifact {sha256} is corrupt: expected {size_bytes} bytes, found "
                    f"{actual_size} at {str(path)!r}; re-register the model"
                )
            actual = _hash_file(path)
        except FileNotFoundError:
            raise ModelLoadError(
                f"artifact {sha256} is missing from {str(self._blobs)!r}; re-register the model "
                "(or, if the registry keeps its artifacts in a shared store, pass --artifacts-url "
                "or set ENGINE_ARTIFACTS_URL)"
            ) from None
        except OSError as exc:  # e.g. no permission, or a folder where the blob should be
            raise ModelLoadError(
                f"cannot read artifact {sha256} at {str(path)!r}: {exc.strerror or exc}; make "
                "it a readable file again or re-register the model"
            ) from exc
        if actual != sha256:
            raise ModelLoadError(
                f"artifact {sha256} is corrupt: its content hashes to sha256 {actual} "
                f"at {str(path)!r}; refusing to load it; re-register the model"
            )
        return path

    def gc(self, referenced: set[str], min_age_s: float) -> list[str]:
        """Delete blobs not in ``referenced`` and temp files, if older than ``min_age_s``.

        Returns the names removed. Anything younger may belong to a registration in flight.
        Only regular files of the layout are touched: a folder or a file of another name
        (someone's notes, a folder an older gc moved into ``tmp/``) is never this store's to
        delete.
        """
        cutoff = time.time() - min_age_s
        removed: list[str] = []
        if self._tmp.exists():
            for path in self._tmp.glob("*.part"):
                try:
                    info = path.lstat()
                    if stat.S_ISREG(info.st_mode) and info.st_mtime < cutoff:
                        path.unlink()
                        removed.append(path.name)
                except FileNotFoundError:
                    continue  # another process removed it first
        if self._blobs.exists():
            for path in self._blobs.glob("??/*"):
                if not _is_hash(path.name) or path.parent.name != path.name[:2]:
                    continue  # outside the layout
                if path.name not in referenced and self._remove_blob(path, cutoff):
                    removed.append(path.name)
        return removed

    def _remove_blob(self, path: Path, cutoff: float) -> bool:
        """Remove an old blob without racing a registration that stores the same bytes again.

        A registration's :meth:`commit` may replace ``path`` with a fresh copy at any moment;
        unlinking the name after a stat could delete that fresh copy, which the registration's
        row is about to reference. So the blob is first moved aside (atomically: whatever
        ``commit`` stores afterwards is a new file under the old name), and the moved file's own
        age decides. A young one is linked back unless a commit stored the name meanwhile.
        """
        try:
            info = path.lstat()
            if not stat.S_ISREG(info.st_mode) or info.st_mtime >= cutoff:
                return False  # a folder or link under a blob's name is not a blob
            self._tmp.mkdir(parents=True, exist_ok=True)
            # A .part name: if this process dies before the unlink, a later gc removes it.
            aside = self._tmp / f"gc-{os.getpid()}-{secrets.token_hex(8)}.part"
            os.rename(path, aside)
        except FileNotFoundError:
            return False  # another process removed it first
        try:
            if aside.stat().st_mtime < cutoff:
                return True
            try:
                os.link(aside, path)  # never replaces: a blob stored meanwhile wins
            except FileExistsError:
                pass
            except OSError:  # a filesystem without hard links
                if not path.exists():
                    os.rename(aside, path)
            return False
        finally:
            aside.unlink(missing_ok=True)

    # ---- the registries that use this store (see Registry.gc) ------------------------------

    def owners(self) -> set[str]:
        """The ids of the registries recorded as users of this store."""
        try:
            return {p.name for p in (self.root / "registries").iterdir() if is_registry_id(p.name)}
        except FileNotFoundError:
            return set()
        except OSError as exc:
            raise RegistryError(
                f"cannot read the artifact store {str(self.root)!r}: {exc.strerror or exc}"
            ) from exc

    def record_owner(self, registry_id: str, about: str) -> None:
        """Record a registry as a user of this store (``registries/<id>``, holding ``about``:
        which database it is, for whoever reads the folder). Idempotent; durable."""
        folder = self.root / "registries"
        marker = folder / registry_id
        with self._write_errors():
            folder.mkdir(parents=True, exist_ok=True)
            if marker.exists():
                return
            tmp = folder / f".{registry_id}-{secrets.token_hex(8)}.tmp"
            try:
                tmp.write_text(about + "\n", encoding="utf-8")
                os.replace(tmp, marker)
            finally:
                tmp.unlink(missing_ok=True)
            _fsync_dir(folder)

    def has_blobs(self) -> bool:
        try:
            return any(self._blobs.glob("??/*"))
        except OSError:
            return True  # unreadable: assume the worst


def is_registry_id(name: str) -> bool:
    """Whether ``name`` is a registry's id (``schema.new_registry_id``): 32 lowercase hex."""
    return len(name) == 32 and _HEX.issuperset(name)


@contextmanager
def _reading(source: Path) -> Iterator[BinaryIO]:
    try:
        src = open(source, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise ModelLoadError(f"cannot read model file {str(source)!r}: {exc.strerror}") from exc
    with src:
        yield src


def _read(src: BinaryIO, source: Path) -> bytes:
    try:
        return src.read(_CHUNK_BYTES)
    except OSError as exc:
        raise ModelLoadError(f"cannot read model file {str(source)!r}: {exc.strerror}") from exc


def _is_hash(name: str) -> bool:
    """Whether ``name`` is a blob's name: 64 lowercase hex digits."""
    return len(name) == 64 and _HEX.issuperset(name)


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
