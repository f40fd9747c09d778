"""One circuit breaker per backend, fed with outcomes instead of wrapping the I/O.

The state machine and its storage are pybreaker's (one ``pybreaker.CircuitBreaker`` per
backend name, state in a ``CircuitBreakerStorage``, so a ``CircuitRedisStorage`` can be
plugged in through ``storage_factory`` to share breakers across a fleet: with
``FAILOVER_BREAKER_STORAGE`` the dispatcher plugs in :mod:`failover.shared_breakers`,
which wraps it with a local fallback). pybreaker itself is imported when the first
registry is built, not by ``import failover``. What differs is *how* it is driven:

* pybreaker holds one lock for the whole of ``CircuitBreaker.call()``, so running the
  backend call inside it would serialise every call to that backend. The registry never
  does: the caller asks :meth:`BreakerRegistry.allow` before the call, does the I/O on
  its own, and reports the outcome with :meth:`BreakerRegistry.record_success` or
  :meth:`BreakerRegistry.record_failure`. Outcomes are fed to pybreaker through
  ``CircuitBreaker.call`` with a trivial function (that returns, or raises a private
  marker exception), so pybreaker's own counters, transitions and listeners do the work
  and its lock is held for microseconds.
* Only failures for which ``is_failure(exc)`` holds (``failover.errors.is_transient``
  by default) count. A ``NotFoundError`` or a permanent error is an *answer*: it proves
  the backend is up and is recorded as a success.
* **Half-open admits one trial at a time.** pybreaker lets every call through while
  half-open; :meth:`BreakerRegistry.allow` grants a single trial and refuses the others
  until its outcome is recorded. A trial whose outcome never comes (the caller
  abandoned it) is forgotten after ``trial_timeout_seconds``, so the breaker cannot get
  stuck. The trial slot is local to the process: with shared storage, each process
  may send one trial.
* **Injectable clock.** pybreaker stamps ``opened_at`` with ``datetime.now()`` and
  checks the reset timeout only inside ``call()``. Here the stamp is written by a small
  subclass (:class:`ClockedCircuitBreaker`, overriding ``open()``) from a wall clock
  anchored on the injected :class:`~failover.resilience.clock.Clock`
  (``wall time at construction + clock.monotonic() - its value at construction``), and
  the registry checks the reset timeout itself with the same clock. Tests pass a
  ``ManualClock`` and call ``advance()``: nothing sleeps. (With shared storage,
  processes compare ``opened_at`` stamps from their own anchored clocks: they agree to
  within the drift of the monotonic clock since each process started, and Redis
  storage keeps whole seconds anyway.)
* A state that pybreaker leaves at "open" past the reset timeout until the next call
  looks at it is moved to "half-open" by the :meth:`BreakerRegistry.allow` that admits
  the trial. :meth:`BreakerRegistry.state` reports the stored state; use
  :meth:`BreakerRegistry.available` or :meth:`BreakerRegistry.retry_after` to know
  whether a call would be admitted.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn, cast

from failover.errors import ConfigError, is_transient
from failover.resilience.clock import Clock, SystemClock
from failover.types import BreakerState

if TYPE_CHECKING:
    import pybreaker

    from failover.resilience._clocked_breaker import ClockedCircuitBreaker

__all__ = ["BreakerRegistry", "ClockedCircuitBreaker", "OnStateChange"]

logger = logging.getLogger(__name__)

OnStateChange = Callable[[str, BreakerState, BreakerState], None]
"""``on_state_change(name, old_state, new_state)``, called after a breaker moved."""

# pybreaker's state names (``pybreaker.STATE_*``), here so that this module need not
# import pybreaker (see failover.resilience._clocked_breaker for why).
_CLOSED = "closed"
_OPEN = "open"
_HALF_OPEN = "half-open"


def __getattr__(name: str) -> Any:
    # ClockedCircuitBreaker is public, but defining it imports pybreaker: do it on use.
    if name == "ClockedCircuitBreaker":
        from failover.resilience._clocked_breaker import (  # noqa: PLC0415
            ClockedCircuitBreaker,
        )

        return ClockedCircuitBreaker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _RecordedFailure(Exception):
    """Raised inside pybreaker's ``call()`` to feed it a failure that happened outside."""


def _breaker_error() -> type[Exception]:
    """``pybreaker.CircuitBreakerError`` (pybreaker is loaded once a breaker exists)."""
    import pybreaker  # noqa: PLC0415 - see _clocked_breaker for why

    return pybreaker.CircuitBreakerError


def _succeed() -> None:
    return None


def _fail() -> NoReturn:
    raise _RecordedFailure


class _Entry:
    __slots__ = ("breaker", "lock", "trial_started_at")

    def __init__(self, breaker: ClockedCircuitBreaker) -> None:
        self.breaker = breaker
        self.lock = threading.RLock()
        self.trial_started_at: float | None = None


