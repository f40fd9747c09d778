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
  :func:`default_tracer` installs it whenever ``opentelemetry-api`` is importable,
  unless ``OTEL_SDK_DISABLED=true`` or ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``
  names ``failover``.

The facades describe each backend's far end as a :class:`Peer` (provider, host,
bucket), and the dispatcher lets the tracer read its live health
(:meth:`Telemetry.watch`) for gauges until it closes.

The names below are the contract shared by the metrics, the CLI and the docs' reference
table: ``NAME`` is the OpenTelemetry instrument name; ``PROMETHEUS[NAME]`` the
Prometheus family (``failover_`` prefix, base units, ``_total`` for counters).
"""

from __future__ import annotations

import bisect
import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from failover.errors import is_transient

if TYPE_CHECKING:
    from failover.types import BackendHealth

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
    "Peer",
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


#: Backend URL scheme (the first field of a built-in backend's ``identity``) to provider.
_STORAGE_PROVIDERS = {"s3": "aws", "az": "azure", "gs": "gcp"}
#: Module of a built-in invocation target to provider (plain HTTPS targets have none).
_TARGET_PROVIDERS = {
    "failover.invoke.aws_lambda": "aws",
    "failover.invoke.azure": "azure",
    "failover.invoke.gcf": "gcp",
}


@dataclass(frozen=True, slots=True)
class Peer:
    """The far end of a backend or invocation target, as traces describe it.

    Attributes:
        provider: ``aws``, ``azure`` or ``gcp`` (the values of OpenTelemetry's
            ``cloud.provider``); empty for local, in-memory, plain HTTPS and callable
            ones.
        address: host name (or IP) of the endpoint; empty when there is none.
        port: the endpoint's port, when there is an endpoint.
        bucket: the bucket or container (storage backends).
        prefix: the key prefix inside it ("" or ending in ``/``).
    """

    provider: str = ""
    address: str = ""
    port: int | None = None
    bucket: str = ""
    prefix: str = ""

    @classmethod
    def of(cls, obj: object) -> Peer:
        """Describe a backend or an invocation target (an empty Peer if unknown).

        Storage backends are read from their ``identity`` (scheme, endpoint, bucket,
        prefix); HTTP targets from their ``url``; Lambda targets from their
        ``endpoint_url``.
        """
        identity = getattr(obj, "identity", None)
        if isinstance(identity, str):
            return cls._of_identity(identity)
        provider = _TARGET_PROVIDERS.get(type(obj).__module__, "")
        url = getattr(obj, "url", None) or getattr(obj, "endpoint_url", None)
        if isinstance(url, str):
            return cls._at(url, provider=provider)
        return cls(provider=provider)

    @classmethod
    def _of_identity(cls, identity: str) -> Peer:
        scheme, *fields = identity.split("|")
        provider = _STORAGE_PROVIDERS.get(scheme)
        if provider is None or not fields:
            return cls()  # file://, memory:// or a third-party backend
        if scheme == "az":  # az|<container URL>|<prefix>
            container_url = fields[0]
            container = urlsplit(container_url).path.rstrip("/").rpartition("/")[2]
            prefix = fields[1] if len(fields) > 1 else ""
            return cls._at(container_url, provider=provider, bucket=container, prefix=prefix)
        endpoint, bucket, prefix = (*fields, "", "")[:3]  # s3|gs: <endpoint>|<bucket>|<prefix>
        return cls._at(endpoint, provider=provider, bucket=bucket, prefix=prefix)

    @classmethod
    def _at(cls, url: str, *, provider: str, bucket: str = "", prefix: str = "") -> Peer:
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:  # not a valid port: say nothing rather than fail a facade
            port = None
        if port is None and parts.hostname:
            port = {"https": 443, "http": 80}.get(parts.scheme)
        return cls(provider, parts.hostname or "", port, bucket, prefix)


@dataclass
class OperationRecord:
    """One public operation in progress (attributes a tracer may add to).

    ``outcome`` is set when it ends (``ok`` or ``error``, as counted in :class:`Stats`);
    ``span`` and ``scope`` belong to the tracer (its span and whatever it must undo).
    """

    operation: str
    key: str
    attributes: dict[str, Any] = field(default_factory=dict)
    span: Any = None
    outcome: str = ""
    scope: Any = None


@dataclass
class AttemptRecord:
    """One backend attempt in progress.

    ``peer`` describes the backend's far end (when the facade described it);
    ``outcome`` is set when the attempt ends (``ok`` or ``error``, as counted in
    :class:`Stats`); ``span`` and ``scope`` belong to the tracer.
    """

    backend: str
    operation: str
    key: str
    attempt: int
    hedged: bool = False
    attributes: dict[str, Any] = field(default_factory=dict)
    span: Any = None
    peer: Peer | None = None
    outcome: str = ""
    scope: Any = None


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

    def watch(self, telemetry: Telemetry) -> None:
        """Report ``telemetry``'s live state (:meth:`Telemetry.health`) until unwatched."""

    def unwatch(self, telemetry: Telemetry) -> None:
        """Stop reporting ``telemetry`` (its object closed, or another tracer took over)."""


