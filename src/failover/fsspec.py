"""An fsspec filesystem over :class:`~failover.Storage`: ``failover://`` URLs for data tools.

With ``failover[fsspec]`` installed, pandas, pyarrow, dask, xarray and anything else that
goes through fsspec read and write replicated objects by URL, without importing
``failover``::

    import pandas as pd

    df = pd.read_csv("failover://reports/q3.csv")  # backends from FAILOVER_BACKENDS
    df.to_parquet(
        "failover://reports/q3.parquet",
        storage_options={"backends": ["s3://a", "az://b", "gs://c"], "write_policy": "all"},
    )

Configuration: without options the ``FAILOVER_*`` environment (as
:meth:`Storage.from_env <failover.Storage.from_env>`); ``storage_options`` take the
keywords of :meth:`Storage.from_urls <failover.Storage.from_urls>` (``backends=[...]``
for the URLs, then any setting by its lower-case name). Every filesystem with the same
settings shares one :class:`~failover.Storage`, closed when the process exits.

Paths are object keys (``failover://a/b.csv`` is the key ``a/b.csv``). Directories
are what object stores make of ``/``: derived from the keys under a prefix, never
stored, so there are no empty directories (``mkdir`` creates nothing) and a directory
disappears with its last object. There is no append, and a write is one replicated,
verified ``put`` when the file is closed (the bytes are spooled to a temporary file
until then, so memory stays bounded).
"""

from __future__ import annotations

import atexit
import errno
import os
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from typing import IO, Any

from fsspec import AbstractFileSystem
from fsspec.callbacks import DEFAULT_CALLBACK
from fsspec.spec import AbstractBufferedFile
from fsspec.utils import stringify_path

from failover._storage import Storage
from failover.config import Settings
from failover.errors import (
    AllBackendsFailed,
    BackendError,
    NotFoundError,
    PermissionDeniedError,
)
from failover.types import ObjectInfo

__all__ = ["FailoverFile", "FailoverFileSystem"]

_PROTOCOL = "failover"
#: Written bytes up to this size stay in memory until close; larger ones go to disk.
_SPOOL_MEMORY_BYTES = 8 * 1024 * 1024
#: Options fsspec itself understands (listings cache, async); never failover settings.
_FSSPEC_OPTIONS = ("use_listings_cache", "listings_expiry_time", "max_paths", "asynchronous")

#: Keyed by process too: a forked child (dask, multiprocessing) must not reuse the
#: parent's Storage, whose worker threads did not survive the fork.
_storages: dict[tuple[int, Settings], Storage] = {}
_storages_lock = threading.Lock()


def _shared_storage(settings: Settings) -> Storage:
    """The one Storage for these settings (fsspec makes many filesystem instances)."""
    key = (os.getpid(), settings)
    with _storages_lock:
        storage = _storages.get(key)
        if storage is None:
            storage = Storage.from_settings(settings)
            _storages[key] = storage
        return storage


@atexit.register
def _close_storages() -> None:
    # Drains replica writes still in flight (write_policy quorum/one) before exit.
    with _storages_lock:
        storages = list(_storages.values())
        _storages.clear()
    for storage in storages:
        storage.close()


def _settings(backends: Sequence[str] | str | None, options: dict[str, Any]) -> Settings:
    if backends is not None:
        return Settings.from_urls(backends, **options)
    settings = Settings.from_env()
    return settings.with_options(**options) if options else settings


@contextmanager
def _os_errors(path: str) -> Iterator[None]:
    """Raise failover's errors as the OSError fsspec callers expect, chaining the original."""
    try:
        yield
    except NotFoundError as exc:
        raise FileNotFoundError(errno.ENOENT, "no such object", path) from exc
    except PermissionDeniedError as exc:
        raise PermissionError(errno.EACCES, str(exc), path) from exc
    except AllBackendsFailed as exc:
        errors = list(exc.errors.values())
        if errors and all(isinstance(e, PermissionDeniedError) for e in errors):
            raise PermissionError(errno.EACCES, str(exc), path) from exc
        # file:// replicas refuse to read a key that is a directory of other keys
        # (object stores answer "not found", which _missing turns into the same).
        if any(_names_directory(e) for e in errors) and all(
            _names_directory(e) or isinstance(e, NotFoundError) for e in errors
        ):
            raise IsADirectoryError(errno.EISDIR, "is a directory", path) from exc
        raise


