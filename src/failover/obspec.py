"""obspec protocols over :class:`~failover.Storage`, for code typed against obstore.

:class:`Store` wraps a Storage and offers the obspec protocols: ``Get``,
``GetRange``, ``GetRanges``, ``Put``, ``Head``, ``List``, ``ListWithDelimiter``,
``Delete``, ``Copy`` and ``Rename``, and their async twins (``GetAsync``, ...). Code
written for them (or for an obstore store) gets replicated writes and failover reads
without a change::

    import failover
    from failover.obspec import Store

    store = Store(failover.Storage.from_env())
    store.put("reports/q3.csv", b"a,b")
    data = bytes(store.get("reports/q3.csv").buffer())

Needs the ``obspec`` extra (``pip install "failover[obspec]"``); ``import failover``
does not import this module.

Errors carry obspec's well-known names and are obspec's own classes
(:mod:`obspec.exceptions`), so both ``except obspec.exceptions.NotFoundError`` and
``obspec.exceptions.map_exception`` work; failover's exception is the ``__cause__``.
Failures obspec has no name for (``AllBackendsFailed``, ``QuorumNotReached``,
``IntegrityError``, ...) propagate as failover raised them.

Limits, stated plainly:

- ``e_tag`` and ``version`` are both failover's version stamp (unique per write,
  ordered by write time). Listings of providers without metadata (S3) have no stamp:
  there both are ``None``; :meth:`Store.head` always has them.
- ``mode="create"`` and ``mode=UpdateVersion(...)`` check the key's current state with a
  head, then write: the check and the write are two steps, not one atomic
  compare-and-swap across the replicas. Two writers racing inside that window can both
  pass the check; the replicas then converge on the newer version stamp (last writer
  wins, see the consistency page), and a writer whose put lost to a newer version gets
  :class:`~failover.errors.Superseded`, never a silent success.
- ``attributes`` keep ``Content-Type`` and user-defined names (stored as metadata, which
  must follow failover's metadata rules); ``Content-Disposition``, ``Content-Encoding``,
  ``Content-Language``, ``Cache-Control`` and ``tags`` are not stored by failover and
  raise ``NotSupportedError``. ``use_multipart``, ``chunk_size`` and
  ``max_concurrency`` are accepted and ignored: failover picks part sizes itself.
- ``GetOptions(version=...)`` only matches the current version (failover keeps one
  version per key); any other raises ``NotFoundError``.
- ``list_with_delimiter`` lists the whole subtree once and groups it (``/`` is the
  delimiter); ``list`` returns chunks of up to 1,000 objects in key order.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import functools
import threading
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Sequence,
)
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol, TypeVar

from obspec.exceptions import (
    AlreadyExistsError,
    InvalidPathError,
    NotFoundError,
    NotModifiedError,
    NotSupportedError,
    PermissionDeniedError,
    PreconditionError,
)

import failover.aio
from failover import errors

if TYPE_CHECKING:
    from obspec import (
        Attributes,
        GetOptions,
        ListResult,
        ObjectMeta,
        PutMode,
        PutResult,
    )
    from typing_extensions import Buffer

    from failover._storage import Storage, StorageReader
    from failover.types import ObjectInfo

__all__ = ["GetResult", "GetResultAsync", "Store"]

T = TypeVar("T")


class _Runner(Protocol):
    def __call__(self, call: Callable[[], T], /) -> Awaitable[T]: ...


#: Objects per chunk of :meth:`Store.list` (what S3 and obstore return per page).
LIST_CHUNK_SIZE = 1000
#: Bytes per buffer when a :class:`GetResult` is iterated.
READ_CHUNK_SIZE = 1 << 20

_UNSTORED_ATTRIBUTES = frozenset(
    {"content-disposition", "content-encoding", "content-language", "cache-control"}
)


@contextlib.contextmanager
def _obspec_errors(path: str) -> Iterator[None]:
    """Translate failover's exceptions into obspec's well-known ones, chaining the cause."""
    try:
        yield
    except errors.NotFoundError as exc:
        raise NotFoundError(f"object {path!r} not found") from exc
    except errors.InvalidKeyError as exc:
        raise InvalidPathError(str(exc)) from exc
    except errors.PreconditionFailedError as exc:
        raise PreconditionError(str(exc)) from exc
    except errors.PermissionDeniedError as exc:
        raise PermissionDeniedError(str(exc)) from exc


def _meta(info: ObjectInfo) -> ObjectMeta:
    stamp = info.version or None
    return {
        "path": info.key,
        "last_modified": info.last_modified,
        "size": info.size,
        "e_tag": stamp,
        "version": stamp,
    }


def _etag_matches(condition: str, stamp: str) -> bool:
    """RFC 9110 list matching: ``*`` or any of the comma-separated (quoted) tags."""
    tags = [t.strip().removeprefix("W/").strip('"') for t in condition.split(",")]
    return "*" in tags or stamp in tags


class GetResult:
    """The answer to :meth:`Store.get`: metadata, attributes and the bytes.

    Iterate it for buffers of up to 1 MiB (streamed from one replica, resumed on another
    if it fails mid-stream), or call :meth:`buffer` for all of them. The bytes can be
    consumed once.
    """

    def __init__(
        self, info: ObjectInfo, reader: StorageReader | None, byte_range: tuple[int, int]
    ) -> None:
        self._info = info
        self._reader = reader
        self._range = byte_range

    @property
    def attributes(self) -> Attributes:
        """``Content-Type`` and the object's user metadata."""
        attributes: Attributes = {"Content-Type": self._info.content_type}
        attributes.update(self._info.metadata)
        return attributes

    @property
    def meta(self) -> ObjectMeta:
        """Path, size, last modified time, e_tag and version of the object."""
        return _meta(self._info)

    @property
    def range(self) -> tuple[int, int]:
        """The ``(start, stop)`` byte range this result holds (stop exclusive)."""
        return self._range

    def buffer(self) -> Buffer:
        """Read every remaining byte (``bytes(result.buffer())`` copies nothing more)."""
        return b"".join(self)

    def __iter__(self) -> Generator[bytes, None, None]:
        return self._stream()

    def _stream(self) -> Generator[bytes, None, None]:
        reader, self._reader = self._reader, None
        if reader is None:
            return
        with reader, _obspec_errors(self._info.key):
            while chunk := reader.read(READ_CHUNK_SIZE):
                yield chunk

    def close(self) -> None:
        """Release the stream without reading it (iterating to the end also does)."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()


class GetResultAsync:
    """The answer to :meth:`Store.get_async`: :class:`GetResult`, iterated with ``async for``.

    Each buffer is read on a coordinator thread of :mod:`failover.aio`, never on the
    event loop's thread.
    """

    def __init__(self, result: GetResult, run: _Runner) -> None:
        self._result = result
        self._run = run

    @property
    def attributes(self) -> Attributes:
        """``Content-Type`` and the object's user metadata."""
        return self._result.attributes

    @property
    def meta(self) -> ObjectMeta:
        """Path, size, last modified time, e_tag and version of the object."""
        return self._result.meta

    @property
    def range(self) -> tuple[int, int]:
        """The ``(start, stop)`` byte range this result holds (stop exclusive)."""
        return self._result.range

    async def buffer_async(self) -> Buffer:
        """Read every remaining byte."""
        return b"".join([chunk async for chunk in self])

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        chunks = self._result._stream()  # a generator: closing it releases the stream
        try:
            while chunk := await self._run(functools.partial(next, chunks, b"")):
                yield chunk
        finally:
            await self._run(chunks.close)
            await self._run(self._result.close)


