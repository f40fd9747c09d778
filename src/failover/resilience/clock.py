"""Injectable time source for every policy that measures or waits.

Policies never call :func:`time.monotonic` or :func:`time.sleep` directly: they take a
:class:`Clock`. Production code uses :class:`SystemClock`; tests (the library's and the
application's) use :class:`ManualClock`, whose ``sleep`` advances time instantly, so
backoff, breaker reset timeouts and EWMA decay are tested without sleeping.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "ManualClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """A monotonic time source that can also wait."""

    def monotonic(self) -> float:
        """Return seconds from an arbitrary fixed origin; never goes backwards."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (a real clock blocks; a manual clock just advances)."""
        ...


class SystemClock:
    """The real clock: :func:`time.monotonic` and :func:`time.sleep`."""

    __slots__ = ()

    def monotonic(self) -> float:
        """Return :func:`time.monotonic`."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Block the calling thread for ``seconds``.

        Args:
            seconds: how long to wait; must not be negative.

        Raises:
            ValueError: ``seconds`` is negative.
        """
        time.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


class ManualClock:
    """A clock that only moves when told to; for tests.

    ``sleep`` returns at once after advancing the time by the requested amount, and
    records the request in :attr:`sleeps`, so a test can assert the exact backoff a
    policy chose. Thread-safe.

    Example::

        clock = ManualClock()
        deadline = Deadline.after(5, clock=clock)
        clock.advance(6)
        assert deadline.expired
    """

    __slots__ = ("_lock", "_now", "_sleeps")

    def __init__(self, *, start_seconds: float = 0.0) -> None:
        """Create a clock reading ``start_seconds``.

        Args:
            start_seconds: the initial value of :meth:`monotonic`.
        """
        self._lock = threading.Lock()
        self._now = float(start_seconds)
        self._sleeps: list[float] = []

    def monotonic(self) -> float:
        """Return the current manual time in seconds."""
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward without recording a sleep.

        Args:
            seconds: how far to move; must not be negative.

        Raises:
            ValueError: ``seconds`` is negative (a monotonic clock never goes back).
        """
        if seconds < 0:
            raise ValueError(f"cannot move a monotonic clock backwards ({seconds} s)")
        with self._lock:
            self._now += seconds

    def sleep(self, seconds: float) -> None:
        """Advance time by ``seconds`` at once and record the sleep.

        Args:
            seconds: how long the caller asked to wait; must not be negative.

        Raises:
            ValueError: ``seconds`` is negative (as :func:`time.sleep`).
        """
        if seconds < 0:
            raise ValueError(f"sleep length must be non-negative, got {seconds}")
        with self._lock:
            self._now += seconds
            self._sleeps.append(float(seconds))

    @property
    def sleeps(self) -> tuple[float, ...]:
        """Every duration passed to :meth:`sleep`, oldest first."""
        with self._lock:
            return tuple(self._sleeps)

    def __repr__(self) -> str:
        return f"ManualClock(now={self.monotonic()!r})"