def _names_directory(error: BaseException) -> bool:
    return isinstance(error, BackendError) and isinstance(error.__cause__, IsADirectoryError)


def _file_entry(info: ObjectInfo) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": info.key,
        "size": info.size,
        "type": "file",
        "mtime": info.last_modified.timestamp(),
        "last_modified": info.last_modified,
        "content_type": info.content_type,
    }
    # Listings of some providers (S3) carry no failover metadata; head() always does.
    if info.checksum:
        entry["sha256"] = info.checksum
    if info.version:
        entry["version"] = info.version
    return entry


def _directory_entry(name: str) -> dict[str, Any]:
    return {"name": name, "size": 0, "type": "directory"}


class FailoverFileSystem(AbstractFileSystem):  # type: ignore[misc]  # fsspec is untyped
    """fsspec filesystem for ``failover://`` URLs over replicated object storage.

    Args:
        backends: backend URLs in priority order; when omitted, the ``FAILOVER_*``
            environment configures the storage (``FAILOVER_BACKENDS`` and the rest).
        **options: settings by their lower-case names, as in
            :meth:`Storage.from_urls <failover.Storage.from_urls>`
            (``write_policy="all"``, ``journal="/var/lib/app/journal.sqlite"``); with
            the environment they override its values. fsspec's own options
            (``use_listings_cache``, ...) are passed to fsspec.

    Raises:
        ConfigError: a setting or URL is invalid (the message names it).
    """

    protocol = _PROTOCOL
    root_marker = ""

    def __init__(self, *, backends: Sequence[str] | str | None = None, **options: Any) -> None:
        fsspec_options = {k: options.pop(k) for k in _FSSPEC_OPTIONS if k in options}
        super().__init__(**fsspec_options)
        self._storage = _shared_storage(_settings(backends, options))

    @property
    def storage(self) -> Storage:
        """The :class:`~failover.Storage` this filesystem reads and writes."""
        return self._storage

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = stringify_path(path)
        if path.startswith(f"{_PROTOCOL}://"):
            path = path[len(_PROTOCOL) + 3 :]
        return str(path).strip("/")

    @staticmethod
    def _get_kwargs_from_urls(path: str) -> dict[str, Any]:
        return {}

    # -- metadata ----------------------------------------------------------------------

    def _missing(self, path: str) -> OSError:
        """The error for a key that is not an object: a directory, or nothing at all."""
        if self._has_children(path):
            return IsADirectoryError(errno.EISDIR, "is a directory", path)
        return FileNotFoundError(errno.ENOENT, "no such object", path)

    def _has_children(self, key: str) -> bool:
        with _os_errors(key):
            return next(iter(self._storage.list(f"{key}/" if key else "")), None) is not None

    def _head(self, path: str) -> ObjectInfo:
        """head() of a file; IsADirectoryError or FileNotFoundError otherwise."""
        key = self._strip_protocol(path)
        if not key:
            raise IsADirectoryError(errno.EISDIR, "is a directory", path)
        try:
            with _os_errors(key):
                return self._storage.head(key)
        except FileNotFoundError as exc:
            raise self._missing(key) from exc.__cause__

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        """Describe a file (``type="file"``, ``sha256``, ``version``) or derived directory.

        Raises:
            FileNotFoundError: no object has this key and none is under ``path/``.
        """
        key = self._strip_protocol(path)
        if not key:
            return _directory_entry("")
        try:
            return _file_entry(self._head(key))
        except IsADirectoryError:
            return _directory_entry(key)

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        """List the files and derived directories directly under ``path``.

        A path naming a file lists that file. The root of an empty store lists nothing.

        Raises:
            FileNotFoundError: nothing is at or under ``path``.
        """
        key = self._strip_protocol(path)
        prefix = f"{key}/" if key else ""
        entries: dict[str, dict[str, Any]] = {}
        with _os_errors(key):
            for info in self._storage.list(prefix):
                child, sep, _ = info.key[len(prefix) :].partition("/")
                name = prefix + child
                if sep:
                    entries.setdefault(name, _directory_entry(name))
                else:
                    entries[name] = _file_entry(info)
        if not entries and key:
            entries[key] = self.info(key)
            if entries[key]["type"] != "file":
                raise FileNotFoundError(errno.ENOENT, "no such object or directory", key)
        listed = [entries[name] for name in sorted(entries)]
        return listed if detail else [entry["name"] for entry in listed]

    def find(
        self,
        path: str,
        maxdepth: int | None = None,
        withdirs: bool = False,
        detail: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Every file under ``path`` (and derived directory with ``withdirs``), one listing.

        With ``maxdepth`` fsspec's walk is used instead.
        """
        if maxdepth is not None:
            return super().find(path, maxdepth=maxdepth, withdirs=withdirs, detail=detail, **kwargs)
        key = self._strip_protocol(path)
        prefix = f"{key}/" if key else ""
        found: dict[str, dict[str, Any]] = {}
        with _os_errors(key):
            for info in self._storage.list(prefix):
                found[info.key] = _file_entry(info)
                if withdirs:
                    parts = info.key[len(prefix) :].split("/")[:-1]
                    for depth in range(1, len(parts) + 1):
                        name = prefix + "/".join(parts[:depth])
                        found.setdefault(name, _directory_entry(name))
        if found and withdirs and key:
            found[key] = _directory_entry(key)
        if not found and key:
            with suppress(FileNotFoundError, IsADirectoryError):
                found[key] = _file_entry(self._head(key))
        names = sorted(found)
        return {name: found[name] for name in names} if detail else names

    def modified(self, path: str) -> datetime:
        """When the answering replica last stored the object (timezone-aware)."""
        return self._head(path).last_modified

    def checksum(self, path: str) -> int:
        """The object's sha256 as an int (changes whenever its bytes change)."""
        return int(self._head(path).checksum, 16)

    def ukey(self, path: str) -> str:
        """The object's sha256 hex digest: equal for equal bytes, on every replica."""
        return self._head(path).checksum

    # -- reading -----------------------------------------------------------------------

    def cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        """An object's bytes, or ``data[start:end]`` (negative: from the end) by range read.

        A whole read is verified against the stored sha256.
        """
        key = self._strip_protocol(path)
        if (start is not None and start < 0) or (end is not None and end < 0):
            size = self._head(key).size
            start = None if start is None else (start if start >= 0 else max(0, size + start))
            end = None if end is None else (end if end >= 0 else max(0, size + end))
        first = start or 0
        byte_range: tuple[int, int | None] | None = (first, end)
        if end is None and not first:
            byte_range = None  # a whole read, verified against the sha256
        elif end is not None:
            byte_range = (first, max(first, end))
        try:
            with _os_errors(key):
                return self._storage.get(key, byte_range=byte_range)
        except FileNotFoundError as exc:
            raise self._missing(key) from exc.__cause__

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | str | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> FailoverFile:
        key = self._strip_protocol(path)
        if mode == "ab":
            raise NotImplementedError(
                "failover:// has no append: object stores replace whole objects; "
                "read, then write the whole object"
            )
        info = self._head(key) if mode == "rb" else None
        if mode == "xb" and self.exists(key):
            raise FileExistsError(errno.EEXIST, "object exists", key)
        file = FailoverFile(
            self,
            key,
            mode,
            block_size="default" if block_size is None else block_size,
            autocommit=autocommit,
            cache_options=cache_options,
            size=None if info is None else info.size,
            **kwargs,
        )
        if info is not None:
            file.details = _file_entry(info)
        return file

    # -- writing -----------------------------------------------------------------------

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        """Store ``value`` as the object (``mode="create"``: only if it does not exist).

        Raises:
            FileExistsError: ``mode="create"`` and the object exists (checked before the
                write, not atomically: replicas have no common conditional put).
        """
        key = self._strip_protocol(path)
        if mode == "create" and self.exists(key):
            raise FileExistsError(errno.EEXIST, "object exists", key)
        with _os_errors(key):
            self._storage.put(key, value)

    def put_file(
        self,
        lpath: str,
        rpath: str,
        callback: Any = DEFAULT_CALLBACK,
        mode: str = "overwrite",
        **kwargs: Any,
    ) -> None:
        """Upload a local file with one replicated ``put`` (a local directory: nothing)."""
        if os.path.isdir(lpath):
            return  # directories exist only through the objects under them
        key = self._strip_protocol(rpath)
        if mode == "create" and self.exists(key):
            raise FileExistsError(errno.EEXIST, "object exists", key)
        size = os.path.getsize(lpath)
        callback.set_size(size)
        with open(lpath, "rb") as source, _os_errors(key):
            self._storage.put(key, source)
        callback.relative_update(size)

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        """Copy an object by streaming it (get, then put), keeping type and metadata.

        A derived directory copies as nothing (its objects are copied one by one).
        """
        source, target = self._strip_protocol(path1), self._strip_protocol(path2)
        try:
            with _os_errors(source):
                reader = self._storage.open(source)
        except IsADirectoryError:
            return
        except FileNotFoundError:
            if self._has_children(source):
                return
            raise
        with reader, _os_errors(target):
            info = reader.info
            self._storage.put(
                target, reader, content_type=info.content_type, metadata=info.metadata
            )

    def rm_file(self, path: str) -> None:
        """Delete one object on every replica.

        Raises:
            FileNotFoundError: no such object.
            IsADirectoryError: ``path`` is a derived directory.
        """
        key = self._head(path).key
        with _os_errors(key):
            self._storage.delete(key)

    def _rm(self, path: str) -> None:
        self.rm_file(path)

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        """Delete objects; with ``recursive`` everything under a directory.

        Directories go away with their last object.

        Raises:
            IsADirectoryError: a directory without ``recursive``.
        """
        for name in reversed(self.expand_path(path, recursive=recursive, maxdepth=maxdepth)):
            try:
                self.rm_file(name)
            except (IsADirectoryError, FileNotFoundError):
                # A directory, or one that vanished with the objects just deleted.
                if not recursive:
                    raise

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        """Do nothing: directories are derived from keys and exist once an object is in one."""

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        """Do nothing: directories are derived from keys (see :meth:`mkdir`)."""

    def rmdir(self, path: str) -> None:
        """Do nothing: a directory disappears with its last object."""


class FailoverFile(AbstractBufferedFile):  # type: ignore[misc]  # fsspec is untyped
    """A file of :class:`FailoverFileSystem`: range reads, one verified ``put`` on close.

    Reads fetch blocks with ranged ``Storage.get`` (a block covering the whole object is
    verified against its sha256). Writes go to a temporary spool (memory up to 8 MiB,
    then disk) and are stored with one replicated ``put`` when the file is closed;
    leaving a ``with`` block by an exception stores nothing.
    """

    fs: FailoverFileSystem

    def __init__(self, fs: FailoverFileSystem, path: str, mode: str = "rb", **kwargs: Any) -> None:
        super().__init__(fs, path, mode, **kwargs)
        self._spool: IO[bytes] | None = None

    def _fetch_range(self, start: int, end: int) -> bytes:
        end = min(end, self.size)
        if start >= end:
            return b""
        whole = start == 0 and end == self.size
        with _os_errors(self.path):
            return self.fs.storage.get(self.path, byte_range=None if whole else (start, end))

    def _initiate_upload(self) -> None:
        self._spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY_BYTES)  # noqa: SIM115

    def _upload_chunk(self, final: bool = False) -> bool:
        assert self._spool is not None
        self._spool.write(self.buffer.getbuffer())
        if final and self.autocommit:
            self.commit()
        return True

    def commit(self) -> None:
        """Store the written bytes as the object (one replicated, verified ``put``).

        Raises:
            FileExistsError: opened with ``"xb"`` and the object appeared meanwhile.
        """
        if self._spool is None:  # nothing was flushed: an empty file
            self._spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY_BYTES)  # noqa: SIM115
        try:
            if self.mode == "xb" and self.fs.exists(self.path):
                raise FileExistsError(errno.EEXIST, "object exists", self.path)
            self._spool.seek(0)
            with _os_errors(self.path):
                self.fs.storage.put(self.path, self._spool)
        finally:
            self.discard()

    def discard(self) -> None:
        """Throw the written bytes away."""
        if self._spool is not None:
            self._spool.close()
            self._spool = None

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is not None and self.writable():
            # A failed with-block must not store a partial object.
            self.discard()
            self.closed = True
            return
        self.close()
