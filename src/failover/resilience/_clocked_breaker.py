"""The pybreaker subclasses behind :class:`~failover.resilience.BreakerRegistry`.

They live apart from :mod:`failover.resilience.breaker` so that ``import failover`` does
not import pybreaker: pybreaker imports the ``redis`` client at import time whenever it
is installed (and redis imports asyncio), which every application importing failover
would pay for. This module is imported when the first registry is built.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, cast

import pybreaker

if TYPE_CHECKING:
    from failover.resilience.breaker import OnStateChange
    from failover.types import BreakerState

__all__ = ["ClockedCircuitBreaker", "StateChangeListener"]

# The registry's logger: a broken hook is reported under the module that documents it.
logger = logging.getLogger("failover.resilience.breaker")


class ClockedCircuitBreaker(pybreaker.CircuitBreaker):
    """A ``pybreaker.CircuitBreaker`` whose ``opened_at`` comes from a given wall clock.

    Everything else is pybreaker's. ``open()`` mirrors pybreaker 1.4.1's, with the
    timestamp taken from ``wall_now`` instead of ``datetime.now(UTC)``.
    """

    def __init__(
        self,
        *,
        wall_now: Callable[[], datetime],
        fail_max: int = 5,
        reset_timeout_seconds: float = 60.0,
        success_threshold: int = 1,
        listeners: Sequence[pybreaker.CircuitBreakerListener] = (),
        state_storage: pybreaker.CircuitBreakerStorage | None = None,
        name: str | None = None,
    ) -> None:
        """Create the breaker.

        Args:
            wall_now: returns the current time as an aware UTC datetime.
            fail_max: consecutive failures that open the breaker.
            reset_timeout_seconds: pybreaker's ``reset_timeout``.
            success_threshold: successful trials that close a half-open breaker.
            listeners: pybreaker listeners.
            state_storage: pybreaker storage (in memory by default).
            name: the backend name.
        """
        super().__init__(
            fail_max=fail_max,
            reset_timeout=reset_timeout_seconds,
            success_threshold=success_threshold,
            listeners=list(listeners),
            state_storage=state_storage,
            name=name,
        )
        self._wall_now = wall_now

    @property
    def opened_at(self) -> datetime | None:
        """When the breaker last opened (from the storage), or ``None`` if never."""
        return self._state_storage.opened_at

    def open(self) -> bool:
        """Open the circuit, stamping ``opened_at`` with the injected clock.

        Returns:
            Whether the tripping call should raise ``CircuitBreakerError`` (pybreaker's
            ``throw_new_error_on_trip``).
        """
        with self._lock:
            self._state_storage.opened_at = self._wall_now()
            self._state_storage.state = pybreaker.STATE_OPEN
            self.state = pybreaker.STATE_OPEN
            return self._throw_new_error_on_trip


class StateChangeListener(pybreaker.CircuitBreakerListener):
    """Forwards pybreaker's state changes to the registry's callback."""

    def __init__(self, name: str, callback: OnStateChange) -> None:
        self._name = name
        self._callback = callback

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        if old_state is None or old_state.name == new_state.name:
            return
        try:
            self._callback(
                self._name,
                cast("BreakerState", old_state.name),
                cast("BreakerState", new_state.name),
            )
        except Exception:
            # A broken event hook must not break the call path it observes.
            logger.exception("on_state_change hook failed for backend %r", self._name)
