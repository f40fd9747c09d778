"""The asyncio API: :class:`Storage` and :class:`Invoker` as coroutines.

Same methods, settings, errors and guarantees as :class:`failover.Storage` and
:class:`failover.Invoker`, awaited instead of called::

    import failover.aio

    async with failover.aio.Storage.from_env() as store:
        await store.put("reports/q3.csv", data)
        body = await store.get("reports/q3.csv")
        async for info in store.list("reports/"):
            ...

**One resilience core.** An async object wraps the synchronous one and runs each call
in a small pool of *coordinator* threads: the coordinator runs the very code the
synchronous API runs (breakers, health routing, the retry budget, hedging, deadlines,
the journal, hints), whose backend requests run on the per-backend workers of the
dispatcher as always, and the event loop awaits the coordinator's future
(:func:`asyncio.wrap_future`). The event loop's thread never performs I/O nor waits for
it, and the two APIs cannot drift apart. A coordinator mostly waits on futures; with
more calls in flight than coordinators (``concurrency``, default 32) the extra calls
queue, they do not fail.

**Cancellation.** Cancelling the awaiting task (a client disconnect, an
``asyncio.timeout``) abandons the call the way a deadline does: a call that has not
started never starts; one that has started finishes in the background within
``deadline_seconds`` and its result is dropped (a stream it opened is closed). A write
in progress is never left unaccounted for: its intent is in the journal before any
replica is written, replicas that miss it get hints, and repair completes it; until
then its outcome is unknown, as with :class:`~failover.errors.QuorumNotReached`.
:meth:`Storage.aclose` waits for writes still in flight, as ``close()`` does.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextvars
import functools
import itertools
import threading
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, ClassVar, Generic, Literal, Self, TypeVar

import failover
from failover.backends.base import Backend, ByteRange
from failover.errors import FailoverError
from failover.invoke.base import InvocationResult
from failover.payload import PayloadSource
from failover.telemetry import Telemetry
from failover.types import BackendHealth, ObjectInfo, ReconcileReport, RepairReport

__all__ = ["AsyncStorageReader", "Invoker", "Storage"]

T = TypeVar("T")
S = TypeVar("S")

#: Coordinator threads per async object (calls beyond it queue). More threads do not add
#: throughput (each backend has 16 workers) but do add GIL contention that the event
#: loop pays as lag: 200 coordinators under 200 concurrent requests delayed the loop by
#: about 400 ms at worst on a 2-core machine, 32 by about 60 ms.
DEFAULT_CONCURRENCY = 32
_LIST_BATCH = 256
_READ_CHUNK = 1024 * 1024


class _Coordinators:
    """Runs blocking facade calls off the event loop and hands their futures to it."""

    def __init__(self, concurrency: int, name: str) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self._pool = cf.ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=name)

    async def run(
        self,
        fn: Callable[[], T],
        *,
        on_abandoned: Callable[[T], None] | None = None,
    ) -> T:
        """Run ``fn`` on a coordinator; ``on_abandoned`` releases a result nobody awaits."""
        # The caller's context variables come along (as with asyncio.to_thread), so
        # the operation's span is a child of the task's current span.
        future = self._pool.submit(contextvars.copy_context().run, fn)
        if on_abandoned is not None:
            release = on_abandoned

            def drop_if_abandoned(done: cf.Future[T]) -> None:
                if abandoned.is_set() and not done.cancelled() and done.exception() is None:
                    release(done.result())

            abandoned = threading.Event()
            future.add_done_callback(drop_if_abandoned)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            if on_abandoned is not None:
                abandoned.set()
                if future.done() and not future.cancelled() and future.exception() is None:
                    on_abandoned(future.result())
            raise

    def shutdown(self) -> None:
        """Stop the threads once the calls they run have ended."""
        self._pool.shutdown(wait=False, cancel_futures=True)


class _AsyncChunks:
    """A blocking iterator over an async iterable, pulled by a coordinator thread.

    Each chunk is fetched on the event loop (``run_coroutine_threadsafe``); if the
    awaiting task is cancelled, the next pull raises instead of waiting for ever.
    """

    def __init__(self, source: AsyncIterable[bytes], loop: asyncio.AbstractEventLoop) -> None:
        self._source = source.__aiter__()
        self._loop = loop
        self.cancelled = threading.Event()

    def __iter__(self) -> Iterator[bytes]:
        while not self.cancelled.is_set():
            pulled = asyncio.run_coroutine_threadsafe(self._next(), self._loop)
            try:
                chunk = pulled.result()
            except StopAsyncIteration:
                return
            yield chunk
        raise FailoverError("put cancelled while its data was being read; nothing written")

    async def _next(self) -> bytes:
        return await self._source.__anext__()


class AsyncStorageReader:
    """An async stream over one object (returned by :meth:`Storage.open`).

    ``await read(n)``, ``async for chunk in reader`` (chunks of up to 1 MiB), and
    ``async with``. Verified and resumable like :class:`failover.StorageReader`.

    Attributes:
        info: the object's description from the replica that serves the stream.
    """

    def __init__(self, reader: failover.StorageReader, coordinators: _Coordinators) -> None:
        self._reader = reader
        self._run = coordinators.run
        self.info = reader.info

    async def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes (everything left when negative)."""
        return await self._run(functools.partial(self._reader.read, size))

    def __aiter__(self) -> AsyncIterator[bytes]:
        """Iterate over chunks of up to 1 MiB."""
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        while chunk := await self.read(_READ_CHUNK):
            yield chunk

    async def aclose(self) -> None:
        """Release the underlying connection."""
        await self._run(self._reader.close)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class _AsyncFacade(Generic[S]):
    """What the async Storage and Invoker share: building, the sync object, closing."""

    _sync_type: ClassVar[Any]
    _thread_prefix: ClassVar[str]

    def __init__(self, sync: S, *, concurrency: int = DEFAULT_CONCURRENCY) -> None:
        self._sync = sync
        self._coordinators = _Coordinators(concurrency, self._thread_prefix)

    @classmethod
    def from_settings(cls, settings: Any, **options: Any) -> Self:
        """Build like the sync class's ``from_settings`` (no I/O is done)."""
        concurrency = options.pop("concurrency", DEFAULT_CONCURRENCY)
        return cls(cls._sync_type.from_settings(settings, **options), concurrency=concurrency)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> Self:
        """Build from the ``FAILOVER_*`` variables, like the sync class's ``from_env``."""
        concurrency = options.pop("concurrency", DEFAULT_CONCURRENCY)
        return cls(cls._sync_type.from_env(environ, **options), concurrency=concurrency)

    @classmethod
    def from_urls(cls, urls: Iterable[str] | str, **options: Any) -> Self:
        """Build from URLs and options, like the sync class's ``from_urls``."""
        concurrency = options.pop("concurrency", DEFAULT_CONCURRENCY)
        return cls(cls._sync_type.from_urls(urls, **options), concurrency=concurrency)

    @property
    def sync(self) -> S:
        """The synchronous object underneath (same backends, journal and breakers)."""
        return self._sync

    def health(self) -> dict[str, BackendHealth]:
        """Health of every backend or target (no I/O: read from memory)."""
        health: dict[str, BackendHealth] = self._sync.health()  # type: ignore[attr-defined]
        return health

    @property
    def telemetry(self) -> Telemetry:
        """What the object underneath measured (see :mod:`failover.telemetry`)."""
        telemetry: Telemetry = self._sync.telemetry  # type: ignore[attr-defined]
        return telemetry

    async def aclose(self) -> None:
        """Close the object underneath (a Storage drains its writes first), then the pool."""
        await self._coordinators.run(self._sync.close)  # type: ignore[attr-defined]
        self._coordinators.shutdown()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"aio.{self._sync!r}"