class Telemetry:
    """Records operations and attempts into :class:`Stats` and, if installed, a tracer.

    Args:
        tracer: OpenTelemetry (or another) tracer; ``None`` records stats only. It can
            be replaced later (``telemetry.tracer = ...``).
        is_failure: which attempt errors count as failures (default: transient ones; a
            not-found or a permanent error is an answer, counted ``ok``).
        peers: backend name to where it lives (see :meth:`Peer.of`), for traces.
    """

    def __init__(
        self,
        tracer: Tracer | None = None,
        *,
        is_failure: Callable[[BaseException], bool] = is_transient,
        peers: Mapping[str, Peer] | None = None,
    ) -> None:
        self.stats = Stats()
        self.peers: dict[str, Peer] = dict(peers or {})
        #: True when pending repairs and hints apply (a Storage; not an Invoker).
        self.has_repairs = False
        self._tracer = tracer
        self._is_failure = is_failure
        self._health: Callable[[], Mapping[str, BackendHealth]] | None = None

    @property
    def tracer(self) -> Tracer | None:
        """The installed tracer, or None; setting it moves the live-state watch along."""
        return self._tracer

    @tracer.setter
    def tracer(self, tracer: Tracer | None) -> None:
        old, self._tracer = self._tracer, tracer
        if self._health is not None and old is not tracer:
            if old is not None:
                old.unwatch(self)
            if tracer is not None:
                tracer.watch(self)

    def watch(
        self, health: Callable[[], Mapping[str, BackendHealth]], *, repairs: bool = False
    ) -> None:
        """Let the tracer read live health (breakers, scores, repairs) until :meth:`close`.

        Args:
            health: returns every backend's :class:`~failover.types.BackendHealth`.
            repairs: whether pending repairs and hints apply (a Storage's journal).
        """
        self._health = health
        self.has_repairs = repairs
        if self._tracer is not None:
            self._tracer.watch(self)

    def health(self) -> Mapping[str, BackendHealth]:
        """Every backend's health now ({} before :meth:`watch` and after :meth:`close`)."""
        health = self._health
        return {} if health is None else health()

    def close(self) -> None:
        """Stop reporting live state (the object closed); counters stay readable."""
        if self._health is None:
            return
        self._health = None
        if self._tracer is not None:
            self._tracer.unwatch(self)

    @contextlib.contextmanager
    def operation(self, operation: str, key: str = "") -> Iterator[OperationRecord]:
        """Time one public operation (a ``with`` block around the facade's work)."""
        record = OperationRecord(operation, key)
        tracer = self._tracer
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
            record.outcome = "ok" if error is None else "error"
            self.stats.record_operation(operation, record.outcome, seconds)
            if tracer is not None:
                tracer.end_operation(record, error, seconds)

    def capture(self) -> object:
        """The caller's context, to hand to :meth:`attempt` on a worker thread."""
        return None if self._tracer is None else self._tracer.capture()

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
        tracer = self._tracer
        if tracer is not None:
            record.peer = self.peers.get(backend)
            tracer.start_attempt(record, parent)
        error: BaseException | None = None
        try:
            yield record
        except BaseException as exc:
            error = exc
            raise
        finally:
            failed = error is not None and self._is_failure(error)
            record.outcome = "error" if failed else "ok"
            self.stats.record_attempt(backend, record.outcome)
            if tracer is not None:
                tracer.end_attempt(record, error)


def default_tracer(environ: Mapping[str, str] | None = None) -> Tracer | None:
    """The tracer a new Storage or Invoker uses: OpenTelemetry's, when it is importable.

    It is :func:`failover.otel.shared_tracer` (spans and metrics through the global
    tracer and meter providers, set up by the application) whenever
    ``opentelemetry-api`` is installed, else None. OpenTelemetry's own switches turn it
    off: ``OTEL_SDK_DISABLED=true`` (every signal), or ``failover`` in the
    comma-separated ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``.

    Args:
        environ: the environment to read (default: ``os.environ``).
    """
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    disabled = env.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "")
    if "failover" in (name.strip() for name in disabled.split(",")):
        return None
    try:
        # Imported on first use, never by ``import failover``: without the package
        # there is nothing to import and nothing to pay.
        from failover.otel import shared_tracer  # noqa: PLC0415
    except ImportError:  # opentelemetry-api is not installed
        return None
    return shared_tracer()
