"""Telemetry: what failover measures, under one set of names.

Every :class:`~failover.Storage` and :class:`~failover.Invoker` owns a
:class:`Telemetry`. The facades time each public operation with
:meth:`Telemetry.operation`, the dispatcher times each backend attempt with
:meth:`Telemetry.attempt`, and the repairer reports the hints it saw with
:meth:`Stats.record_hints`. What is recorded goes to:

* :class:`Stats`, in-process counters and histograms that cost a lock and a few
  additions per call, read when scraped (:mod:`failover.prometheus`) or printed
  (``failover status --json``);
* a :class:`Tracer`, when one is installed: :mod:`failover.otel` turns operations and
  attempts into OpenTelemetry spans and metrics. Without it, nothing else happens.

The names below are the contract shared by the metrics, the CLI and the docs' reference
table: ``NAME`` is the OpenTelemetry instrument name; ``PROMETHEUS[NAME]`` the
Prometheus family (``failover_`` prefix, base units, ``_total`` for counters).
"""

from __future__ import annotations

import bisect
import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from failover.errors import is_transient

__all__ = [
    "BACKEND_ERROR_RATIO",
    "BACKEND_LATENCY",
    "BACKEND_REQUESTS",
    "BREAKER_STATE",
    "DURATION_BUCKETS",
    "HEALTH_SCORE",
    "HINTS_OLDEST_AGE",
    "HINTS_OUTSTANDING",
    "OPERATION_DURATION",
    "PENDING_REPAIRS",
    "PROMETHEUS",
    "AttemptRecord",
    "OperationRecord",
    "Stats",
    "Telemetry",
    "Tracer",
    "default_tracer",
]

#: Duration of one public operation (``put``, ``get``, ``invoke``...), in seconds.
OPERATION_DURATION = "failover.operation.duration"
#: Backend attempts, by backend and outcome (``ok``, ``error``).
BACKEND_REQUESTS = "failover.backend.requests"
#: Circuit breaker state per backend.
BREAKER_STATE = "failover.breaker.state"
#: Health score per backend, 0 (avoid) to 1 (healthy).
HEALTH_SCORE = "failover.backend.health_score"
#: Moving average of a backend's call latency, in seconds.
BACKEND_LATENCY = "failover.backend.latency"
#: Moving average of a backend's transient failures (0 to 1).
BACKEND_ERROR_RATIO = "failover.backend.error_ratio"
#: Replica actions pending in this host's repair journal, per backend.
PENDING_REPAIRS = "failover.repairs.pending"
#: Hints kept for a backend on the other replicas (as of the last repair pass).
HINTS_OUTSTANDING = "failover.hints.outstanding"
#: Age of the oldest hint kept for a backend (as of the last repair pass), in seconds.
HINTS_OLDEST_AGE = "failover.hints.oldest_age"

#: Prometheus family of each name.
PROMETHEUS: Mapping[str, str] = {
    OPERATION_DURATION: "failover_operation_duration_seconds",
    BACKEND_REQUESTS: "failover_backend_requests_total",
    BREAKER_STATE: "failover_breaker_state",
    HEALTH_SCORE: "failover_backend_health_score",
    BACKEND_LATENCY: "failover_backend_latency_seconds",
    BACKEND_ERROR_RATIO: "failover_backend_error_ratio",
    PENDING_REPAIRS: "failover_repairs_pending",
    HINTS_OUTSTANDING: "failover_hints_outstanding",
    HINTS_OLDEST_AGE: "failover_hints_oldest_age_seconds",
}

#: Upper bounds (seconds) of the operation duration histogram's buckets.
DURATION_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


@dataclass
class _Histogram:
    buckets: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))
    count: int = 0
    total: float = 0.0

    def observe(self, seconds: float) -> None:
        self.buckets[bisect.bisect_left(DURATION_BUCKETS, seconds)] += 1
        self.count += 1
        self.total += seconds


