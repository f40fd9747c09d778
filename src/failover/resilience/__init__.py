"""Pure resilience core: clock, deadline, health, routing, hedging, retries, breakers.

Nothing here does I/O; every time-dependent piece takes an injectable
:class:`Clock`, so the whole core is tested with :class:`ManualClock` and can be shared
by a future async facade. Each module has one job:

* :mod:`~failover.resilience.clock`: :class:`Clock`, :class:`SystemClock`,
  :class:`ManualClock`.
* :mod:`~failover.resilience.deadline`: :class:`Deadline` for a whole call.
* :mod:`~failover.resilience.health`: :class:`HealthTracker` (peak-EWMA latency, error
  rate, 0..1 score).
* :mod:`~failover.resilience.routing`: :class:`OrderedRouter`, :class:`HealthRouter`
  (power of two choices, panic mode), :class:`HedgePolicy`, :class:`LatencyWindow`.
* :mod:`~failover.resilience.budget`: :class:`RetryBudget` (Finagle-style).
* :mod:`~failover.resilience.retry`: :class:`RetryPolicy` (full jitter) and
  :func:`call_with_retries` (tenacity).
* :mod:`~failover.resilience.breaker`: :class:`BreakerRegistry` (pybreaker, one breaker
  per backend, fed with outcomes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from failover.resilience.breaker import BreakerRegistry, OnStateChange
from failover.resilience.budget import RetryBudget
from failover.resilience.clock import Clock, ManualClock, SystemClock
from failover.resilience.deadline import Deadline
from failover.resilience.health import HealthSnapshot, HealthTracker
from failover.resilience.retry import OnRetry, RetryPolicy, call_with_retries
from failover.resilience.routing import (
    HealthRouter,
    HedgePolicy,
    LatencyWindow,
    OrderedRouter,
    RoutePlan,
    Router,
    nearest_rank,
)

if TYPE_CHECKING:
    from failover.resilience._clocked_breaker import ClockedCircuitBreaker

__all__ = [
    "BreakerRegistry",
    "Clock",
    "ClockedCircuitBreaker",
    "Deadline",
    "HealthRouter",
    "HealthSnapshot",
    "HealthTracker",
    "HedgePolicy",
    "LatencyWindow",
    "ManualClock",
    "OnRetry",
    "OnStateChange",
    "OrderedRouter",
    "RetryBudget",
    "RetryPolicy",
    "RoutePlan",
    "Router",
    "SystemClock",
    "call_with_retries",
    "nearest_rank",
]


def __getattr__(name: str) -> Any:
    # Defining ClockedCircuitBreaker imports pybreaker, which imports the redis client
    # when it is installed: loaded on first use, not by ``import failover``.
    if name == "ClockedCircuitBreaker":
        from failover.resilience._clocked_breaker import (  # noqa: PLC0415
            ClockedCircuitBreaker,
        )

        return ClockedCircuitBreaker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