class Store:
    """A :class:`~failover.Storage` seen through the obspec protocols, sync and async.

    Every protocol has its ``*_async`` twin (``get_async``, ``put_async``, ...): they run
    the same synchronous code on the coordinator threads of :mod:`failover.aio` (one
    resilience core, never on the event loop's thread). Pass a
    :class:`failover.aio.Storage` to share its coordinators; given a sync Storage, the
    store makes its own :class:`failover.aio.Storage` over it on the first async call.

    The store does not own the Storage: closing it stays the caller's job.

    Args:
        storage: the replicated storage to read and write.
    """

    def __init__(self, storage: Storage | failover.aio.Storage) -> None:
        self._aio: failover.aio.Storage | None = None
        if isinstance(storage, failover.aio.Storage):
            self._aio = storage
            storage = storage.sync
        self._storage = storage
        self._aio_lock = threading.Lock()

    @property
    def storage(self) -> Storage:
        """The Storage underneath."""
        return self._storage

    def __repr__(self) -> str:
        return f"Store({self._storage!r})"

    async def _run(self, call: Callable[[], T]) -> T:
        """Run a blocking call on a coordinator thread of :mod:`failover.aio`."""
        with self._aio_lock:
            if self._aio is None:
                # Not owned by the store (closing it would close the Storage): its idle
                # coordinator threads end with the process.
                self._aio = failover.aio.Storage(self._storage)
            # The aio facade's own coordinators (same package): one pool, one core.
            coordinators = self._aio._coordinators
        return await coordinators.run(call)

    # -- async twins: the sync methods, run on coordinator threads --------------------

    async def head_async(self, path: str) -> ObjectMeta:
        """:meth:`head`, awaited."""
        return await self._run(functools.partial(self.head, path))

    async def get_async(self, path: str, *, options: GetOptions | None = None) -> GetResultAsync:
        """:meth:`get`, awaited; iterate the result with ``async for``."""
        result = await self._run(functools.partial(self.get, path, options=options))
        return GetResultAsync(result, self._run)

    async def get_range_async(
        self, path: str, *, start: int, end: int | None = None, length: int | None = None
    ) -> Buffer:
        """:meth:`get_range`, awaited."""
        call = functools.partial(self.get_range, path, start=start, end=end, length=length)
        return await self._run(call)

    async def get_ranges_async(
        self,
        path: str,
        *,
        starts: Sequence[int],
        ends: Sequence[int] | None = None,
        lengths: Sequence[int] | None = None,
    ) -> Sequence[Buffer]:
        """:meth:`get_ranges`, awaited."""
        call = functools.partial(self.get_ranges, path, starts=starts, ends=ends, lengths=lengths)
        return await self._run(call)

    async def list_async(
        self, prefix: str | None = None, *, offset: str | None = None
    ) -> AsyncIterator[Sequence[ObjectMeta]]:
        """:meth:`list` as an async iterator (each chunk fetched on a coordinator)."""
        chunks = await self._run(functools.partial(self.list, prefix, offset=offset))
        empty: Sequence[ObjectMeta] = ()
        while chunk := await self._run(functools.partial(next, chunks, empty)):
            yield chunk

    async def list_with_delimiter_async(
        self, prefix: str | None = None
    ) -> ListResult[Sequence[ObjectMeta]]:
        """:meth:`list_with_delimiter`, awaited."""
        return await self._run(functools.partial(self.list_with_delimiter, prefix))

    async def put_async(
        self,
        path: str,
        file: IO[bytes]
        | Path
        | bytes
        | Buffer
        | AsyncIterator[Buffer]
        | AsyncIterable[Buffer]
        | Iterator[Buffer]
        | Iterable[Buffer],
        *,
        attributes: Attributes | None = None,
        tags: dict[str, str] | None = None,
        mode: PutMode | None = None,
        use_multipart: bool | None = None,
        chunk_size: int = READ_CHUNK_SIZE,
        max_concurrency: int = 8,
    ) -> PutResult:
        """:meth:`put`, awaited; ``file`` may also be an async iterable of buffers."""
        chunks = None
        if isinstance(file, AsyncIterable):
            # Pulled from the event loop by the coordinator as the upload needs it, as
            # failover.aio.Storage.put does with its async iterables.
            chunks = failover.aio._AsyncChunks(_as_bytes(file), asyncio.get_running_loop())
            file = iter(chunks)
        call = functools.partial(
            self.put,
            path,
            file,
            attributes=attributes,
            tags=tags,
            mode=mode,
            use_multipart=use_multipart,
            chunk_size=chunk_size,
            max_concurrency=max_concurrency,
        )
        try:
            return await self._run(call)
        except asyncio.CancelledError:
            if chunks is not None:
                chunks.cancelled.set()
            raise

    async def delete_async(self, paths: str | Sequence[str]) -> None:
        """:meth:`delete`, awaited."""
        await self._run(functools.partial(self.delete, paths))

    async def copy_async(self, from_: str, to: str, *, overwrite: bool = True) -> None:
        """:meth:`copy`, awaited."""
        await self._run(functools.partial(self.copy, from_, to, overwrite=overwrite))

    async def rename_async(self, from_: str, to: str, *, overwrite: bool = True) -> None:
        """:meth:`rename`, awaited."""
        await self._run(functools.partial(self.rename, from_, to, overwrite=overwrite))

    # -- reads -------------------------------------------------------------------------

    def head(self, path: str) -> ObjectMeta:
        """Describe the object at ``path``.

        Raises:
            NotFoundError: (obspec's) no replica has the object.
            InvalidPathError: the path breaks failover's key rules.
        """
        with _obspec_errors(path):
            return _meta(self._storage.head(path))

    def get(self, path: str, *, options: GetOptions | None = None) -> GetResult:
        """Open the object at ``path`` for reading, with obspec's get options.

        ``range``, ``head``, ``if_match``, ``if_none_match``, ``if_modified_since``,
        ``if_unmodified_since`` and ``version`` are honoured; conditions are checked
        against the replica that serves the bytes.

        Raises:
            NotFoundError: no replica has the object (or not at ``options["version"]``).
            PreconditionError: ``if_match`` or ``if_unmodified_since`` failed.
            NotModifiedError: ``if_none_match`` or ``if_modified_since`` matched.
            ValueError: the range is empty or starts after the end of the object.
        """
        options = options or {}
        requested: Any = options.get("range")
        with _obspec_errors(path):
            if isinstance(requested, dict) and "suffix" in requested:
                size = self._storage.head(path).size
                requested = {"offset": max(0, size - int(requested["suffix"]))}
            start, stop = _byte_range(requested)
            byte_range = None if requested is None else (start, stop)
            reader = self._storage.open(path, byte_range=byte_range)
        try:
            info = reader.info
            _check_conditions(path, info, options)
            end = info.size if stop is None else min(stop, info.size)
            if requested is not None:
                _check_range_start(path, start, info)
            if options.get("head"):
                reader.close()
                return GetResult(info, None, (start, end))
        except BaseException:
            reader.close()
            raise
        return GetResult(info, reader, (start, end))

    def get_range(
        self, path: str, *, start: int, end: int | None = None, length: int | None = None
    ) -> Buffer:
        """Return ``data[start:end]`` (or ``length`` bytes from ``start``).

        Raises:
            NotFoundError: no replica has the object.
            ValueError: neither or both of ``end`` and ``length`` given, or an empty range.
        """
        stop = _stop(start, end, length)
        if stop <= start:
            raise ValueError(f"empty range {start}..{stop} of {path!r}")
        with _obspec_errors(path):
            return self._storage.get(path, byte_range=(start, stop))

    def get_ranges(
        self,
        path: str,
        *,
        starts: Sequence[int],
        ends: Sequence[int] | None = None,
        lengths: Sequence[int] | None = None,
    ) -> Sequence[Buffer]:
        """Return one buffer per ``(start, end)`` (or ``(start, length)``) range.

        Each range is one ranged read (served and failed over independently).

        Raises:
            NotFoundError: no replica has the object.
            ValueError: neither or both of ``ends`` and ``lengths``, or lengths differ.
        """
        if (ends is None) == (lengths is None):
            raise ValueError("give exactly one of ends or lengths")
        bounds = ends if ends is not None else lengths
        assert bounds is not None
        if len(bounds) != len(starts):
            raise ValueError(f"{len(starts)} starts but {len(bounds)} ends or lengths")
        if ends is not None:
            return [self.get_range(path, start=s, end=e) for s, e in zip(starts, ends, strict=True)]
        return [
            self.get_range(path, start=s, length=n) for s, n in zip(starts, bounds, strict=True)
        ]

    def list(
        self, prefix: str | None = None, *, offset: str | None = None
    ) -> Iterator[Sequence[ObjectMeta]]:
        """Yield the objects under ``prefix`` in chunks of up to 1,000, in key order.

        ``prefix`` matches whole path segments (``foo/bar`` lists ``foo/bar/x``, not
        ``foo/bar_baz``); ``offset`` keeps only paths after it.

        Raises:
            AllBackendsFailed: (failover's) no replica could be listed.
        """
        with _obspec_errors(prefix or ""):
            infos = self._storage.list(_segment_prefix(prefix))
        return self._chunks(infos, prefix or "", offset)

    def _chunks(
        self, infos: Iterator[ObjectInfo], prefix: str, offset: str | None
    ) -> Iterator[builtins.list[ObjectMeta]]:
        chunk: builtins.list[ObjectMeta] = []
        with _obspec_errors(prefix):
            for info in infos:
                if offset is not None and info.key <= offset:
                    continue
                chunk.append(_meta(info))
                if len(chunk) == LIST_CHUNK_SIZE:
                    yield chunk
                    chunk = []
        if chunk:
            yield chunk

    def list_with_delimiter(self, prefix: str | None = None) -> ListResult[Sequence[ObjectMeta]]:
        """List one level under ``prefix``: the objects there and the sub-prefixes.

        Common prefixes end without ``/`` (``foo/bar``), as obstore returns them.
        """
        base = _segment_prefix(prefix)
        objects: builtins.list[ObjectMeta] = []
        prefixes: builtins.list[str] = []
        with _obspec_errors(prefix or ""):
            for info in self._storage.list(base):
                head, sep, _ = info.key[len(base) :].partition("/")
                if not sep:
                    objects.append(_meta(info))
                elif not prefixes or prefixes[-1] != base + head:
                    prefixes.append(base + head)
        return {"common_prefixes": prefixes, "objects": objects}

    # -- writes ------------------------------------------------------------------------

    def put(
        self,
        path: str,
        file: IO[bytes] | Path | bytes | Buffer | Iterator[Buffer] | Iterable[Buffer],
        *,
        attributes: Attributes | None = None,
        tags: dict[str, str] | None = None,
        mode: PutMode | None = None,
        use_multipart: bool | None = None,
        chunk_size: int = READ_CHUNK_SIZE,
        max_concurrency: int = 8,
    ) -> PutResult:
        """Write ``file`` to every replica, per the write policy.

        Args:
            path: the object key.
            file: bytes, any buffer, a binary file, a local :class:`~pathlib.Path`, or an
                iterable of buffers (streamed, bounded memory).
            attributes: ``Content-Type`` and user metadata.
            tags: not supported (must be empty).
            mode: ``"overwrite"`` (default), ``"create"`` or an ``UpdateVersion`` (see
                the module's limits: checked, then written, not atomically).
            use_multipart: ignored.
            chunk_size: ignored.
            max_concurrency: ignored.

        Returns:
            The new object's ``e_tag`` and ``version`` (its version stamp).

        Raises:
            AlreadyExistsError: ``mode="create"`` and the object exists.
            PreconditionError: ``UpdateVersion`` does not match the current version, or
                the object does not exist.
            NotSupportedError: tags, or an attribute failover does not store.
        """
        if tags:
            raise NotSupportedError("failover does not store object tags")
        content_type, metadata = _split_attributes(attributes or {})
        with _obspec_errors(path):
            self._check_mode(path, mode)
            with _payload(file) as payload:
                info = self._storage.put(
                    path, payload, content_type=content_type, metadata=metadata
                )
        stamp = info.version or None
        return {"e_tag": stamp, "version": stamp}

    def _check_mode(self, path: str, mode: PutMode | None) -> None:
        if mode is None or mode == "overwrite":
            return
        if mode == "create":
            if self._storage.exists(path):
                raise AlreadyExistsError(f"object {path!r} already exists")
            return
        if not isinstance(mode, dict):
            raise TypeError(f"mode must be 'create', 'overwrite' or an UpdateVersion: {mode!r}")
        wanted = {v for v in (mode.get("e_tag"), mode.get("version")) if v is not None}
        if not wanted:
            raise ValueError("an UpdateVersion needs an e_tag or a version")
        try:
            current = self._storage.head(path).version
        except errors.NotFoundError as exc:
            raise PreconditionError(f"object {path!r} does not exist: nothing to update") from exc
        if any(current != v.strip('"') for v in wanted):
            raise PreconditionError(
                f"object {path!r} is at version {current}, not {', '.join(sorted(wanted))}"
            )

    def delete(self, paths: str | Sequence[str]) -> None:
        """Delete one object or several, from every replica; missing ones are fine.

        Raises:
            QuorumNotReached: (failover's) too few replicas acknowledged a delete.
        """
        for path in [paths] if isinstance(paths, str) else paths:
            with _obspec_errors(path):
                self._storage.delete(path)

    def copy(self, from_: str, to: str, *, overwrite: bool = True) -> None:
        """Copy an object, streamed through this process (content type and metadata too).

        Raises:
            NotFoundError: ``from_`` does not exist.
            AlreadyExistsError: ``overwrite=False`` and ``to`` exists (checked, then
                written: not atomic, see the module's limits).
        """
        with _obspec_errors(from_):
            if not overwrite and self._storage.exists(to):
                raise AlreadyExistsError(f"object {to!r} already exists")
            with self._storage.open(from_) as reader:
                info = reader.info
                self._storage.put(
                    to, reader, content_type=info.content_type, metadata=info.metadata
                )

    def rename(self, from_: str, to: str, *, overwrite: bool = True) -> None:
        """Copy an object, then delete the source (not atomic: both exist for a moment).

        Raises:
            NotFoundError: ``from_`` does not exist.
            AlreadyExistsError: ``overwrite=False`` and ``to`` exists.
        """
        self.copy(from_, to, overwrite=overwrite)
        self.delete(from_)


