"""A point in time by which a whole call (every retry and failover) must be done."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from failover.errors import ConfigError
from failover.resilience.clock import Clock, SystemClock

__all__ = ["Deadline"]


@dataclass(frozen=True, slots=True)
class Deadline:
    """An absolute expiry time on a :class:`~failover.resilience.clock.Clock`.

    A deadline is an immutable value: pass the same one to every attempt of a call and
    let each attempt :meth:`cap` its own timeout with it.

    Attributes:
        expires_at: the clock reading (``clock.monotonic()``) at which it expires;
            ``math.inf`` for a deadline that never expires.
        clock: the clock the deadline is measured on.
    """

    expires_at: float
    clock: Clock = field(default_factory=SystemClock, compare=False)

    @classmethod
    def after(cls, seconds: float, *, clock: Clock | None = None) -> Deadline:
        """Create a deadline ``seconds`` from now.

        Args:
            seconds: time budget from now; ``math.inf`` for no deadline.
            clock: time source; the system clock by default.

        Returns:
            The new deadline.

        Raises:
            ConfigError: ``seconds`` is negative or NaN.
        """
        if math.isnan(seconds) or seconds < 0:
            raise ConfigError(f"a deadline needs a non-negative number of seconds, got {seconds}")
        source = clock if clock is not None else SystemClock()
        return cls(expires_at=source.monotonic() + seconds, clock=source)

    @classmethod
    def never(cls, *, clock: Clock | None = None) -> Deadline:
        """Create a deadline that never expires.

        Args:
            clock: time source; the system clock by default.

        Returns:
            A deadline whose :meth:`remaining` is always ``math.inf``.
        """
        return cls(expires_at=math.inf, clock=clock if clock is not None else SystemClock())

    def remaining(self) -> float:
        """Return the seconds left, never negative (0.0 once expired)."""
        return max(0.0, self.expires_at - self.clock.monotonic())

    @property
    def expired(self) -> bool:
        """True once no time is left."""
        return self.remaining() <= 0.0

    def cap(self, timeout_seconds: float) -> float:
        """Bound one attempt's timeout by the time left.

        Args:
            timeout_seconds: the timeout the attempt would use on its own.

        Returns:
            ``min(timeout_seconds, remaining())``, never negative.
        """
        return max(0.0, min(timeout_seconds, self.remaining()))
