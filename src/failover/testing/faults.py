"""Fault injection at the backend seam: wrap any Backend to make it fail on purpose.

:class:`FaultyBackend` wraps a :class:`~failover.backends.base.Backend` and, for the
operations it is told to affect, injects faults before (or after) delegating:

* errors: with probability ``error_rate`` raise a transient error (``ThrottledError``
  by default) instead of calling the inner backend;
* latency: sleep ``latency_seconds`` before each call, plus ``tail_latency_seconds``
  with probability ``tail_probability``;
* hang: block until the hang is lifted (:meth:`FaultyBackend.heal` or
  ``set(hang=False)``), or raise ``BackendTimeout`` after ``hang_seconds``;
* corruption: flip the first byte of the data that ``get`` and ``open`` return.

``operations`` and ``keys`` narrow which calls are affected, so a test can script a
fault precisely: ``hang=True, operations={"get"}, keys={"slow/1"}`` stalls every read of
that one key and nothing else, until the test lifts it.

The random draws come from ``random.Random(seed)``, two per affected call whatever the
settings, so a sequence of calls meets the same faults on every run with the same seed.
Faults change at run time with :meth:`FaultyBackend.set` and are cleared with
:meth:`FaultyBackend.heal`; counters of calls and injected faults support assertions.

Example:
    >>> flaky = FaultyBackend(MemoryBackend("a"), seed=1, error_rate=0.5)  # doctest: +SKIP
    >>> flaky.set(hang=True, operations={"put"})                           # doctest: +SKIP
    >>> flaky.heal()                                                        # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import random
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Literal, Self

from failover.backends.base import replica_identity
from failover.errors import BackendError, BackendTimeout, NotFoundError, ThrottledError

if TYPE_CHECKING:
    from failover.backends.base import (
        Backend,
        ByteRange,
        FetchedObject,
        ObjectReader,
        StoredObject,
    )
    from failover.payload import Payload

__all__ = [
    "OPERATIONS",
    "ErrorFactory",
    "FaultKind",
    "FaultSettings",
    "FaultyBackend",
    "InjectedFault",
]

#: The Backend operations faults can affect (``close`` is never affected).
OPERATIONS: frozenset[str] = frozenset({"put", "get", "open", "head", "delete", "list"})

#: Builds the exception to inject from ``(operation, key)``.
ErrorFactory = Callable[[str, str], BaseException]

#: What an :class:`InjectedFault` records.
FaultKind = Literal["error", "latency", "tail", "hang", "timeout", "corrupt"]

_LOG_LENGTH = 10_000


@dataclass(frozen=True, slots=True)
class FaultSettings:
    """The faults a :class:`FaultyBackend` injects (all off by default).

    Attributes:
        error_rate: probability (0..1) that an affected call raises ``error``.
        error: exception class to raise (built with the backend's name), or a factory
            called with ``(operation, key)``.
        latency_seconds: added before every affected call.
        tail_latency_seconds: added on top, with probability ``tail_probability``.
        tail_probability: probability (0..1) of the tail latency.
        hang: block affected calls until the hang is lifted or ``hang_seconds`` pass.
        hang_seconds: the longest a call hangs before raising ``BackendTimeout``.
        corrupt: flip the first byte of the data ``get``/``open`` return.
        operations: the operations affected; ``None`` means all of :data:`OPERATIONS`.
        keys: the keys affected (for ``list``, the prefix); ``None`` means every key.
    """

    error_rate: float = 0.0
    error: type[BaseException] | ErrorFactory = ThrottledError
    latency_seconds: float = 0.0
    tail_latency_seconds: float = 0.0
    tail_probability: float = 0.0
    hang: bool = False
    hang_seconds: float = 30.0
    corrupt: bool = False
    operations: frozenset[str] | None = None
    keys: frozenset[str] | None = None

    def __post_init__(self) -> None:
        for name in ("error_rate", "tail_probability"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {value!r}")
        for name in ("latency_seconds", "tail_latency_seconds", "hang_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.operations is not None:
            ops = frozenset(self.operations)
            unknown = sorted(ops - OPERATIONS)
            if unknown:
                raise ValueError(
                    f"unknown operation(s) {unknown}; use some of {sorted(OPERATIONS)}"
                )
            object.__setattr__(self, "operations", ops)
        if self.keys is not None:
            object.__setattr__(self, "keys", _key_set(self.keys))

    def affects(self, operation: str, key: str | None = None) -> bool:
        """Tell whether faults apply to ``operation`` (on ``key``, when given)."""
        if self.operations is not None and operation not in self.operations:
            return False
        return key is None or self.keys is None or key in self.keys


@dataclass(frozen=True, slots=True)
class InjectedFault:
    """One fault a :class:`FaultyBackend` injected.

    Attributes:
        operation: the Backend operation (``"get"``, ``"put"``, ...).
        key: the key (the prefix for ``list``).
        kind: ``error``, ``latency``, ``tail``, ``hang``, ``timeout`` (a hang that
            ran out) or ``corrupt``.
    """

    operation: str
    key: str
    kind: FaultKind


class FaultyBackend:
    """A Backend wrapper that injects errors, latency, hangs and corruption.

    Args:
        inner: the backend to delegate to.
        name: the name to report (default: ``inner.name``).
        seed: seed of the random draws (same seed, same calls: same faults).
        error_rate: see :class:`FaultSettings`.
        error: see :class:`FaultSettings`.
        latency_seconds: see :class:`FaultSettings`.
        tail_latency_seconds: see :class:`FaultSettings`.
        tail_probability: see :class:`FaultSettings`.
        hang: see :class:`FaultSettings`.
        hang_seconds: see :class:`FaultSettings`.
        corrupt: see :class:`FaultSettings`.
        operations: see :class:`FaultSettings`; any iterable of operation names.
        keys: see :class:`FaultSettings`; any iterable of keys.
        sleep: how to wait out latency (e.g. a fake clock's ``sleep``); by default a
            wait that :meth:`heal` and :meth:`close` cut short.

    Raises:
        ValueError: for a probability outside 0..1, a negative duration or an unknown
            operation.
    """

    def __init__(
        self,
        inner: Backend,
        *,
        name: str | None = None,
        seed: int = 0,
        error_rate: float = 0.0,
        error: type[BaseException] | ErrorFactory = ThrottledError,
        latency_seconds: float = 0.0,
        tail_latency_seconds: float = 0.0,
        tail_probability: float = 0.0,
        hang: bool = False,
        hang_seconds: float = 30.0,
        corrupt: bool = False,
        operations: Iterable[str] | None = None,
        keys: Iterable[str] | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self._inner = inner
        self._name = name
        self._settings = FaultSettings(
            error_rate=error_rate,
            error=error,
            latency_seconds=latency_seconds,
            tail_latency_seconds=tail_latency_seconds,
            tail_probability=tail_probability,
            hang=hang,
            hang_seconds=hang_seconds,
            corrupt=corrupt,
            operations=None if operations is None else frozenset(operations),
            keys=None if keys is None else _key_set(keys),
        )
        self._rng = random.Random(seed)  # noqa: S311 - fault schedule, not cryptography
        self._sleep = sleep
        self._cond = threading.Condition()
        self._heal_generation = 0
        self._closed = False
        self._hanging = 0
        self._calls: Counter[str] = Counter()
        self._faults: Counter[str] = Counter()
        self._log: deque[InjectedFault] = deque(maxlen=_LOG_LENGTH)

    # -- control ---------------------------------------------------------------------

    @property
    def inner(self) -> Backend:
        """The wrapped backend."""
        return self._inner

    @property
    def settings(self) -> FaultSettings:
        """The faults currently injected."""
        with self._cond:
            return self._settings

    def set(self, **changes: object) -> None:
        """Change some fault settings; the others keep their values.

        Args:
            **changes: :class:`FaultSettings` fields, e.g. ``error_rate=1.0`` or
                ``hang=True, operations={"put"}`` (any iterable of operation names), or
                ``keys={"a"}`` (any iterable of keys).

        Raises:
            TypeError: for an unknown setting.
            ValueError: for an invalid value.
        """
        with self._cond:
            self._settings = dataclasses.replace(self._settings, **changes)  # type: ignore[arg-type]
            self._cond.notify_all()

    def heal(self) -> None:
        """Clear every fault; hanging calls proceed and sleeping calls wake up."""
        with self._cond:
            self._settings = FaultSettings()
            self._heal_generation += 1
            self._cond.notify_all()

    # -- counters --------------------------------------------------------------------

    @property
    def calls(self) -> dict[str, int]:
        """Calls per operation (affected or not) since creation or :meth:`reset_counters`."""
        with self._cond:
            return dict(self._calls)

    @property
    def faults(self) -> dict[str, int]:
        """Injected faults per :data:`FaultKind`."""
        with self._cond:
            return dict(self._faults)

    @property
    def injected(self) -> tuple[InjectedFault, ...]:
        """The injected faults in order (the last 10,000)."""
        with self._cond:
            return tuple(self._log)

    @property
    def hanging(self) -> int:
        """How many calls are hanging right now."""
        with self._cond:
            return self._hanging

    def wait_until_hanging(self, count: int = 1, *, timeout_seconds: float = 5.0) -> bool:
        """Wait until at least ``count`` calls are hanging.

        Args:
            count: the number of hanging calls to wait for.
            timeout_seconds: the longest to wait.

        Returns:
            True if that many calls were hanging before the time ran out.
        """
        with self._cond:
            return self._cond.wait_for(lambda: self._hanging >= count, timeout=timeout_seconds)

    def reset_counters(self) -> None:
        """Zero the call and fault counters and forget the injected faults."""
        with self._cond:
            self._calls.clear()
            self._faults.clear()
            self._log.clear()

    # -- the Backend protocol --------------------------------------------------------

    @property
    def name(self) -> str:
        """The given name, else the inner backend's."""
        return self._name if self._name is not None else self._inner.name

    @property
    def identity(self) -> str:
        """The inner backend's identity: faults do not move where the objects live."""
        return replica_identity(self._inner)

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
        """Inject faults, then store through the inner backend."""
        self._before("put", key)
        return self._inner.put(
            key,
            payload,
            content_type=content_type,
            metadata=metadata,
            if_absent=if_absent,
            if_match=if_match,
        )

    def get(self, key: str, *, byte_range: ByteRange | None = None) -> FetchedObject:
        """Inject faults, then read through the inner backend (maybe corrupting it)."""
        settings = self._before("get", key)
        fetched = self._inner.get(key, byte_range=byte_range)
        if settings.corrupt and fetched.data:
            self._record("get", key, "corrupt")
            return dataclasses.replace(fetched, data=_flip_first_byte(fetched.data))
        return fetched

    def open(self, key: str, *, byte_range: ByteRange | None = None) -> ObjectReader:
        """Inject faults, then open through the inner backend (maybe corrupting it)."""
        settings = self._before("open", key)
        reader = self._inner.open(key, byte_range=byte_range)
        if settings.corrupt:
            return _CorruptingReader(reader, lambda: self._record("open", key, "corrupt"))
        return reader

    def head(self, key: str) -> StoredObject:
        """Inject faults, then ask the inner backend."""
        self._before("head", key)
        return self._inner.head(key)

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        """Inject faults, then delete through the inner backend."""
        self._before("delete", key)
        self._inner.delete(key, if_match=if_match)

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        """List through the inner backend; faults strike when iteration starts."""
        self._before("list", prefix)
        yield from self._inner.list(prefix)

    def close(self) -> None:
        """Release hanging and sleeping calls, then close the inner backend."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._inner.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FaultyBackend({self.name!r}, {self.settings!r})"

    # -- internals -------------------------------------------------------------------

    def _record(self, operation: str, key: str, kind: FaultKind) -> None:
        with self._cond:
            self._faults[kind] += 1
            self._log.append(InjectedFault(operation, key, kind))

    def _before(self, operation: str, key: str) -> FaultSettings:
        """Count the call and inject the faults due before it; return the settings used."""
        with self._cond:
            self._calls[operation] += 1
            settings = self._settings
            if not settings.affects(operation, key):
                return FaultSettings()
            # Always two draws per affected call, so that the schedule depends only on
            # the seed and the sequence of calls, not on which faults are switched on.
            error_draw = self._rng.random()
            tail_draw = self._rng.random()
            # Taken with the settings so that a heal() from here on cuts the wait short.
            heal_generation = self._heal_generation
        if settings.hang:
            settings, heal_generation = self._hang(operation, key, settings)
            if not settings.affects(operation, key):
                return FaultSettings()
        delay = settings.latency_seconds
        if delay > 0:
            self._record(operation, key, "latency")
        if settings.tail_latency_seconds > 0 and tail_draw < settings.tail_probability:
            delay += settings.tail_latency_seconds
            self._record(operation, key, "tail")
        if delay > 0:
            self._wait(delay, heal_generation)
        if error_draw < settings.error_rate:
            self._record(operation, key, "error")
            raise self._make_error(settings.error, operation, key)
        return settings

    def _hang(self, operation: str, key: str, settings: FaultSettings) -> tuple[FaultSettings, int]:
        self._record(operation, key, "hang")
        with self._cond:
            self._hanging += 1
            self._cond.notify_all()
            try:
                lifted = self._cond.wait_for(
                    lambda: self._closed or not self._settings.hang,
                    timeout=settings.hang_seconds,
                )
            finally:
                self._hanging -= 1
                self._cond.notify_all()
            closed = self._closed
            current = self._settings, self._heal_generation
        if not lifted or closed:
            self._record(operation, key, "timeout")
            raise BackendTimeout(
                f"injected hang: {operation} {key!r} got no answer "
                f"within {settings.hang_seconds:g} s",
                backend=self.name,
            )
        return current

    def _wait(self, seconds: float, generation: int) -> None:
        if self._sleep is not None:
            self._sleep(seconds)
            return
        with self._cond:
            self._cond.wait_for(
                lambda: self._closed or self._heal_generation != generation, timeout=seconds
            )

    def _make_error(
        self, error: type[BaseException] | ErrorFactory, operation: str, key: str
    ) -> BaseException:
        if isinstance(error, type):
            return self._instantiate(error, operation, key)
        factory: ErrorFactory = error
        return factory(operation, key)

    def _instantiate(self, error: type[BaseException], operation: str, key: str) -> BaseException:
        if issubclass(error, NotFoundError):
            return error(key, backend=self.name)
        message = f"injected {error.__name__} on {operation} {key!r}"
        if issubclass(error, BackendError):
            return error(message, backend=self.name)
        return error(message)


def _key_set(keys: Iterable[str]) -> frozenset[str]:
    if isinstance(keys, str):  # frozenset("key") would be a set of its characters
        raise TypeError("keys must be a collection of keys, not one string")
    return frozenset(keys)


def _flip_first_byte(data: bytes) -> bytes:
    return bytes([data[0] ^ 0xFF]) + data[1:]


class _CorruptingReader:
    """An ObjectReader whose first non-empty read has its first byte flipped."""

    def __init__(self, reader: ObjectReader, on_corrupt: Callable[[], None]) -> None:
        self._reader = reader
        self._on_corrupt = on_corrupt
        self._pending = True

    @property
    def info(self) -> StoredObject:
        return self._reader.info

    def read(self, size: int = -1, /) -> bytes:
        data = self._reader.read(size)
        if self._pending and data:
            self._pending = False
            self._on_corrupt()
            return _flip_first_byte(data)
        return data

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