class Stats:
    """In-process counters and histograms of one Storage or Invoker (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str], int] = {}
        self._durations: dict[tuple[str, str], _Histogram] = {}
        self._hints: dict[str, tuple[int, float]] = {}

    def record_attempt(self, backend: str, outcome: str) -> None:
        """Count one backend attempt (``outcome``: ``ok`` or ``error``)."""
        with self._lock:
            self._requests[backend, outcome] = self._requests.get((backend, outcome), 0) + 1

    def record_operation(self, operation: str, outcome: str, seconds: float) -> None:
        """Add one public operation's duration (``outcome``: ``ok`` or ``error``)."""
        with self._lock:
            histogram = self._durations.get((operation, outcome))
            if histogram is None:
                histogram = self._durations[operation, outcome] = _Histogram()
            histogram.observe(seconds)

    def record_hints(self, backend: str, count: int, oldest_age_seconds: float) -> None:
        """Remember how many hints a repair pass found for ``backend``, and the oldest."""
        with self._lock:
            self._hints[backend] = (count, oldest_age_seconds)

    def requests(self) -> dict[tuple[str, str], int]:
        """``(backend, outcome)`` to attempts so far."""
        with self._lock:
            return dict(self._requests)

    def durations(self) -> dict[tuple[str, str], tuple[tuple[int, ...], int, float]]:
        """``(operation, outcome)`` to (per-bucket counts, count, sum of seconds).

        The counts are per bucket (not cumulative); the last one is above the last
        bound of :data:`DURATION_BUCKETS`.
        """
        with self._lock:
            return {k: (tuple(h.buckets), h.count, h.total) for k, h in self._durations.items()}

    def hints(self) -> dict[str, tuple[int, float]]:
        """Backend to (hints outstanding, age of the oldest in seconds), per last pass."""
        with self._lock:
            return dict(self._hints)


@dataclass
class OperationRecord:
    """One public operation in progress (attributes a tracer may add to)."""

    operation: str
    key: str
    attributes: dict[str, Any] = field(default_factory=dict)
    span: Any = None


@dataclass
class AttemptRecord:
    """One backend attempt in progress."""

    backend: str
    operation: str
    key: str
    attempt: int
    hedged: bool = False
    attributes: dict[str, Any] = field(default_factory=dict)
    span: Any = None


class Tracer(Protocol):
    """What :class:`Telemetry` calls when tracing is installed (see :mod:`failover.otel`)."""

    def start_operation(self, record: OperationRecord) -> None:
        """An operation starts (open its span)."""

    def end_operation(
        self, record: OperationRecord, error: BaseException | None, seconds: float
    ) -> None:
        """The operation ended (close its span, record its duration)."""

    def capture(self) -> object:
        """The current context, to parent attempts started on other threads."""

    def start_attempt(self, record: AttemptRecord, parent: object) -> None:
        """A backend attempt starts on a worker thread (open a child span)."""

    def end_attempt(self, record: AttemptRecord, error: BaseException | None) -> None:
        """The attempt ended (close its span, count it)."""


class Telemetry:
    """Records operations and attempts into :class:`Stats` and, if installed, a tracer.

    Args:
        tracer: OpenTelemetry (or another) tracer; ``None`` records stats only.
        is_failure: which attempt errors count as failures (default: transient ones; a
            not-found or a permanent error is an answer, counted ``ok``).
    """

    def __init__(
        self,
        tracer: Tracer | None = None,
        *,
        is_failure: Callable[[BaseException], bool] = is_transient,
    ) -> None:
        self.stats = Stats()
        self.tracer = tracer
        self._is_failure = is_failure

    @contextlib.contextmanager
    def operation(self, operation: str, key: str = "") -> Iterator[OperationRecord]:
        """Time one public operation (a ``with`` block around the facade's work)."""
        record = OperationRecord(operation, key)
        tracer = self.tracer
        if tracer is not None:
            tracer.start_operation(record)
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            yield record
        except BaseException as exc:
            error = exc
            raise
        finally:
            seconds = time.perf_counter() - started
            self.stats.record_operation(operation, "ok" if error is None else "error", seconds)
            if tracer is not None:
                tracer.end_operation(record, error, seconds)

    def capture(self) -> object:
        """The caller's context, to hand to :meth:`attempt` on a worker thread."""
        return None if self.tracer is None else self.tracer.capture()

    @contextlib.contextmanager
    def attempt(
        self,
        backend: str,
        operation: str,
        key: str,
        attempt: int,
        *,
        parent: object = None,
        hedged: bool = False,
    ) -> Iterator[AttemptRecord]:
        """Count (and trace) one backend attempt."""
        record = AttemptRecord(backend, operation, key, attempt, hedged)
        tracer = self.tracer
        if tracer is not None:
            tracer.start_attempt(record, parent)
        error: BaseException | None = None
        try:
            yield record
        except BaseException as exc:
            error = exc
            raise
        finally:
            failed = error is not None and self._is_failure(error)
            self.stats.record_attempt(backend, "error" if failed else "ok")
            if tracer is not None:
                tracer.end_attempt(record, error)


def default_tracer() -> Tracer | None:
    """The tracer a new Storage or Invoker uses: none until OpenTelemetry is wired in."""
    return None
