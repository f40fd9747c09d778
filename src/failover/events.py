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
BreakerStorageUnavailable  WARNING  shared breaker state (Redis) failed: local breakers
BreakerStorageRecovered    INFO     it answers again: breakers are shared again
=====================  =========  ==================================================

A hook that raises is logged and otherwise ignored: instrumentation never breaks a call.

Every event has :meth:`Event.to_dict`, its fields as JSON-ready data named like the
metrics and ``failover status --json``: ``event`` (the class name), ``backend``, then
each attribute, a quantity that has a Prometheus family taking that family's key
(:func:`failover.types.field_name`): a breaker change gives ``breaker_state`` (the new
state) and ``previous_breaker_state``, a demotion or recovery ``health_score``.
:class:`LoggingHook` attaches it to each log record as ``record.failover``, for
structured log handlers.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar

from failover.types import BreakerState

__all__ = [
    "BackendDemoted",
    "BackendRecovered",
    "BreakerStateChanged",
    "BreakerStorageRecovered",
    "BreakerStorageUnavailable",
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

    #: Attributes whose key in :meth:`to_dict` is a metric's (see the module docs).
    _keys: ClassVar[Mapping[str, str]] = {}

    backend: str

    def to_dict(self) -> dict[str, str | float | int]:
        """JSON-ready fields: ``event`` (the class name), ``backend``, then the others.

        Keys follow the metrics' names (see the module docs), so logs, alerts and
        ``failover status --json`` use one vocabulary.
        """
        out: dict[str, str | float | int] = {"event": type(self).__name__}
        for field in dataclasses.fields(self):
            out[self._keys.get(field.name, field.name)] = getattr(self, field.name)
        return out


@dataclass(frozen=True, slots=True)
class BreakerStateChanged(Event):
    """A backend's circuit breaker changed state (``to_dict()``: ``breaker_state`` is new)."""

    _keys: ClassVar[Mapping[str, str]] = {
        "new": "breaker_state",
        "old": "previous_breaker_state",
    }

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
class BreakerStorageUnavailable(Event):
    """The shared breaker storage (Redis) failed: this instance uses local breakers.

    Emitted once when it fails, not per call. ``backend`` is the storage's URL without
    its password; ``error`` what went wrong; Redis is tried again after
    ``retry_seconds``.
    """

    error: str
    retry_seconds: float


@dataclass(frozen=True, slots=True)
class BreakerStorageRecovered(Event):
    """The shared breaker storage answers again: breakers are shared again.

    ``backend`` is the storage's URL without its password; ``down_seconds`` how long
    this instance used local breakers.
    """

    down_seconds: float


@dataclass(frozen=True, slots=True)
class BackendDemoted(Event):
    """The backend's health score fell below the demotion threshold."""

    _keys: ClassVar[Mapping[str, str]] = {"score": "health_score"}

    score: float


@dataclass(frozen=True, slots=True)
class BackendRecovered(Event):
    """The backend's health score rose back above the recovery threshold."""

    _keys: ClassVar[Mapping[str, str]] = {"score": "health_score"}

    score: float


#: A hook receives every event; any callable of one argument will do.
EventHook = Callable[[Event], object]


class LoggingHook:
    """Logs events through the ``failover`` logger at the levels in the module docs."""

    def __init__(self, log: logging.Logger | None = None) -> None:
        self._log = log or logger

    def __call__(self, event: Event) -> None:
        """Log one event (its :meth:`Event.to_dict` rides along as ``record.failover``)."""
        extra = {"failover": event.to_dict()}
        if isinstance(event, BreakerStateChanged):
            level = logging.WARNING if event.new == "open" else logging.INFO
            self._log.log(
                level,
                "breaker %s: %s -> %s",
                event.backend,
                event.old,
                event.new,
                extra=extra,
            )
        elif isinstance(event, BackendDemoted):
            self._log.info(
                "backend %s demoted (score %.2f)", event.backend, event.score, extra=extra
            )
        elif isinstance(event, BackendRecovered):
            self._log.info(
                "backend %s recovered (score %.2f)", event.backend, event.score, extra=extra
            )
        elif isinstance(event, FailedOver):
            self._log.info(
                "%s %r: failing over from %s (%s)",
                event.operation,
                event.key,
                event.backend,
                event.error,
                extra=extra,
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
                extra=extra,
            )
        elif isinstance(event, HedgeFired):
            self._log.debug(
                "%s %r: %s silent after %.3f s, hedging to %s",
                event.operation,
                event.key,
                event.backend,
                event.delay_seconds,
                event.hedge,
                extra=extra,
            )
        elif isinstance(event, ClockSkewDetected):
            self._log.warning(
                "%r on %s has version %s, %.1f s ahead of this clock: not trusted, replaced",
                event.key,
                event.backend,
                event.version,
                event.ahead_seconds,
                extra=extra,
            )
        elif isinstance(event, BreakerStorageUnavailable):
            self._log.warning(
                "breaker storage %s unavailable (%s): using local breakers, retrying in %.1f s",
                event.backend,
                event.error,
                event.retry_seconds,
                extra=extra,
            )
        elif isinstance(event, BreakerStorageRecovered):
            self._log.info(
                "breaker storage %s answers again after %.1f s: breakers are shared again",
                event.backend,
                event.down_seconds,
                extra=extra,
            )
        else:
            self._log.debug("%r", event, extra=extra)


def emit(hooks: Iterable[EventHook], event: Event) -> None:
    """Deliver ``event`` to every hook; a hook's exception is logged, never raised."""
    for hook in hooks:
        try:
            hook(event)
        except Exception:
            logger.exception("event hook %r failed on %r", hook, event)
