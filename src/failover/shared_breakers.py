"""Circuit breakers shared by every instance through Redis, with a local fallback.

With ``FAILOVER_BREAKER_STORAGE=redis://…`` (see :mod:`failover.breaker_storage`) the
dispatcher of each :class:`~failover.Storage` and :class:`~failover.Invoker` keeps its
breakers' state in Redis, through pybreaker's ``CircuitRedisStorage``: when one
instance's breaker for a backend opens, every instance sees it open and stops waiting on
that backend, instead of each paying ``fail_max`` timeouts on its own.

**What is shared.** Per backend *identity* (where its objects live, see
:func:`~failover.backends.base.replica_identity`; for invocation targets, their name),
under the application's namespace: the state, the consecutive failures, the successful
trials while half-open, and when the breaker opened (whole seconds). **What stays
local**: the half-open trial slot (each process may send one trial), health scores,
latencies and the retry budget.

**Redis unreachable or slow never fails a call, nor holds it long.**

* The client's connect and read timeouts are short
  (:meth:`~failover.breaker_storage.BreakerStorageURL.client_timeout_seconds`: 0.25 s,
  at most a quarter of one attempt's timeout and an eighth of the deadline) and it never
  retries on its own.
* Every access to Redis is guarded: any error (refused, reset, timed out, an error
  reply, a value that is not a breaker state), or an answer that took longer than the
  client's timeout in all (dripping in), marks Redis *unavailable* for this
  instance, once, with a :class:`~failover.events.BreakerStorageUnavailable` event (a
  WARNING in the log). From then on each breaker uses its local copy, without touching
  the network. The local copy mirrors what was last read from or written to Redis, so
  a breaker that was open in Redis stays open, and local breakers keep working
  (opening, half-opening, closing) for as long as Redis is away.
* After ``retry_seconds`` (default 5 s), one access at a time tries Redis again. If it
  answers, a :class:`~failover.events.BreakerStorageRecovered` event follows and Redis
  is the source of truth again (what the instance's local breakers did meanwhile is not
  published); if not, another ``retry_seconds`` on local breakers.

So a call pays at most about two client timeouts (connecting, then one read) when Redis
first fails, and one access per ``retry_seconds`` pays it again while Redis is still
away; with the defaults that is 0.5 s, far below the call's deadline.

This module imports pybreaker, and the ``redis`` client when :class:`SharedBreakers` is
built: the dispatcher imports it only when shared breakers are configured.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pybreaker

from failover.breaker_storage import BreakerStorageURL
from failover.errors import ConfigError
from failover.events import BreakerStorageRecovered, BreakerStorageUnavailable, Event
from failover.resilience.clock import Clock, SystemClock

if TYPE_CHECKING:
    from redis import Redis

__all__ = ["SharedBreakers", "SharedStateUnavailable", "forget_namespace"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_STATES = frozenset({pybreaker.STATE_CLOSED, pybreaker.STATE_OPEN, pybreaker.STATE_HALF_OPEN})
_INSTALL_HINT = "pip install 'failover[redis]'"


class SharedStateUnavailable(Exception):
    """Redis did not give a usable answer (internal: never reaches the application).

    It is deliberately *not* a ``redis.RedisError``: ``CircuitRedisStorage`` catches
    those itself, logs a traceback per call and answers with a default, which would hide
    the outage from the fallback and flood the log.
    """


class SharedBreakers:
    """Breaker storages kept in Redis, for the breakers of one Storage or Invoker.

    Pass :meth:`storage` (with the backend's key) as the
    :class:`~failover.resilience.BreakerRegistry`'s ``storage_factory``.

    Args:
        url: where Redis is, and the application's namespace.
        timeout_seconds: the client's connect and read timeout.
        on_event: receives :class:`~failover.events.BreakerStorageUnavailable` and
            :class:`~failover.events.BreakerStorageRecovered` (one per transition).
        clock: time source of the retry delay.
        client: a ready client (tests pass a fake); default: a ``redis.Redis`` for
            ``url``.

    Raises:
        ConfigError: the ``redis`` client is not installed.
    """

    def __init__(
        self,
        url: BreakerStorageURL,
        *,
        timeout_seconds: float,
        on_event: Callable[[Event], None] | None = None,
        clock: Clock | None = None,
        client: Any = None,
    ) -> None:
        self._url = url
        self._timeout_seconds = timeout_seconds
        self._on_event = on_event
        self._clock: Clock = clock or SystemClock()
        if client is None:
            client, errors = _connect(url, timeout_seconds=timeout_seconds)
        else:
            errors = _error_types()
        self._client = client
        self._guarded = _GuardedClient(client, errors)
        self._lock = threading.Lock()
        # ``_epoch`` counts transitions; an access carries the epoch it was admitted in,
        # so a late answer from before a transition cannot undo it.
        self._epoch = 0
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._probing = False
        self._closed = False

    @property
    def url(self) -> BreakerStorageURL:
        """Where the breakers are kept."""
        return self._url

    @property
    def available(self) -> bool:
        """False while the breakers use their local copies (Redis failed recently)."""
        return self._down_since is None and not self._closed

    def key_namespace(self, key: str) -> str:
        """The Redis key prefix of the breaker for ``key`` (a backend identity).

        ``<namespace>:breaker:<sha256(key)[:24]>``; pybreaker appends
        ``:pybreaker:<field>``.
        """
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]
        return f"{self._url.namespace}:breaker:{digest}"

    def storage(self, key: str) -> pybreaker.CircuitBreakerStorage:
        """A pybreaker storage for the breaker of ``key``, kept in Redis when it can be.

        Args:
            key: what identifies the backend across instances (its identity).
        """
        return _FallbackStorage(self, self.key_namespace(key))

    def close(self) -> None:
        """Stop using Redis (breakers keep their local copies) and release the client."""
        self._closed = True
        try:
            self._client.close()
        except Exception as exc:  # noqa: BLE001 - closing must not fail the caller
            logger.debug("closing the breaker storage client failed: %s", _describe(exc, self))

    def __repr__(self) -> str:
        state = "available" if self.available else "unavailable (local breakers)"
        return f"SharedBreakers({self._url.redacted!r}, {state})"

    # -- availability ------------------------------------------------------------------

    def _admit(self) -> int | None:
        """The epoch to try Redis in, or ``None``: use the local copy now."""
        if self._closed:
            return None
        if self._down_since is None:
            return self._epoch
        with self._lock:
            if self._down_since is None:
                return self._epoch
            if self._probing or self._clock.monotonic() < self._retry_at:
                return None
            self._probing = True  # one probe at a time; the others stay local
            return self._epoch

    def _succeeded(self, epoch: int) -> None:
        if self._down_since is None:
            return
        with self._lock:
            if self._down_since is None or epoch != self._epoch or not self._probing:
                return
            down_seconds = self._clock.monotonic() - self._down_since
            self._down_since = None
            self._probing = False
            self._epoch += 1
        self._emit(BreakerStorageRecovered(self._url.redacted, down_seconds))

    def _failed(self, epoch: int, exc: BaseException) -> None:
        with self._lock:
            now = self._clock.monotonic()
            if self._down_since is not None:
                if epoch == self._epoch and self._probing:
                    self._probing = False
                    self._retry_at = now + self._url.retry_seconds
                return
            if epoch != self._epoch:
                return  # admitted before Redis last recovered: says nothing new
            self._down_since = now
            self._retry_at = now + self._url.retry_seconds
            self._epoch += 1
        self._emit(
            BreakerStorageUnavailable(
                self._url.redacted, _describe(exc, self), self._url.retry_seconds
            )
        )

    def _emit(self, event: Event) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(event)
        except Exception:
            logger.exception("breaker storage event hook failed on %r", event)


class _GuardedClient:
    """The Redis client as ``CircuitRedisStorage`` sees it.

    Every failure becomes :class:`SharedStateUnavailable`, which ``CircuitRedisStorage``
    does not catch, so it reaches :class:`_FallbackStorage`.
    """

    def __init__(self, client: Any, errors: tuple[type[BaseException], ...]) -> None:
        self._client = client
        self._errors = errors

    def _call(self, method: str, *args: Any) -> Any:
        try:
            return getattr(self._client, method)(*args)
        except self._errors as exc:
            raise SharedStateUnavailable(type(exc).__name__) from exc

    def get(self, key: str) -> Any:
        return self._call("get", key)

    def set(self, key: str, value: Any) -> Any:
        return self._call("set", key, value)

    def setnx(self, key: str, value: Any) -> Any:
        return self._call("setnx", key, value)

    def incr(self, key: str) -> Any:
        return self._call("incr", key)

    def transaction(self, func: Callable[[Any], None], *watches: str) -> Any:
        return self._call("transaction", func, *watches)

    def keys(self, pattern: str) -> list[Any]:
        return list(self._call("scan_iter", pattern))

    def delete(self, *keys: Any) -> Any:
        return self._call("delete", *keys)


class _FallbackStorage(pybreaker.CircuitBreakerStorage):
    """One breaker's state: in Redis when it answers, else in a local copy.

    Every write goes to the local copy and, when Redis is available, to Redis; every
    read comes from Redis when it is available (and refreshes the local copy), else
    from the local copy.
    """

    def __init__(self, shared: SharedBreakers, namespace: str) -> None:
        super().__init__("redis")
        self._shared = shared
        self._namespace = namespace
        self._redis: pybreaker.CircuitRedisStorage | None = None
        self._lock = threading.Lock()
        self._state: str = pybreaker.STATE_CLOSED
        self._counter = 0
        self._successes = 0
        self._opened_at: datetime | None = None

    def _redis_storage(self) -> pybreaker.CircuitRedisStorage:
        if self._redis is None:
            # Its constructor writes the initial keys (SETNX): it may fail, and is
            # tried again on the next access.
            self._redis = pybreaker.CircuitRedisStorage(
                pybreaker.STATE_CLOSED,
                cast("Redis", self._shared._guarded),
                namespace=self._namespace,
            )
        return self._redis

    def _remote(self, op: Callable[[pybreaker.CircuitRedisStorage], T]) -> tuple[T] | None:
        shared = self._shared
        epoch = shared._admit()
        if epoch is None:
            return None
        started = shared._clock.monotonic()
        try:
            value = op(self._redis_storage())
        except Exception as exc:  # noqa: BLE001 - no storage problem may fail a call
            shared._failed(epoch, exc)
            return None
        elapsed = shared._clock.monotonic() - started
        if elapsed > shared._timeout_seconds:
            # Socket timeouts bound each read, not a whole answer (one dripping in a
            # byte at a time, say): a Redis this slow costs calls as much as a dead one.
            shared._failed(
                epoch,
                SharedStateUnavailable(
                    f"an answer took {elapsed:.2f} s, more than the "
                    f"{shared._timeout_seconds:g} s timeout"
                ),
            )
        else:
            shared._succeeded(epoch)
        return (value,)

    # -- pybreaker's storage interface -------------------------------------------------

    @property
    def state(self) -> str:
        """The breaker's state, from Redis when it answers."""
        got = self._remote(self._read_state)
        if got is not None:
            with self._lock:
                self._state = got[0]
        return self._state

    @state.setter
    def state(self, state: str) -> None:
        with self._lock:
            self._state = state
        self._remote(lambda r: setattr(r, "state", state))

    def _read_state(self, storage: pybreaker.CircuitRedisStorage) -> str:
        state = storage.state
        if state not in _STATES:
            raise SharedStateUnavailable("the stored breaker state is not one")
        if state != pybreaker.STATE_CLOSED and (state != self._state or self._opened_at is None):
            # Another instance opened it: keep when, so that the local copy stays open
            # for the rest of the reset timeout if Redis goes away.
            opened_at = storage.opened_at
            if opened_at is not None:
                with self._lock:
                    self._opened_at = opened_at
        return state

    def increment_counter(self) -> None:
        """One more consecutive failure."""
        with self._lock:
            self._counter += 1
        self._remote(lambda r: r.increment_counter())

    def reset_counter(self) -> None:
        """No consecutive failure."""
        with self._lock:
            self._counter = 0
        self._remote(lambda r: r.reset_counter())

    def increment_success_counter(self) -> None:
        """One more successful trial while half-open."""
        with self._lock:
            self._successes += 1
        self._remote(lambda r: r.increment_success_counter())

    def reset_success_counter(self) -> None:
        """No successful trial."""
        with self._lock:
            self._successes = 0
        self._remote(lambda r: r.reset_success_counter())

    @property
    def counter(self) -> int:
        """Consecutive failures."""
        got = self._remote(lambda r: int(r.counter))
        if got is not None:
            with self._lock:
                self._counter = got[0]
        return self._counter

    @property
    def success_counter(self) -> int:
        """Successful trials while half-open."""
        got = self._remote(lambda r: int(r.success_counter))
        if got is not None:
            with self._lock:
                self._successes = got[0]
        return self._successes

    @property
    def opened_at(self) -> datetime | None:
        """When the breaker last opened (whole seconds when it comes from Redis)."""
        got = self._remote(lambda r: r.opened_at)
        if got is not None and got[0] is not None:
            with self._lock:
                self._opened_at = got[0]
        return self._opened_at

    @opened_at.setter
    def opened_at(self, now: datetime) -> None:
        with self._lock:
            self._opened_at = now
        self._remote(lambda r: setattr(r, "opened_at", now))


def _describe(exc: BaseException, shared: SharedBreakers) -> str:
    """What went wrong, without the password (whatever the error's message holds)."""
    cause = exc.__cause__ if isinstance(exc, SharedStateUnavailable) and exc.__cause__ else exc
    if isinstance(cause, SharedStateUnavailable):
        text = str(cause)  # our own words
    else:
        text = f"{type(cause).__name__}: {cause}".strip().removesuffix(":")
    password = shared.url.password
    if password:
        text = text.replace(password, "***")
    return text


def _error_types() -> tuple[type[BaseException], ...]:
    """What the client raises when Redis cannot answer (and socket errors)."""
    try:
        from redis.exceptions import RedisError  # noqa: PLC0415 - optional extra
    except ImportError:
        return (OSError,)
    return (RedisError, OSError)


def _connect(
    url: BreakerStorageURL, *, timeout_seconds: float
) -> tuple[Any, tuple[type[BaseException], ...]]:
    """A ``redis.Redis`` for ``url`` that fails fast and never retries (no I/O yet)."""
    try:
        import redis  # noqa: PLC0415 - optional extra
        from redis.backoff import NoBackoff  # noqa: PLC0415
        from redis.retry import Retry  # noqa: PLC0415
    except ImportError as exc:
        raise ConfigError(
            f"FAILOVER_BREAKER_STORAGE={url.redacted} needs the redis client: {_INSTALL_HINT}"
        ) from exc
    if not pybreaker.HAS_REDIS_SUPPORT:  # pybreaker was imported before redis was
        raise ConfigError(
            "pybreaker was imported without redis support; import redis first or restart"
        )
    client = redis.Redis(
        host=url.host,
        port=url.port,
        db=url.db,
        username=url.username,
        password=url.password,
        ssl=url.scheme == "rediss",
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        # The fallback decides what happens after a failure: a retry inside the client
        # would multiply the time a call waits on a Redis that does not answer.
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )
    return client, _error_types()


def forget_namespace(url: BreakerStorageURL, *, timeout_seconds: float = 2.0) -> int:
    """Delete every breaker kept under ``url``'s namespace; return how many keys went.

    Drills and demos run under a namespace of their own and remove it with this, so
    that they never leave breakers behind, nor touch the application's.

    Raises:
        ConfigError: the ``redis`` client is not installed.
        SharedStateUnavailable: Redis did not answer.
    """
    client, errors = _connect(url, timeout_seconds=timeout_seconds)
    guarded = _GuardedClient(client, errors)
    try:
        keys = guarded.keys(f"{url.namespace}:breaker:*")
        return int(guarded.delete(*keys)) if keys else 0
    finally:
        client.close()