class BreakerRegistry:
    """Circuit breakers keyed by backend name; thread-safe.

    Typical use around one backend call::

        if not breakers.allow(name):
            errors[name] = ...  # "breaker open, retry after breakers.retry_after(name)"
        else:
            try:
                result = backend_call()
            except Exception as exc:
                breakers.record_failure(name, exc)
                raise
            else:
                breakers.record_success(name)
    """

    def __init__(
        self,
        *,
        names: Iterable[str] = (),
        fail_max: int = 5,
        reset_timeout_seconds: float = 30.0,
        success_threshold: int = 1,
        trial_timeout_seconds: float | None = None,
        clock: Clock | None = None,
        is_failure: Callable[[BaseException], bool] = is_transient,
        on_state_change: OnStateChange | None = None,
        storage_factory: Callable[[str], pybreaker.CircuitBreakerStorage] | None = None,
    ) -> None:
        """Create the registry.

        Args:
            names: backends to create breakers for now; others are created on first use.
            fail_max: consecutive counted failures that open a breaker.
            reset_timeout_seconds: how long a breaker stays open before admitting a trial.
            success_threshold: successful trials needed to close a half-open breaker.
            trial_timeout_seconds: after this long without an outcome, a half-open
                trial is presumed lost and another is admitted (default: the reset
                timeout).
            clock: time source for the reset and trial timeouts.
            is_failure: which exceptions count against a breaker; the others count as
                successes.
            on_state_change: called as ``on_state_change(name, old, new)`` after each
                transition (exceptions it raises are logged, not propagated).
            storage_factory: builds the pybreaker storage for a backend name (default:
                ``CircuitMemoryStorage``).

        Raises:
            ConfigError: ``fail_max`` or ``success_threshold`` below 1, or a timeout
                that is negative.
        """
        if fail_max < 1:
            raise ConfigError(f"breaker fail_max must be >= 1, got {fail_max}")
        if success_threshold < 1:
            raise ConfigError(f"breaker success_threshold must be >= 1, got {success_threshold}")
        if not reset_timeout_seconds >= 0:
            raise ConfigError(
                f"breaker reset_timeout_seconds must be >= 0, got {reset_timeout_seconds}"
            )
        trial = reset_timeout_seconds if trial_timeout_seconds is None else trial_timeout_seconds
        if not trial >= 0:
            raise ConfigError(f"breaker trial_timeout_seconds must be >= 0, got {trial}")
        self._fail_max = fail_max
        self._reset_timeout_seconds = float(reset_timeout_seconds)
        self._success_threshold = success_threshold
        self._trial_timeout_seconds = float(trial)
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._is_failure = is_failure
        self._on_state_change = on_state_change
        self._storage_factory = storage_factory
        self._wall_anchor = datetime.now(UTC) - timedelta(seconds=self._clock.monotonic())
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        for name in names:
            self._entry(name)

    # -- construction ------------------------------------------------------------------

    def _wall_now(self) -> datetime:
        return self._wall_anchor + timedelta(seconds=self._clock.monotonic())

    def _entry(self, name: str) -> _Entry:
        with self._lock:
            entry = self._entries.get(name)
            if entry is None:
                import pybreaker  # noqa: PLC0415 - see _clocked_breaker for why

                from failover.resilience._clocked_breaker import (  # noqa: PLC0415
                    ClockedCircuitBreaker,
                    StateChangeListener,
                )

                storage = (
                    self._storage_factory(name)
                    if self._storage_factory is not None
                    else pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
                )
                listeners = (
                    [StateChangeListener(name, self._on_state_change)]
                    if self._on_state_change is not None
                    else []
                )
                breaker = ClockedCircuitBreaker(
                    wall_now=self._wall_now,
                    fail_max=self._fail_max,
                    reset_timeout_seconds=self._reset_timeout_seconds,
                    success_threshold=self._success_threshold,
                    listeners=listeners,
                    state_storage=storage,
                    name=name,
                )
                entry = self._entries[name] = _Entry(breaker)
            return entry

    def breaker(self, name: str) -> pybreaker.CircuitBreaker:
        """Return the underlying pybreaker breaker (for inspection; do not ``call()`` it).

        Args:
            name: backend name.

        Returns:
            The backend's breaker, created on first use.
        """
        return self._entry(name).breaker

    @property
    def names(self) -> tuple[str, ...]:
        """Backends that have a breaker, in order of creation."""
        with self._lock:
            return tuple(self._entries)

    # -- admission ---------------------------------------------------------------------

    def allow(self, name: str) -> bool:
        """Decide whether a call to the backend may go ahead now, and admit it.

        Closed: always. Open: no, until the reset timeout has elapsed; then the breaker
        moves to half-open and this call is the trial. Half-open: only if no other
        trial is in flight. Every admitted call must be followed by
        :meth:`record_success` or :meth:`record_failure`.

        Args:
            name: backend name.

        Returns:
            True if the call is admitted.
        """
        entry = self._entry(name)
        with entry.lock:
            state = entry.breaker.state.name
            if state == _CLOSED:
                return True
            now = self._clock.monotonic()
            if state == _OPEN:
                if self._open_remaining(entry) > 0:
                    return False
                entry.breaker.half_open()
                entry.trial_started_at = now
                return True
            if self._trial_remaining(entry, now) > 0:
                return False
            entry.trial_started_at = now
            return True

    def available(self, name: str) -> bool:
        """Tell whether :meth:`allow` would admit a call now, without admitting one.

        Use this from routing, which must not take a half-open trial slot.

        Args:
            name: backend name.

        Returns:
            True if a call would be admitted.
        """
        return self.retry_after(name) <= 0

    def retry_after(self, name: str) -> float:
        """Seconds until the backend would admit a call (0.0 if it would now).

        Args:
            name: backend name.

        Returns:
            0.0 when closed, or open past the reset timeout, or half-open without a
            trial in flight; otherwise the time left.
        """
        entry = self._entry(name)
        with entry.lock:
            state = entry.breaker.state.name
            if state == _CLOSED:
                return 0.0
            if state == _OPEN:
                return self._open_remaining(entry)
            return self._trial_remaining(entry, self._clock.monotonic())

    def _open_remaining(self, entry: _Entry) -> float:
        opened_at = entry.breaker.opened_at
        if opened_at is None:
            return 0.0
        reopen_at = opened_at + timedelta(seconds=self._reset_timeout_seconds)
        return max(0.0, (reopen_at - self._wall_now()).total_seconds())

    def _trial_remaining(self, entry: _Entry, now: float) -> float:
        if entry.trial_started_at is None:
            return 0.0
        return max(0.0, entry.trial_started_at + self._trial_timeout_seconds - now)

    # -- outcomes ----------------------------------------------------------------------

    def record_success(self, name: str) -> None:
        """Report that an admitted call got an answer.

        Closed: resets the failure count. Half-open: the trial succeeded (closes the
        breaker once ``success_threshold`` trials have). Open: ignored (the outcome of
        a call admitted before the breaker opened says nothing new).

        Args:
            name: backend name.
        """
        entry = self._entry(name)
        with entry.lock:
            state = entry.breaker.state.name
            if state == _OPEN:
                return
            if state == _CLOSED and entry.breaker.fail_counter == 0:
                return  # the hot path: nothing to reset, so skip pybreaker's call()
            # CircuitBreakerError: another process opened it meanwhile; nothing to record.
            with contextlib.suppress(_breaker_error()):
                entry.breaker.call(_succeed)
            if state == _HALF_OPEN:
                entry.trial_started_at = None

    def record_failure(self, name: str, exc: BaseException) -> None:
        """Report that an admitted call failed with ``exc``.

        Exceptions for which ``is_failure(exc)`` is false (``NotFoundError``, permanent
        errors) are recorded as successes. Otherwise: closed, one more consecutive
        failure (the breaker opens at ``fail_max``); half-open, the trial failed and the
        breaker opens again for another reset timeout; open, ignored.

        Args:
            name: backend name.
            exc: what the call raised.
        """
        if not self._is_failure(exc):
            self.record_success(name)
            return
        entry = self._entry(name)
        with entry.lock:
            state = entry.breaker.state.name
            if state == _OPEN:
                return
            # The marker comes back out, or CircuitBreakerError if this failure tripped it.
            with contextlib.suppress(_RecordedFailure, _breaker_error()):
                entry.breaker.call(_fail)
            if state == _HALF_OPEN:
                entry.trial_started_at = None

    # -- inspection --------------------------------------------------------------------

    def state(self, name: str) -> BreakerState:
        """Return the stored state of the backend's breaker.

        Args:
            name: backend name.

        Returns:
            ``"closed"``, ``"open"`` or ``"half-open"``. An open breaker past its reset
            timeout still reads ``"open"`` until :meth:`allow` admits its trial.
        """
        entry = self._entry(name)
        with entry.lock:
            return cast("BreakerState", entry.breaker.state.name)

    def failure_count(self, name: str) -> int:
        """Return the consecutive counted failures of a backend.

        Args:
            name: backend name.

        Returns:
            pybreaker's failure counter.
        """
        return self._entry(name).breaker.fail_counter

    def reset(self, name: str) -> None:
        """Close the backend's breaker and forget its failures (an operator override).

        Args:
            name: backend name.
        """
        entry = self._entry(name)
        with entry.lock:
            entry.breaker.close()
            entry.trial_started_at = None

    def __repr__(self) -> str:
        return (
            f"BreakerRegistry(fail_max={self._fail_max}, "
            f"reset_timeout_seconds={self._reset_timeout_seconds}, backends={list(self.names)!r})"
        )