async def _as_bytes(chunks: AsyncIterable[Buffer]) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        yield memoryview(chunk).tobytes()


def _check_conditions(path: str, info: ObjectInfo, options: GetOptions) -> None:
    version = options.get("version")
    if version is not None and version != info.version:
        raise NotFoundError(
            f"object {path!r} is at version {info.version}; failover keeps no older version"
        )
    if_match = options.get("if_match")
    if if_match is not None and not _etag_matches(if_match, info.version):
        raise PreconditionError(f"object {path!r} is at version {info.version}")
    if_none_match = options.get("if_none_match")
    if if_none_match is not None and _etag_matches(if_none_match, info.version):
        raise NotModifiedError(f"object {path!r} is at version {info.version}")
    since: datetime | None = options.get("if_modified_since")
    if since is not None and info.last_modified <= since:
        raise NotModifiedError(f"object {path!r} not modified since {since.isoformat()}")
    since = options.get("if_unmodified_since")
    if since is not None and info.last_modified > since:
        raise PreconditionError(f"object {path!r} modified since {since.isoformat()}")


def _check_range_start(path: str, start: int, info: ObjectInfo) -> None:
    if start >= info.size:
        raise ValueError(
            f"range of {path!r} starts at {start}, at or after the end of the object "
            f"({info.size} bytes)"
        )


