"""Prometheus: a collector that reads the live state of Storage and Invoker objects.

Install the extra (``pip install "failover[prometheus]"``), register one collector on
your registry, and expose the registry the way your application already serves HTTP;
the library never starts a server::

    from prometheus_client import CollectorRegistry, generate_latest
    from failover.prometheus import FailoverCollector

    registry = CollectorRegistry()
    registry.register(FailoverCollector(uploads, thumbnails, names=["uploads", "thumbs"]))
    body = generate_latest(registry)  # serve it at /metrics

Nothing is measured at scrape time: each scrape copies the counters of
:class:`~failover.telemetry.Stats` and calls ``health()`` (in-memory breaker and health
state, plus one count query on the local SQLite repair journal). No backend is called.

Every series carries a ``client`` label naming the object it comes from (``names=``, by
default ``storage`` or ``invoker``) and, except the operation histogram, a ``backend``
label (a backend or invocation target name: backend URLs never hold credentials, the
library refuses them). The families, named by :data:`failover.telemetry.PROMETHEUS`:

| family                                  | type      | labels                              |
|-----------------------------------------|-----------|-------------------------------------|
| ``failover_backend_requests_total``     | counter   | client, backend, outcome            |
| ``failover_operation_duration_seconds`` | histogram | client, operation, outcome          |
| ``failover_breaker_state``              | gauge     | client, backend, state              |
| ``failover_backend_health_score``       | gauge     | client, backend                     |
| ``failover_backend_latency_seconds``    | gauge     | client, backend                     |
| ``failover_backend_error_ratio``        | gauge     | client, backend                     |
| ``failover_repairs_pending``            | gauge     | client, backend (Storage only)      |
| ``failover_hints_outstanding``          | gauge     | client, backend (Storage only)      |
| ``failover_hints_oldest_age_seconds``   | gauge     | client, backend (Storage only)      |

``failover_breaker_state`` has one series per state (``closed``, ``open``,
``half-open``) valued 1 for the current state and 0 for the others, like an
OpenMetrics StateSet. The two hint families appear once a repair pass (``repair()`` or
the background worker) has looked for hints. The docs' "Observe it" page has the
units, a dashboard and alerting rules.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Protocol, get_args

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from failover.telemetry import (
    BACKEND_ERROR_RATIO,
    BACKEND_LATENCY,
    BACKEND_REQUESTS,
    BREAKER_STATE,
    DURATION_BUCKETS,
    HEALTH_SCORE,
    HINTS_OLDEST_AGE,
    HINTS_OUTSTANDING,
    OPERATION_DURATION,
    PENDING_REPAIRS,
    PROMETHEUS,
    Telemetry,
)
from failover.types import BackendHealth, BreakerState

__all__ = ["FailoverCollector", "Observed"]

logger = logging.getLogger("failover")

#: Label telling apart the objects one collector reads.
CLIENT_LABEL = "client"
_STATES: tuple[BreakerState, ...] = get_args(BreakerState)


class Observed(Protocol):
    """What the collector reads: :class:`~failover.Storage`, :class:`~failover.Invoker`.

    Their :mod:`failover.aio` counterparts qualify too.
    """

    @property
    def telemetry(self) -> Telemetry:
        """The object's counters and histograms."""
        ...

    def health(self) -> Mapping[str, BackendHealth]:
        """Breaker state, score, latency, error rate and pending repairs per backend."""
        ...


class FailoverCollector(Collector):
    """Reports the live state of Storage and Invoker objects to a Prometheus registry.

    Register it once per registry (``registry.register(FailoverCollector(store))``); to
    report several objects, pass them all to one collector, since two collectors would
    report the same families. The metrics are read when the registry is scraped.

    Args:
        *objects: the :class:`~failover.Storage` and :class:`~failover.Invoker` objects
            (sync or :mod:`failover.aio`) to report.
        names: the ``client`` label of each object, in order. Default: ``storage`` for
            a Storage and ``invoker`` for an Invoker, which is enough for one of each;
            name them when there are several of a kind. Put no secret in a name.

    Raises:
        ValueError: no object, a name count that does not match, an empty name, or two
            objects with the same name.
    """

    def __init__(self, *objects: Observed, names: Sequence[str] | None = None) -> None:
        if not objects:
            raise ValueError("FailoverCollector needs at least one Storage or Invoker")
        if names is None:
            labels = [_default_name(obj) for obj in objects]
        elif isinstance(names, str):
            raise ValueError(f"names must be a sequence of names, not the string {names!r}")
        else:
            labels = list(names)
            if len(labels) != len(objects):
                raise ValueError(f"{len(objects)} object(s) but {len(labels)} name(s)")
        if not all(labels):
            raise ValueError("a client name must not be empty")
        duplicates = sorted({n for n in labels if labels.count(n) > 1})
        if duplicates:
            raise ValueError(
                f"two objects would both be labelled client={duplicates[0]!r}; "
                "pass names=[...] with one name per object"
            )
        self._objects: tuple[tuple[str, Observed], ...] = tuple(zip(labels, objects, strict=True))

    def describe(self) -> Iterable[Metric]:
        """The families, without samples (the registry checks names with it)."""
        return list(_Families())

    def collect(self) -> Iterable[Metric]:
        """Read every object's state now (called by the registry on each scrape)."""
        families = _Families()
        for client, obj in self._objects:
            families.add(client, obj)
        return list(families)


