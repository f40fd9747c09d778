"""A local directory as a backend (also the "offline copy" a user keeps).

Layout: the object ``reports/q3.pdf`` is the plain file ``<root>/reports/q3.pdf`` with its
bytes unchanged, so any tool can read it in an emergency. Content type, metadata and a
revision token live in a sidecar ``<root>/.failover/meta/reports/q3.pdf.json``; keys
whose first segment is ``.failover`` are therefore refused by this backend.

Writes are atomic: bytes go to a temporary file in the same directory, are fsynced and
renamed over the target (then the sidecar the same way, then the directory is fsynced).
The two renames (and a delete's two unlinks) happen under an exclusive ``flock`` on
``<root>/.failover/lock``, and a read opens the bytes and reads the sidecar under a
shared one, so that concurrent writers (threads or processes on one host) can never
leave, nor a reader see, one writer's bytes with another's metadata. Only a crash
between the two renames can leave new bytes with old metadata; the recorded sha256 then
no longer matches, which the read path detects and repair fixes.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from failover.backends.base import (
    ByteRange,
    FetchedObject,
    ObjectReader,
    StoredObject,
    resolve_range,
)
from failover.errors import (
    BackendError,
    BackendRequestError,
    BucketNotFoundError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionFailedError,
    ServerError,
)

if TYPE_CHECKING:
    from failover.backends._url import BackendURL
    from failover.payload import Payload

__all__ = ["LocalBackend"]

_META_DIR = ".failover"
_COPY_CHUNK = 1024 * 1024
_DEFAULT_TYPE = "application/octet-stream"


class LocalBackend:
    """Objects as plain files under a root directory; implements the Backend Protocol.

    Args:
        root: absolute path of the directory (created if missing when ``create=True``).
        name: backend name (default ``file:<root>``).
        create: create the root directory if it does not exist.
    """

    def __init__(
        self, root: str | os.PathLike[str], *, name: str | None = None, create: bool = True
    ) -> None:
        self._root = Path(root).absolute()
        self._name = name or f"file:{self._root}"
        if create:
            try:
                self._root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise BucketNotFoundError(
                    f"cannot create directory {str(self._root)!r}: {exc.strerror}",
                    backend=self._name,
                ) from exc
        self._meta_root = self._root / _META_DIR / "meta"

    @classmethod
    def from_url(cls, url: BackendURL) -> LocalBackend:
        """Build from ``file:///absolute/path`` (parameter ``create=false`` to require it)."""
        url.check_params()
        create = url.params.get("create", "true").lower() not in ("false", "0", "no")
        return cls(url.bucket, name=url.name, create=create)

    @property
    def name(self) -> str:
        """Backend name."""
        return self._name

    @property
    def identity(self) -> str:
        """The directory, symlinks resolved: where these objects live (the journal's scope)."""
        return f"file|{self._root.resolve()}"

    @property
    def root(self) -> Path:
        """The directory holding the objects."""
        return self._root

    # -- paths -------------------------------------------------------------------------

    def _paths(self, key: str) -> tuple[Path, Path]:
        if key.split("/", 1)[0] == _META_DIR:
            raise BackendRequestError(
                f"key {key!r}: the first segment {_META_DIR!r} is reserved by file:// backends",
                backend=self._name,
            )
        data = (self._root / key).resolve()
        # Keys are validated by Storage, but a backend used directly must not be the
        # way out of its root either (symlinks, "..").
        if self._root.resolve() not in data.parents:
            raise BackendRequestError(f"key {key!r} escapes the backend root", backend=self._name)
        return data, self._meta_root / (key + ".json")

    def _require_root(self) -> None:
        if not self._root.is_dir():
            raise BucketNotFoundError(
                f"directory {str(self._root)!r} does not exist", backend=self._name
            )

    @contextlib.contextmanager
    def _map_errors(self, key: str) -> Iterator[None]:
        try:
            yield
        except BackendError:
            raise
        except (FileNotFoundError, NotADirectoryError) as exc:
            self._require_root()
            raise NotFoundError(key, backend=self._name) from exc
        except IsADirectoryError as exc:
            raise BackendRequestError(
                f"key {key!r} names a directory holding other keys", backend=self._name
            ) from exc
        except PermissionError as exc:
            raise PermissionDeniedError(f"{key!r}: {exc.strerror}", backend=self._name) from exc
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ENOTDIR):
                raise BackendRequestError(
                    f"key {key!r} conflicts with an existing key used as a directory prefix",
                    backend=self._name,
                ) from exc
            # Disk full, I/O error: the "server" failed; another replica may work.
            raise ServerError(f"{key!r}: {exc.strerror or exc}", backend=self._name) from exc

    # -- metadata ----------------------------------------------------------------------

    def _read_sidecar(self, meta_path: Path) -> dict[str, Any]:
        try:
            with open(meta_path, encoding="utf-8") as handle:
                loaded: dict[str, Any] = json.load(handle)
                return loaded
        except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
            return {}

    def _info(
        self, key: str, data_path: Path, meta_path: Path, stat: os.stat_result
    ) -> StoredObject:
        sidecar = self._read_sidecar(meta_path)
        return StoredObject(
            key=key,
            size=stat.st_size,
            content_type=str(sidecar.get("content_type", _DEFAULT_TYPE)),
            metadata={str(k).lower(): str(v) for k, v in sidecar.get("metadata", {}).items()},
            last_modified=datetime.fromtimestamp(stat.st_mtime, UTC),
            etag=str(sidecar.get("etag") or f"{stat.st_mtime_ns:x}-{stat.st_size:x}"),
        )

    # -- Backend Protocol --------------------------------------------------------------

    def put(
        self,
        key: str,
        payload: Payload,
        *,
        content_type: str,
        metadata: Mapping[str, str],
        if_absent: bool = False,
        if_match: str | None = None,
    ) -> StoredObject:
        """Write the payload atomically (temp file, fsync, rename)."""
        data_path, meta_path = self._paths(key)
        with self._map_errors(key):
            self._require_root()
            data_path.parent.mkdir(parents=True, exist_ok=True)
            meta_path.parent.mkdir(parents=True, exist_ok=True)
            tmp_data = self._write_temp(data_path.parent, payload)
            try:
                etag = secrets.token_hex(12)
                sidecar = {
                    "content_type": content_type,
                    "metadata": {k.lower(): v for k, v in metadata.items()},
                    "etag": etag,
                }
                tmp_meta = self._write_temp_text(meta_path.parent, json.dumps(sidecar))
                with self._locked(exclusive=True):
                    self._check_condition(key, data_path, meta_path, if_absent, if_match)
                    os.replace(tmp_data, data_path)
                    os.replace(tmp_meta, meta_path)
            except BaseException:
                for leftover in (tmp_data, locals().get("tmp_meta")):
                    if leftover:
                        with contextlib.suppress(OSError):
                            os.unlink(leftover)
                raise
            _fsync_dir(data_path.parent)
            _fsync_dir(meta_path.parent)
            return self._info(key, data_path, meta_path, data_path.stat())

    def _check_condition(
        self, key: str, data_path: Path, meta_path: Path, if_absent: bool, if_match: str | None
    ) -> None:
        if not (if_absent or if_match is not None):
            return
        exists = data_path.is_file()
        if if_absent and exists:
            raise PreconditionFailedError(f"{key!r} already exists", backend=self._name)
        if if_match is not None:
            current = (
                self._info(key, data_path, meta_path, data_path.stat()).etag if exists else None
            )
            if current != if_match:
                raise PreconditionFailedError(
                    f"{key!r} changed since it was read", backend=self._name
                )

    @contextlib.contextmanager
    def _locked(self, *, exclusive: bool) -> Iterator[None]:
        """Hold the directory's lock: exclusive to change a key, shared to read one.

        A reader that cannot create the lock (a read-only copy, a missing directory)
        reads without it: nobody can be writing there either, and a missing directory
        is reported by the read itself.
        """
        lock_path = self._root / _META_DIR / "lock"
        try:
            lock_path.parent.mkdir(exist_ok=True)
            lock = open(lock_path, "a+b")  # noqa: SIM115 - closed below
        except OSError:
            if exclusive:
                raise
            yield
            return
        with lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _write_temp(self, directory: Path, payload: Payload) -> str:
        fd, tmp = tempfile.mkstemp(prefix=".failover-tmp-", dir=directory)
        try:
            with os.fdopen(fd, "wb") as out, payload.open() as source:
                shutil.copyfileobj(source, out, _COPY_CHUNK)
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return tmp

    def _write_temp_text(self, directory: Path, text: str) -> str:
        fd, tmp = tempfile.mkstemp(prefix=".failover-tmp-", dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        return tmp

    def get(self, key: str, *, byte_range: ByteRange | None = None) -> FetchedObject:
        """Read the object (or a slice of it) into memory."""
        reader = self.open(key, byte_range=byte_range)
        try:
            return FetchedObject(reader.info, reader.read())
        finally:
            reader.close()

    def open(self, key: str, *, byte_range: ByteRange | None = None) -> ObjectReader:
        """Open the object's file for streaming reads."""
        data_path, meta_path = self._paths(key)
        with self._map_errors(key), self._locked(exclusive=False):
            handle = open(data_path, "rb")  # noqa: SIM115 - owned by the returned reader
            try:
                stat = os.fstat(handle.fileno())
                info = self._info(key, data_path, meta_path, stat)
                start, stop = resolve_range(byte_range, stat.st_size)
                handle.seek(start)
            except BaseException:
                handle.close()
                raise
            return _FileReader(info, handle, stop - start)

    def head(self, key: str) -> StoredObject:
        """Describe the object from its file and sidecar."""
        data_path, meta_path = self._paths(key)
        with self._map_errors(key), self._locked(exclusive=False):
            stat = data_path.stat()
            if not data_path.is_file():
                raise FileNotFoundError(key)
            return self._info(key, data_path, meta_path, stat)

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        """Remove the object and its sidecar, pruning emptied directories."""
        data_path, meta_path = self._paths(key)
        with self._map_errors(key):
            self._require_root()
            with self._locked(exclusive=True):
                if if_match is not None and data_path.is_file():
                    current = self._info(key, data_path, meta_path, data_path.stat()).etag
                    if current != if_match:
                        raise PreconditionFailedError(
                            f"{key!r} changed since it was read", backend=self._name
                        )
                for path, top in ((data_path, self._root), (meta_path, self._meta_root)):
                    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                        path.unlink()
                    _prune_empty(path.parent, top)

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        """Yield objects under ``prefix`` in UTF-8 byte order of their keys."""
        self._require_root()
        keys: list[str] = []
        base = self._root
        walk_from = base / prefix.rsplit("/", 1)[0] if "/" in prefix else base
        for dirpath, dirnames, filenames in os.walk(walk_from):
            if Path(dirpath) == base and _META_DIR in dirnames:
                dirnames.remove(_META_DIR)
            rel_dir = os.path.relpath(dirpath, base)
            for filename in filenames:
                if filename.startswith(".failover-tmp-"):
                    continue
                key = filename if rel_dir == "." else f"{rel_dir}/{filename}"
                if key.startswith(prefix):
                    keys.append(key)
        keys.sort(key=lambda k: k.encode("utf-8"))
        for key in keys:
            data_path, meta_path = self._paths(key)
            try:
                stat = data_path.stat()
            except FileNotFoundError:
                continue  # deleted while listing
            yield self._info(key, data_path, meta_path, stat)

    def close(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        return f"LocalBackend(name={self._name!r}, root={str(self._root)!r})"


class _FileReader:
    def __init__(self, info: StoredObject, handle: IO[bytes], remaining: int) -> None:
        self._info = info
        self._handle = handle
        self._remaining = remaining

    @property
    def info(self) -> StoredObject:
        return self._info

    def read(self, size: int = -1, /) -> bytes:
        if self._remaining <= 0:
            return b""
        want = self._remaining if size is None or size < 0 else min(size, self._remaining)
        chunk = self._handle.read(want)
        self._remaining -= len(chunk)
        return chunk

    def close(self) -> None:
        self._handle.close()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _prune_empty(directory: Path, top: Path) -> None:
    while directory != top and top in directory.parents:
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent
