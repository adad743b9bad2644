"""Artifacts in a store that several machines share, at an fsspec URL, cached on local disk.

The shared store (``s3://bucket/prefix``, ``gs://...``, ``file:///mnt/nfs/artifacts``, a plain
path, ``memory://...`` in tests) has the layout of :mod:`engine.registry.artifacts`::

    <url>/sha256/<first two hex digits>/<64 hex digits>   blobs, named by their sha256
    <url>/tmp/<pid>-<random>.part                         uploads in flight
    <url>/registries/<registry id>                        the registries that store blobs here

ONNX Runtime needs a local file, so every machine keeps verified copies under ``cache_root``
(the :class:`~engine.registry.artifacts.ArtifactStore` layout: ``sha256/..``, ``tmp/..``).

- :meth:`RemoteArtifactStore.stage` copies and hashes into the cache's ``tmp/`` (local disk).
- :meth:`RemoteArtifactStore.commit` uploads to a temp key, then moves it to the blob's key: on
  object stores a PUT or copy is atomic per object, on a shared filesystem a rename is, so a
  reader never sees a partial blob. It always uploads, even when the blob exists, which
  refreshes the blob's modification time (what gc's grace period reads).
- :meth:`RemoteArtifactStore.verify` hashes the cached copy on every call; without one it
  downloads into a temp file, checks size and hash, then renames it into the cache.
- :meth:`RemoteArtifactStore.gc` removes unreferenced blobs and stale temp keys older than the
  grace period, by the modification time the backend reports (``mtime``, ``LastModified``,
  ``created``); an entry without one is kept. It prunes the local cache the same way.

Errors reaching the shared store (network, permission, a missing bucket, a missing fsspec
backend package) raise RegistryError naming the URL and the operation; a URL's
``user:password@`` never appears in a message.

A race on an object store, and how gc closes it: gc reads a blob's age, finds it old and
deletes it; a registration of the same bytes that uploaded the blob again between the read and
the delete would lose its fresh upload, and its new version would reference a missing blob. So
the registry passes gc a ``deletion_lock``: each blob's last age check and delete run while
it holds the database's write lock, which a registration holds from before its upload until its
version rows commit, and only if no version references the blob at that moment. A registration
then either committed before (the blob is referenced: kept) or uploads after the delete. Without
a ``deletion_lock`` (a store used on its own) that one round trip stays open. On a local or
shared filesystem (``file://``, a path) gc uses the local store's rename-aside removal, which
has no such window.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from engine.errors import EngineError, ModelLoadError, RegistryError
from engine.registry.artifacts import (
    _CHUNK_BYTES,
    ArtifactStore,
    StagedArtifact,
    _fsync_dir,
    _hash_file,
    _is_hash,
    is_registry_id,
)

__all__ = ["DeletionLock", "RemoteArtifactStore", "shown_url"]

# ``with deletion_lock(sha256) as unreferenced:`` holds off every registration until the block
# exits, and says whether no version references the blob now (see the module docstring).
DeletionLock = Callable[[str], AbstractContextManager[bool]]

# Protocols whose folders must exist before a file is written into them. Object stores have
# none (and s3fs's makedirs would create a missing bucket, which must stay an error).
_FOLDER_PROTOCOLS = frozenset({"file", "local", "sftp", "ssh", "smb", "ftp"})
# Keys of fsspec's info() that hold a modification time, by backend: local (mtime), s3fs
# (LastModified), adlfs (last_modified), memory (created).
_MTIME_KEYS = ("mtime", "LastModified", "last_modified", "created")
_USERINFO = re.compile(r"(://)[^/@\s]*@")
_USERINFO_TEXT = re.compile(r"://([^/@\s]*)@")


def shown_url(text: str) -> str:
    """``text`` with the ``user:password@`` of any URL in it removed."""
    return _USERINFO.sub(r"\1", text)


class RemoteArtifactStore:
    """Blobs by sha256 at an fsspec ``url``, with a verified local cache under ``cache_root``.

    Offers the methods :class:`~engine.registry.artifacts.ArtifactStore` offers the registry.
    ``root`` is the URL as shown in messages (no credentials). Safe to use from several
    processes and machines at once. Every method blocks on network and file I/O.
    """

    def __init__(self, url: str, cache_root: Path) -> None:
        self.root = shown_url(url).rstrip("/")
        try:
            from fsspec.core import url_to_fs  # type: ignore[import-untyped]
        except ImportError as exc:
            raise RegistryError(
                f"artifacts URL {self.root!r} needs fsspec: install the 'objectstore' extra "
                f"(pip install 'engine[objectstore]')"
            ) from exc
        # A backend may repeat the URL's user:password in its errors, e.g. in a key it names.
        self._secrets = [found for found in _USERINFO_TEXT.findall(url) if found]
        self.cache_root = cache_root
        self._cache = ArtifactStore(cache_root)
        try:
            fs, base = url_to_fs(url)
        except Exception as exc:  # unknown protocol, backend package not installed, bad URL
            raise RegistryError(
                f"cannot use artifacts URL {self.root!r}: {self._describe(exc)}"
            ) from exc
        self._fs: Any = fs
        self._base = str(base).rstrip("/")
        protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
        self._needs_folders = bool(_FOLDER_PROTOCOLS.intersection(protocols))
        # On a (shared) filesystem the blobs have the local store's layout: its gc, which never
        # deletes a blob that a commit stores again meanwhile, applies as it is.
        self._shared_fs = (
            ArtifactStore(Path(self._base)) if {"file", "local"} & set(protocols) else None
        )

    # ---- writes ---------------------------------------------------------------------------

    def stage(self, source: Path) -> StagedArtifact:
        """Copy and hash ``source`` into the local cache's temp folder (as ArtifactStore does);
        raises ModelLoadError (unreadable source) or RegistryError (cache not writable)."""
        return self._cache.stage(source)

    def discard(self, staged: StagedArtifact) -> None:
        self._cache.discard(staged)

    def commit(self, staged: StagedArtifact) -> Path:
        """Upload a staged file to its blob's key (temp key, then move), then keep it in the
        local cache; returns the cached path. Durable in the shared store when this returns
        (as durable as the backend's write; fsynced on a filesystem). Raises RegistryError if
        the shared store cannot be written, after removing its temp key (best effort: one
        left behind, e.g. by a crash, is removed by :meth:`gc`)."""
        final = self._blob_rel(staged.sha256)
        tmp = f"tmp/{os.getpid()}-{secrets.token_hex(8)}.part"
        # An upload that fails half-way (a full disk) may have written part of the temp key:
        # removed below at once rather than left filling the store until gc's grace period.
        try:
            with self._remote("upload an artifact to", tmp):
                if self._needs_folders:
                    self._fs.makedirs(self._key("tmp"), exist_ok=True)
                self._fs.put_file(str(staged.path), self._key(tmp))
                if self._shared_fs is not None:  # as the local store: read-only, durable
                    os.chmod(self._key(tmp), 0o444)
                    _fsync_file(self._key(tmp))
            with self._remote("move an upload into place at", final):
                if self._needs_folders:
                    self._fs.makedirs(self._key(final.rsplit("/", 1)[0]), exist_ok=True)
                self._fs.mv(self._key(tmp), self._key(final))
                if self._shared_fs is not None:
                    _fsync_dir(Path(self._key(final)).parent)
        except BaseException:
            try:
                self._fs.rm_file(self._key(tmp))
            except Exception:  # noqa: BLE001, S110 - best effort: gc removes a stale temp key
                pass
            raise
        with self._cache_errors():  # the store has the blob; only the local copy failed
            return self._cache.commit(staged)

    # ---- reads ----------------------------------------------------------------------------

    def verify(self, sha256: str, size_bytes: int) -> Path:
        """A local path of the blob, its size and hash checked now; blocks while hashing.

        A cached copy is hashed again; without one the blob is downloaded into a temp file,
        checked, then renamed into the cache. Raises ModelLoadError if the blob is missing from
        the shared store, its bytes (shared or cached) do not match or the cached copy cannot
        be read; RegistryError if the shared store cannot be read or the cache written.
        """
        cached = self._cache.path(sha256)  # also checks the hash's form
        refetch = f"delete that file to fetch the blob again from {self.root!r}"
        try:
            actual_size = cached.stat().st_size
            if actual_size != size_bytes:
                raise ModelLoadError(
                    f"artifact {sha256} is corrupt: expected {size_bytes} bytes, found "
                    f"{actual_size} in the local cache at {str(cached)!r}; {refetch}"
                )
            actual = _hash_file(cached)
        except FileNotFoundError:  # not cached yet, or pruned by a concurrent gc since the stat
            return self._download(sha256, size_bytes, cached)
        except OSError as exc:  # e.g. a folder or a symlink loop where the copy should be
            raise ModelLoadError(
                f"cannot read artifact {sha256} in the local cache at {str(cached)!r}: "
                f"{exc.strerror or exc}; {refetch}"
            ) from exc
        if actual != sha256:
            raise ModelLoadError(
                f"artifact {sha256} is corrupt: its content hashes to sha256 {actual} in the "
                f"local cache at {str(cached)!r}; refusing to load it; {refetch}"
            )
        return cached

    def _download(self, sha256: str, size_bytes: int, cached: Path) -> Path:
        rel = self._blob_rel(sha256)
        shown = f"{self.root}/{rel}"
        tmp_dir = self.cache_root / "tmp"
        with self._cache_errors():
            tmp_dir.mkdir(parents=True, exist_ok=True)
        tmp = tmp_dir / f"{os.getpid()}-{secrets.token_hex(8)}.part"
        digest = hashlib.sha256()
        size = 0
        try:
            with self._remote("download", rel):
                try:
                    src = self._fs.open(self._key(rel), "rb")
                except FileNotFoundError:
                    raise ModelLoadError(
                        f"artifact {sha256} is missing from {self.root + '/sha256'!r}; "
                        f"re-register the model"
                    ) from None
                # Reads fail as the store's (this _remote), writes as the local cache's.
                with src:
                    with self._cache_errors():
                        dst = open(tmp, "xb")  # noqa: SIM115 - closed below
                    with dst:
                        # Stop one chunk past the expected size: a wrong blob is never
                        # fetched whole.
                        while size <= size_bytes and (chunk := src.read(_CHUNK_BYTES)):
                            size += len(chunk)
                            digest.update(chunk)
                            with self._cache_errors():
                                dst.write(chunk)
                        with self._cache_errors():
                            dst.flush()
                            os.fsync(dst.fileno())
            if size != size_bytes:
                found = f"{size}" if size < size_bytes else f"more than {size_bytes}"
                raise ModelLoadError(
                    f"artifact {sha256} is corrupt: expected {size_bytes} bytes, found {found} "
                    f"at {shown!r}; re-register the model"
                )
            actual = digest.hexdigest()
            if actual != sha256:
                raise ModelLoadError(
                    f"artifact {sha256} is corrupt: its content hashes to sha256 {actual} at "
                    f"{shown!r}; refusing to load it; re-register the model"
                )
            with self._cache_errors():
                os.chmod(tmp, 0o444)
                cached.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, cached)  # a concurrent download of the same blob: same bytes
        finally:
            tmp.unlink(missing_ok=True)
        return cached

    # ---- gc -------------------------------------------------------------------------------

    def gc(
        self, referenced: set[str], min_age_s: float, *, deletion_lock: DeletionLock | None = None
    ) -> list[str]:
        """Delete blobs not in ``referenced`` and temp keys older than ``min_age_s`` from the
        shared store, then the same from the local cache. Returns the names removed from the
        shared store (cache files are not listed). An entry whose backend reports no
        modification time is kept. On an object store each blob is deleted under
        ``deletion_lock``, if given (see the module docstring)."""
        if self._shared_fs is not None:
            with self._remote("collect garbage in", None):
                removed = self._shared_fs.gc(referenced, min_age_s)
        else:
            removed = self._gc_objects(referenced, time.time() - min_age_s, deletion_lock)
        with self._cache_errors():
            self._cache.gc(referenced, min_age_s)
        return removed

    def _gc_objects(
        self, referenced: set[str], cutoff: float, deletion_lock: DeletionLock | None
    ) -> list[str]:
        removed: list[str] = []
        with self._remote("list", "tmp"):
            temps = self._fs.find(self._key("tmp"), detail=True)
        for key, info in temps.items():
            name = str(key).rsplit("/", 1)[-1]
            if name.endswith(".part") and self._remove_if_old(key, info, cutoff):
                removed.append(name)
        with self._remote("list", "sha256"):
            blobs = self._fs.find(self._key("sha256"), detail=True)
        for key, info in blobs.items():
            shard, name = (str(key).rsplit("/", 2) + ["", ""])[1:3]
            if not _is_hash(name) or shard != name[:2] or name in referenced:
                continue  # a key outside the layout is never this store's to delete
            held = deletion_lock(name) if deletion_lock is not None else nullcontext(True)
            if self._remove_if_old(key, info, cutoff, held):
                removed.append(name)
        return removed

    def _remove_if_old(
        self,
        key: str,
        listed: dict[str, Any],
        cutoff: float,
        held: AbstractContextManager[bool] | None = None,
    ) -> bool:
        """Delete ``key`` if its modification time is before ``cutoff``. The age is read again
        just before the delete, inside ``held`` (entered only for a key listed as old), and
        only if ``held`` yields True."""
        if (mtime := _mtime(listed)) is None or mtime >= cutoff:
            return False
        rel = self._rel(key)
        with held if held is not None else nullcontext(True) as unreferenced:
            if not unreferenced:
                return False
            try:
                with self._remote("read the age of", rel):
                    mtime = _mtime(self._fs.info(key))
                if mtime is None or mtime >= cutoff:
                    return False
                with self._remote("delete", rel):
                    self._fs.rm_file(key)
            except RegistryError as exc:
                if isinstance(exc.__cause__, FileNotFoundError):
                    return False  # another gc removed it first
                raise
        return True

    # ---- the registries that use this store (see Registry.gc) ------------------------------

    def owners(self) -> set[str]:
        """The ids of the registries recorded as users of the shared store."""
        with self._remote("list the registries recorded in", "registries"):
            try:
                keys = self._fs.ls(self._key("registries"), detail=False)
            except FileNotFoundError:
                return set()
        names = (str(key).rstrip("/").rsplit("/", 1)[-1] for key in keys)
        return {name for name in names if is_registry_id(name)}

    def record_owner(self, registry_id: str, about: str) -> None:
        """Record a registry as a user of the shared store (``registries/<id>``, holding
        ``about``). Idempotent; as durable as the backend's write."""
        rel = f"registries/{registry_id}"
        with self._remote("record this registry in", rel):
            if not self._fs.exists(self._key(rel)):
                if self._needs_folders:
                    self._fs.makedirs(self._key("registries"), exist_ok=True)
                self._fs.pipe_file(self._key(rel), (about + "\n").encode())

    def has_blobs(self) -> bool:
        with self._remote("list", "sha256"):
            try:
                return bool(self._fs.find(self._key("sha256")))
            except FileNotFoundError:
                return False

    # ---- helpers --------------------------------------------------------------------------

    def _blob_rel(self, sha256: str) -> str:
        self._cache.path(sha256)  # RegistryError unless 64 lowercase hex digits
        return f"sha256/{sha256[:2]}/{sha256}"

    def _key(self, rel: str) -> str:
        return f"{self._base}/{rel}"

    def _rel(self, key: str) -> str:
        return key[len(self._base) + 1 :] if key.startswith(self._base + "/") else key

    @contextmanager
    def _remote(self, operation: str, rel: str | None) -> Iterator[None]:
        """Any failure of the backend (not the engine's own errors) as a RegistryError that
        names the operation and the URL."""
        try:
            yield
        except EngineError:
            raise
        except Exception as exc:
            where = self.root if rel is None else f"{self.root}/{rel}"
            raise RegistryError(
                f"artifact store {self.root!r}: cannot {operation} {where!r}: {self._describe(exc)}"
            ) from exc

    @contextmanager
    def _cache_errors(self) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise RegistryError(
                f"cannot write to the local artifact cache {str(self.cache_root)!r}: "
                f"{exc.strerror or exc}"
            ) from exc

    def _describe(self, exc: BaseException) -> str:
        """The backend's error, without any credential of the URL."""
        text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return shown_url(text)


def _mtime(info: dict[str, Any]) -> float | None:
    """The modification time in ``info`` as a POSIX timestamp, or None if it has none."""
    for key in _MTIME_KEYS:
        value = info.get(key)
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
        if isinstance(value, datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=timezone.utc)
            return value.timestamp()
    return None


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