class Storage(_AsyncFacade[failover.Storage]):
    """Replicated object storage for asyncio code: :class:`failover.Storage`, awaited.

    Build it with :meth:`from_env`, :meth:`from_urls` or :meth:`from_settings`, or wrap a
    :class:`failover.Storage` (the async object then owns it). Use ``async with`` or
    :meth:`aclose`.

    Args:
        sync: the synchronous Storage whose resilience core this one uses.
        concurrency: coordinator threads (calls in flight beyond it queue).
    """

    _sync_type = failover.Storage
    _thread_prefix = "failover-aio"

    @property
    def settings(self) -> failover.Settings:
        """The settings in force."""
        return self._sync.settings

    @property
    def backends(self) -> Mapping[str, Backend]:
        """The backends by name, in priority order."""
        return self._sync.backends

    async def put(
        self,
        key: str,
        data: PayloadSource | AsyncIterable[bytes],
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        """Store an object; see :meth:`failover.Storage.put`.

        ``data`` may also be an async iterable of bytes (spooled as it arrives).
        """
        if not isinstance(data, AsyncIterable):
            call = functools.partial(
                self._sync.put, key, data, content_type=content_type, metadata=metadata
            )
            return await self._coordinators.run(call)
        chunks = _AsyncChunks(data, asyncio.get_running_loop())
        call = functools.partial(
            self._sync.put, key, iter(chunks), content_type=content_type, metadata=metadata
        )
        try:
            return await self._coordinators.run(call)
        except asyncio.CancelledError:
            chunks.cancelled.set()
            raise

    async def get(
        self,
        key: str,
        *,
        byte_range: ByteRange | None = None,
        consistency: Literal["any", "latest"] = "any",
    ) -> bytes:
        """Return an object's bytes; see :meth:`failover.Storage.get`."""
        call = functools.partial(
            self._sync.get, key, byte_range=byte_range, consistency=consistency
        )
        return await self._coordinators.run(call)

    async def open(self, key: str, *, byte_range: ByteRange | None = None) -> AsyncStorageReader:
        """Open an object for streaming reads; see :meth:`failover.Storage.open`."""
        reader = await self._coordinators.run(
            functools.partial(self._sync.open, key, byte_range=byte_range),
            on_abandoned=lambda r: r.close(),
        )
        return AsyncStorageReader(reader, self._coordinators)

    async def head(self, key: str) -> ObjectInfo:
        """Describe an object; see :meth:`failover.Storage.head`."""
        return await self._coordinators.run(functools.partial(self._sync.head, key))

    async def exists(self, key: str) -> bool:
        """True if a replica has the key; see :meth:`failover.Storage.exists`."""
        return await self._coordinators.run(functools.partial(self._sync.exists, key))

    async def delete(self, key: str) -> None:
        """Delete an object from every replica; see :meth:`failover.Storage.delete`."""
        await self._coordinators.run(functools.partial(self._sync.delete, key))

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Yield every key under ``prefix`` once; see :meth:`failover.Storage.list`.

        Listings are fetched in batches on a coordinator, lazily, as the loop iterates.
        """
        listing = await self._coordinators.run(functools.partial(self._sync.list, prefix))
        while batch := await self._coordinators.run(
            lambda: list(itertools.islice(listing, _LIST_BATCH))
        ):
            for info in batch:
                yield info

    async def repair(self) -> RepairReport:
        """Drain the repair journal and hints now; see :meth:`failover.Storage.repair`."""
        return await self._coordinators.run(self._sync.repair)

    async def reconcile(
        self,
        prefix: str = "",
        *,
        fix: bool = False,
        verify_bytes: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> ReconcileReport:
        """Compare every replica; see :meth:`failover.Storage.reconcile`.

        ``progress`` is called on a coordinator thread, not on the event loop.
        """
        call = functools.partial(
            self._sync.reconcile, prefix, fix=fix, verify_bytes=verify_bytes, progress=progress
        )
        return await self._coordinators.run(call)

    async def flush(self, *, timeout_seconds: float | None = None) -> bool:
        """Wait until replica writes still in flight end; see :meth:`failover.Storage.flush`."""
        return await self._coordinators.run(
            functools.partial(self._sync.flush, timeout_seconds=timeout_seconds)
        )


class Invoker(_AsyncFacade[failover.Invoker]):
    """Function invocation with failover for asyncio code: :class:`failover.Invoker`, awaited.

    Args:
        sync: the synchronous Invoker whose resilience core this one uses.
        concurrency: coordinator threads (calls in flight beyond it queue).
    """

    _sync_type = failover.Invoker
    _thread_prefix = "failover-aio-invoke"

    async def invoke(
        self,
        payload: object,
        *,
        idempotency_key: str | None = None,
        timeout_seconds: float | None = None,
        content_type: str | None = None,
    ) -> InvocationResult:
        """Call the function with failover; see :meth:`failover.Invoker.invoke`.

        A cancelled call is abandoned like one past its deadline: attempts already
        sent run to their end (with the same idempotency key, so the function can
        deduplicate them).
        """
        call = functools.partial(
            self._sync.invoke,
            payload,
            idempotency_key=idempotency_key,
            timeout_seconds=timeout_seconds,
            content_type=content_type,
        )
        return await self._coordinators.run(call)
