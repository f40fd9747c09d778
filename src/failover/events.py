"""Instrumentation: frozen event records delivered to hook objects.

Every decision the resilience layer makes (a breaker moving, a retry, a failover, a
hedge, a backend demoted or recovered) is described by one frozen record and passed to
each hook of the :class:`~failover.Storage` (or :class:`~failover.Invoker`). A hook is
any callable taking one :class:`Event`. Without hooks, :class:`LoggingHook` logs through
the stdlib ``failover`` logger:

=====================  =========  ==================================================
event                  level      when
=====================  =========  ==================================================
BreakerStateChanged    WARNING    a breaker opened
                       INFO       it went half-open or closed again
BackendDemoted         INFO       a backend's score fell below the demotion threshold
BackendRecovered       INFO       it rose back above the recovery threshold
FailedOver             INFO       a call moved on from a backend that failed
RetryScheduled         DEBUG      a transient failure will be retried after a backoff
HedgeFired             DEBUG      a hedged read went to a second backend
ClockSkewDetected      WARNING    a replica held a version stamped too far ahead
=====================  =========  ==================================================

A hook that raises is logged and otherwise ignored: instrumentation never breaks a call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from failover.types import BreakerState

__all__ = [
    "BackendDemoted",
    "BackendRecovered",
    "BreakerStateChanged",
    "ClockSkewDetected",
    "Event",
    "EventHook",
    "FailedOver",
    "HedgeFired",
    "LoggingHook",
    "RetryScheduled",
    "emit",
]

logger = logging.getLogger("failover")
# A library leaves output to the application: nothing is printed unless it configures
# logging (stdlib convention; without this, warnings would reach stderr on their own).
logger.addHandler(logging.NullHandler())


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every event.

    Attributes:
        backend: the backend (or invocation target) the event is about.
    """

    backend: str


@dataclass(frozen=True, slots=True)
class BreakerStateChanged(Event):
    """A backend's circuit breaker changed state."""

    old: BreakerState
    new: BreakerState


@dataclass(frozen=True, slots=True)
class RetryScheduled(Event):
    """A transient failure will be retried on the same backend after ``delay_seconds``."""

    operation: str
    key: str
    attempt: int
    delay_seconds: float
    error: str


@dataclass(frozen=True, slots=True)
class FailedOver(Event):
    """A call gave up on ``backend`` (error or breaker open) and moves on."""

    operation: str
    key: str
    error: str


@dataclass(frozen=True, slots=True)
class HedgeFired(Event):
    """``backend`` had not answered after ``delay_seconds``; ``hedge`` was asked too."""

    operation: str
    key: str
    hedge: str
    delay_seconds: float


@dataclass(frozen=True, slots=True)
class ClockSkewDetected(Event):
    """``backend`` held a version of ``key`` stamped ``ahead_seconds`` ahead of this clock.

    Beyond ``FAILOVER_MAX_CLOCK_SKEW_SECONDS`` a stamp is not trusted: this writer's
    clock does not adopt it and the write replaced it. Some writer's clock is wrong.
    """

    key: str
    version: str
    ahead_seconds: float


@dataclass(frozen=True, slots=True)
class BackendDemoted(Event):
    """The backend's health score fell below the demotion threshold."""

    score: float


@dataclass(frozen=True, slots=True)
class BackendRecovered(Event):
    """The backend's health score rose back above the recovery threshold."""

    score: float


#: A hook receives every event; any callable of one argument will do.
EventHook = Callable[[Event], object]


class LoggingHook:
    """Logs events through the ``failover`` logger at the levels in the module docs."""

    def __init__(self, log: logging.Logger | None = None) -> None:
        self._log = log or logger

    def __call__(self, event: Event) -> None:
        """Log one event."""
        if isinstance(event, BreakerStateChanged):
            level = logging.WARNING if event.new == "open" else logging.INFO
            self._log.log(level, "breaker %s: %s -> %s", event.backend, event.old, event.new)
        elif isinstance(event, BackendDemoted):
            self._log.info("backend %s demoted (score %.2f)", event.backend, event.score)
        elif isinstance(event, BackendRecovered):
            self._log.info("backend %s recovered (score %.2f)", event.backend, event.score)
        elif isinstance(event, FailedOver):
            self._log.info(
                "%s %r: failing over from %s (%s)",
                event.operation,
                event.key,
                event.backend,
                event.error,
            )
        elif isinstance(event, RetryScheduled):
            self._log.debug(
                "%s %r on %s: attempt %d failed (%s), retrying in %.3f s",
                event.operation,
                event.key,
                event.backend,
                event.attempt,
                event.error,
                event.delay_seconds,
            )
        elif isinstance(event, HedgeFired):
            self._log.debug(
                "%s %r: %s silent after %.3f s, hedging to %s",
                event.operation,
                event.key,
                event.backend,
                event.delay_seconds,
                event.hedge,
            )
        elif isinstance(event, ClockSkewDetected):
            self._log.warning(
                "%r on %s has version %s, %.1f s ahead of this clock: not trusted, replaced",
                event.key,
                event.backend,
                event.version,
                event.ahead_seconds,
            )
        else:
            self._log.debug("%r", event)


def emit(hooks: Iterable[EventHook], event: Event) -> None:
    """Deliver ``event`` to every hook; a hook's exception is logged, never raised."""
    for hook in hooks:
        try:
            hook(event)
        except Exception:
            logger.exception("event hook %r failed on %r", hook, event)