def _byte_range(requested: Any) -> tuple[int, int | None]:
    if requested is None:
        return 0, None
    if isinstance(requested, dict):
        if "offset" in requested:
            return int(requested["offset"]), None
        raise ValueError(
            f"range must be (start, end), {{'offset': n}} or {{'suffix': n}}: {requested!r}"
        )
    start, end = requested
    if end <= start:
        raise ValueError(f"empty range {start}..{end}")
    return int(start), int(end)


def _stop(start: int, end: int | None, length: int | None) -> int:
    if (end is None) == (length is None):
        raise ValueError("give exactly one of end or length")
    return end if end is not None else start + (length or 0)


def _segment_prefix(prefix: str | None) -> str:
    """Match whole segments, as obspec does: ``foo/bar`` lists under ``foo/bar/``."""
    if not prefix:
        return ""
    return prefix if prefix.endswith("/") else prefix + "/"


def _split_attributes(attributes: Attributes) -> tuple[str | None, dict[str, str]]:
    content_type = None
    metadata: dict[str, str] = {}
    for name, value in attributes.items():
        if name.lower() == "content-type":
            content_type = value
        elif name.lower() in _UNSTORED_ATTRIBUTES:
            raise NotSupportedError(f"failover does not store the {name} attribute")
        else:
            metadata[name] = value
    return content_type, metadata


@contextlib.contextmanager
def _payload(file: Any) -> Iterator[Any]:
    """Turn what obspec's ``put`` accepts into what :meth:`Storage.put` takes."""
    if isinstance(file, Path):
        with file.open("rb") as opened:
            yield opened
    elif isinstance(file, bytes | bytearray | memoryview) or hasattr(file, "read"):
        yield file
    else:
        try:
            view = memoryview(file)
        except TypeError:
            yield (memoryview(part).tobytes() for part in file)
        else:
            yield view.tobytes()