def _default_name(obj: object) -> str:
    return type(obj).__name__.lower()


class _Families:
    """The metric families of one scrape, filled object by object."""

    def __init__(self) -> None:
        backend = [CLIENT_LABEL, "backend"]
        self.requests = CounterMetricFamily(
            PROMETHEUS[BACKEND_REQUESTS],
            "Backend attempts, by outcome (ok: answered, error: a transient failure).",
            labels=[*backend, "outcome"],
        )
        self.durations = HistogramMetricFamily(
            PROMETHEUS[OPERATION_DURATION],
            "Duration of public operations (put, get, invoke...), by outcome.",
            labels=[CLIENT_LABEL, "operation", "outcome"],
            unit="seconds",
        )
        self.breaker = GaugeMetricFamily(
            PROMETHEUS[BREAKER_STATE],
            "Circuit breaker state: 1 for the current state, 0 for the others.",
            labels=[*backend, "state"],
        )
        self.score = GaugeMetricFamily(
            PROMETHEUS[HEALTH_SCORE],
            "Health score, 0 (avoid) to 1 (healthy); higher scores get more reads.",
            labels=backend,
        )
        self.latency = GaugeMetricFamily(
            PROMETHEUS[BACKEND_LATENCY],
            "Moving average of the backend's call latency.",
            labels=backend,
            unit="seconds",
        )
        self.errors = GaugeMetricFamily(
            PROMETHEUS[BACKEND_ERROR_RATIO],
            "Moving average of the backend's transient failures, 0 to 1.",
            labels=backend,
            unit="ratio",
        )
        self.repairs = GaugeMetricFamily(
            PROMETHEUS[PENDING_REPAIRS],
            "Replica actions waiting in this host's repair journal for the backend.",
            labels=backend,
        )
        self.hints = GaugeMetricFamily(
            PROMETHEUS[HINTS_OUTSTANDING],
            "Hints kept for the backend on the other replicas, as of the last repair pass.",
            labels=backend,
        )
        self.hints_age = GaugeMetricFamily(
            PROMETHEUS[HINTS_OLDEST_AGE],
            "Age of the oldest hint kept for the backend, as of the last repair pass.",
            labels=backend,
            unit="seconds",
        )

    def __iter__(self) -> Iterator[Metric]:
        yield from (
            self.requests,
            self.durations,
            self.breaker,
            self.score,
            self.latency,
            self.errors,
            self.repairs,
            self.hints,
            self.hints_age,
        )

    def add(self, client: str, obj: Observed) -> None:
        stats = obj.telemetry.stats
        for (backend, outcome), count in sorted(stats.requests().items()):
            self.requests.add_metric([client, backend, outcome], count)
        for (operation, outcome), (counts, _count, seconds) in sorted(stats.durations().items()):
            self.durations.add_metric(
                [client, operation, outcome], _cumulative(counts), sum_value=seconds
            )
        try:
            health = obj.health()
        except Exception:  # a closed object (or one closing) must not fail the whole scrape
            logger.debug("failover collector: no health from %r", obj, exc_info=True)
            health = {}
        # Only a Storage keeps a journal and hints: an Invoker's zeros would mislead.
        repairs = callable(getattr(obj, "repair", None))
        for backend, h in health.items():
            labels = [client, backend]
            for state in _STATES:
                self.breaker.add_metric([*labels, state], 1.0 if h.state == state else 0.0)
            self.score.add_metric(labels, h.score)
            self.latency.add_metric(labels, h.latency_ms / 1000)
            self.errors.add_metric(labels, h.error_rate)
            if repairs:
                self.repairs.add_metric(labels, h.pending_repairs)
        for backend, (count, oldest_seconds) in sorted(stats.hints().items()):
            self.hints.add_metric([client, backend], count)
            self.hints_age.add_metric([client, backend], oldest_seconds)


def _cumulative(counts: Sequence[int]) -> list[tuple[str, float]]:
    """Per-bucket counts (the last above every bound) as Prometheus ``le`` buckets."""
    buckets = []
    running = 0
    for bound, count in zip((*DURATION_BUCKETS, float("inf")), counts, strict=True):
        running += count
        # Prometheus spells bounds like Go: 0.005, 1.0, +Inf.
        buckets.append(("+Inf" if math.isinf(bound) else repr(bound), float(running)))
    return buckets
