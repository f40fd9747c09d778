"""OpenTelemetry: a span per operation and per backend attempt, and the metrics.

Install the extra (``pip install "failover[otel]"``, which brings ``opentelemetry-api``
only) and configure the SDK and exporters your application already uses. Every
:class:`~failover.Storage` and :class:`~failover.Invoker` then reports through the
global tracer and meter providers (:func:`~failover.telemetry.default_tracer`); there
is nothing to call. Providers set up after a Storage was built still receive its
telemetry: spans and instruments come from the API's proxy tracer and meter, which
switch to the SDK's as soon as the global providers are set.
``OTEL_SDK_DISABLED=true``, or ``failover`` in ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``,
turns it off.

What is reported (the reference table is in ``docs/observe.md``):

* a span ``failover.<operation>`` (kind ``INTERNAL``) around each public operation,
  current while it runs, so the application's own span is its parent;
* a child span ``failover.<operation> <backend>`` (kind ``CLIENT``) per backend
  attempt, retries and hedged requests included, parented across the worker threads
  and current on its worker (an instrumented SDK's spans nest under it), with the
  backend, its provider and host, the attempt number, the outcome, whether it was a
  hedge, and the error type of a failed attempt;
* the operation duration histogram, the backend request counter, and gauges read live
  from every open object: breaker state, health score, latency, error ratio, pending
  repairs and hints outstanding.

Object keys and error messages (which name keys) are not recorded unless asked for
(``OpenTelemetryTracer(capture_keys=True)``): keys often carry user data.

To use other providers, or to record keys, install a tracer of your own::

    store.telemetry.tracer = OpenTelemetryTracer(capture_keys=True)
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, get_args

try:
    from opentelemetry import context as otel_context
    from opentelemetry import metrics, trace
    from opentelemetry.context import Context
    from opentelemetry.metrics import CallbackOptions, Observation
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        f"failover.otel needs opentelemetry-api: pip install 'failover[otel]' ({exc})"
    ) from exc

from failover.errors import NotFoundError
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
    AttemptRecord,
    OperationRecord,
    Peer,
    Telemetry,
)
from failover.types import BackendHealth, BreakerState

if TYPE_CHECKING:
    from opentelemetry.util.types import AttributeValue

__all__ = [
    "ATTEMPT",
    "BACKEND",
    "BREAKER_STATE_ATTRIBUTE",
    "HEDGED",
    "INSTRUMENTATION_NAME",
    "KEY",
    "NOT_FOUND",
    "OPERATION",
    "OUTCOME",
    "OpenTelemetryTracer",
    "shared_tracer",
]

logger = logging.getLogger("failover")

#: Instrumentation scope of every span and instrument.
INSTRUMENTATION_NAME = "failover"

# -- attribute names: semantic conventions where they exist, failover.* for the rest --
#: Backend (or invocation target) name.
BACKEND = "failover.backend"
#: Public operation (``get``, ``put``, ``invoke``...) or, on attempts, the
#: dispatcher's (also ``hint``, ``repair-put``...).
OPERATION = "failover.operation"
#: ``ok`` or ``error``, as counted by the metrics: on an attempt, ``error`` is a
#: transient failure charged to the backend (a not-found or a refusal is an answer).
OUTCOME = "failover.outcome"
#: Attempt number on this backend within one call (1, then 2 for its retry...).
ATTEMPT = "failover.attempt"
#: The attempt was a hedge (started because another backend was slow to answer).
HEDGED = "failover.hedged"
#: The attempt's answer was "no such object" (an answer, not an error).
NOT_FOUND = "failover.not_found"
#: Object key or idempotency key (only with ``capture_keys=True``).
KEY = "failover.key"
#: Breaker state of a ``failover.breaker.state`` observation.
BREAKER_STATE_ATTRIBUTE = "failover.breaker.state"
_ERROR_TYPE = "error.type"
_CLOUD_PROVIDER = "cloud.provider"
_SERVER_ADDRESS = "server.address"
_SERVER_PORT = "server.port"
_S3_BUCKET = "aws.s3.bucket"
_S3_KEY = "aws.s3.key"

_STATES: tuple[BreakerState, ...] = get_args(BreakerState)


def _version() -> str:
    from failover import __version__  # noqa: PLC0415 - failover imports this lazily

    return __version__


class OpenTelemetryTracer:
    """The :class:`~failover.telemetry.Tracer` that reports to OpenTelemetry.

    Uses the API only. One instance serves any number of Storage and Invoker objects;
    instruments are shared by every tracer on the same meter provider.

    Args:
        tracer_provider: where spans go (default: the global one, through the API's
            proxy until it is set, so configuring it later works).
        meter_provider: where metrics go (default: the global one, through the API's
            proxy until it is set).
        capture_keys: record object keys (``failover.key``, and ``aws.s3.key`` on S3
            attempts) and error messages (status description, exception events).
            Off by default: keys often carry user data.
    """

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        capture_keys: bool = False,
    ) -> None:
        self.capture_keys = capture_keys
        # Without an SDK (yet) this is the API's proxy tracer: it hands out non-recording
        # spans until a provider is set, then the provider's tracer.
        self._tracer = trace.get_tracer(INSTRUMENTATION_NAME, _version(), tracer_provider)
        self._live = False  # a span has been recorded: pass attributes when starting
        self._instruments = _instruments_for(meter_provider)
        self._peers: dict[Peer | None, dict[str, AttributeValue]] = {}

    def __repr__(self) -> str:
        return f"OpenTelemetryTracer(capture_keys={self.capture_keys})"

    # -- spans -------------------------------------------------------------------------

    def _open(
        self,
        name: str,
        kind: SpanKind,
        parent: Context | None,
        attributes: Callable[[Any], dict[str, AttributeValue]],
        record: Any,
    ) -> trace.Span | None:
        """Start a span; None for the API's no-op span (no SDK: nothing to make current).

        Until a span has been recorded, attributes are built only for a recording span,
        so that with the API alone a call costs a no-op span and nothing more. A span
        the SDK did not sample is kept (and made current): the attempts under it then
        follow its trace and its sampling decision instead of starting traces of their
        own.
        """
        if self._live:
            return self._tracer.start_span(
                name, context=parent, kind=kind, attributes=attributes(record)
            )
        span = self._tracer.start_span(name, context=parent, kind=kind)
        if span.is_recording():
            self._live = True
            span.set_attributes(attributes(record))
            return span
        context = span.get_span_context()
        if not context.is_valid or context is trace.get_current_span(parent).get_span_context():
            return None  # the API's no-op tracer: no span, or the parent's own context
        return span

    def start_operation(self, record: OperationRecord) -> None:
        """Open the operation's span and make it current on the caller's thread."""
        span = self._open(
            f"failover.{record.operation}",
            SpanKind.INTERNAL,
            None,
            self._operation_attributes,
            record,
        )
        if span is not None:
            record.span = span
            record.scope = otel_context.attach(trace.set_span_in_context(span))

    def _operation_attributes(self, record: OperationRecord) -> dict[str, AttributeValue]:
        attributes: dict[str, AttributeValue] = {OPERATION: record.operation}
        if self.capture_keys and record.key:
            attributes[KEY] = record.key
        return attributes

    def end_operation(
        self, record: OperationRecord, error: BaseException | None, seconds: float
    ) -> None:
        """Record the duration; close the span with the outcome and the error type."""
        attributes: dict[str, AttributeValue] = {
            OPERATION: record.operation,
            OUTCOME: record.outcome,
        }
        if error is not None:
            attributes[_ERROR_TYPE] = _error_type(error)
        self._instruments.duration.record(seconds, attributes)
        span = record.span
        if span is None:
            return
        otel_context.detach(record.scope)
        span.set_attribute(OUTCOME, record.outcome)
        if record.attributes:
            span.set_attributes(record.attributes)
        if error is not None:
            self._failed(span, error)
        span.end()

    def capture(self) -> object:
        """The caller's context, for the attempts it starts on worker threads."""
        return otel_context.get_current()

    def start_attempt(self, record: AttemptRecord, parent: object) -> None:
        """Open the attempt's span under ``parent`` and make it current on this worker."""
        span = self._open(
            f"failover.{record.operation} {record.backend}",
            SpanKind.CLIENT,
            parent if isinstance(parent, Context) else None,
            self._attempt_attributes,
            record,
        )
        if span is not None:
            record.span = span
            record.scope = otel_context.attach(trace.set_span_in_context(span))

    def _attempt_attributes(self, record: AttemptRecord) -> dict[str, AttributeValue]:
        attributes = dict(self._peer_attributes(record.peer))
        attributes[BACKEND] = record.backend
        attributes[OPERATION] = record.operation
        attributes[ATTEMPT] = record.attempt
        attributes[HEDGED] = record.hedged
        if self.capture_keys and record.key:
            attributes[KEY] = record.key
            if _S3_BUCKET in attributes and record.peer is not None:
                attributes[_S3_KEY] = record.peer.prefix + record.key
        return attributes

    def end_attempt(self, record: AttemptRecord, error: BaseException | None) -> None:
        """Count the attempt; close its span (a not-found is an answer, not an error)."""
        self._instruments.requests.add(1, {BACKEND: record.backend, OUTCOME: record.outcome})
        span = record.span
        if span is None:
            return
        otel_context.detach(record.scope)
        span.set_attribute(OUTCOME, record.outcome)
        if record.attributes:
            span.set_attributes(record.attributes)
        if isinstance(error, NotFoundError):
            span.set_attribute(NOT_FOUND, True)
        elif error is not None:
            self._failed(span, error)
        span.end()

    def _failed(self, span: trace.Span, error: BaseException) -> None:
        span.set_attribute(_ERROR_TYPE, _error_type(error))
        if self.capture_keys:  # messages name keys
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{_error_type(error)}: {error}"))
        else:
            span.set_status(Status(StatusCode.ERROR))

    def _peer_attributes(self, peer: Peer | None) -> Mapping[str, AttributeValue]:
        attributes = self._peers.get(peer)
        if attributes is None:
            attributes = self._peers[peer] = _describe(peer)
        return attributes

    # -- live state --------------------------------------------------------------------

    def watch(self, telemetry: Telemetry) -> None:
        """Report ``telemetry``'s live health in the gauges (held weakly)."""
        self._instruments.watch(telemetry)

    def unwatch(self, telemetry: Telemetry) -> None:
        """Stop reporting ``telemetry`` in the gauges."""
        self._instruments.unwatch(telemetry)


def _describe(peer: Peer | None) -> dict[str, AttributeValue]:
    """Span attributes of a backend's far end (semantic conventions)."""
    attributes: dict[str, AttributeValue] = {}
    if peer is None:
        return attributes
    if peer.provider:
        attributes[_CLOUD_PROVIDER] = peer.provider
    if peer.address:
        attributes[_SERVER_ADDRESS] = peer.address
        if peer.port is not None:
            attributes[_SERVER_PORT] = peer.port
    if peer.provider == "aws" and peer.bucket:
        attributes[_S3_BUCKET] = peer.bucket
    return attributes


def _error_type(error: BaseException) -> str:
    return type(error).__qualname__


class _Instruments:
    """The instruments on one meter provider, and the objects its gauges read.

    OpenTelemetry's Python API cannot remove an instrument's callback, and a second
    instrument of the same name on a meter is the first one again. So the gauges are
    registered once per meter provider, and each observation walks the objects
    currently watched: held weakly (a forgotten object is not kept alive by its
    metrics) and removed when it closes.
    """

    def __init__(self, meter_provider: metrics.MeterProvider | None) -> None:
        meter = metrics.get_meter(INSTRUMENTATION_NAME, _version(), meter_provider)
        self._lock = threading.Lock()
        self._watched: weakref.WeakSet[Telemetry] = weakref.WeakSet()
        try:
            self.duration = meter.create_histogram(
                OPERATION_DURATION,
                unit="s",
                description="Duration of public operations (put, get, invoke...).",
                explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
            )
        except TypeError:  # opentelemetry-api < 1.23: no advisory buckets
            self.duration = meter.create_histogram(
                OPERATION_DURATION,
                unit="s",
                description="Duration of public operations (put, get, invoke...).",
            )
        self.requests = meter.create_counter(
            BACKEND_REQUESTS,
            unit="{request}",
            description="Backend attempts, by outcome (error: a transient failure).",
        )
        gauges = (
            (
                BREAKER_STATE,
                self._breaker_states,
                "{state}",
                "Circuit breaker state: 1 for the current failover.breaker.state, 0 else.",
            ),
            (
                HEALTH_SCORE,
                self._scores,
                "{score}",
                "Health score, 0 (avoid) to 1 (healthy); higher scores get more reads.",
            ),
            (
                BACKEND_LATENCY,
                self._latencies,
                "s",
                "Moving average of the backend's call latency.",
            ),
            (
                BACKEND_ERROR_RATIO,
                self._error_ratios,
                "1",
                "Moving average of the backend's transient failures, 0 to 1.",
            ),
            (
                PENDING_REPAIRS,
                self._pending_repairs,
                "{action}",
                "Replica actions waiting in this host's repair journal for the backend.",
            ),
            (
                HINTS_OUTSTANDING,
                self._hints,
                "{hint}",
                "Hints kept for the backend on the other replicas, as of the last repair pass.",
            ),
            (
                HINTS_OLDEST_AGE,
                self._hint_ages,
                "s",
                "Age of the oldest hint kept for the backend, as of the last repair pass.",
            ),
        )
        for name, callback, unit, description in gauges:
            meter.create_observable_gauge(
                name, callbacks=[callback], unit=unit, description=description
            )

    def watch(self, telemetry: Telemetry) -> None:
        with self._lock:
            self._watched.add(telemetry)

    def unwatch(self, telemetry: Telemetry) -> None:
        with self._lock:
            self._watched.discard(telemetry)

    def _sources(self) -> list[Telemetry]:
        with self._lock:
            return list(self._watched)

    def _health(self) -> Iterator[tuple[Telemetry, str, BackendHealth]]:
        for telemetry in self._sources():
            try:
                health = telemetry.health()
            except Exception:  # one closing object must not hide the others
                logger.debug("failover: no health to report from %r", telemetry, exc_info=True)
                continue
            for name, backend in health.items():
                yield telemetry, name, backend

    def _breaker_states(self, _options: CallbackOptions) -> Iterable[Observation]:
        for _, name, health in self._health():
            for state in _STATES:
                yield Observation(
                    1 if health.state == state else 0,
                    {BACKEND: name, BREAKER_STATE_ATTRIBUTE: state},
                )

    def _scores(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(h.score, {BACKEND: name}) for _, name, h in self._health()]

    def _latencies(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(h.latency_ms / 1000, {BACKEND: n}) for _, n, h in self._health()]

    def _error_ratios(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(h.error_rate, {BACKEND: n}) for _, n, h in self._health()]

    def _pending_repairs(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(h.pending_repairs, {BACKEND: name})
            for telemetry, name, h in self._health()
            if telemetry.has_repairs  # an Invoker's zeros would mislead
        ]

    def _hints(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(count, {BACKEND: name})
            for telemetry in self._sources()
            for name, (count, _age) in telemetry.stats.hints().items()
        ]

    def _hint_ages(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(age, {BACKEND: name})
            for telemetry in self._sources()
            for name, (_count, age) in telemetry.stats.hints().items()
        ]


_lock = threading.Lock()
_global_instruments: _Instruments | None = None
_instruments_by_provider: weakref.WeakKeyDictionary[Any, _Instruments] = weakref.WeakKeyDictionary()
_shared: OpenTelemetryTracer | None = None


def _instruments_for(meter_provider: metrics.MeterProvider | None) -> _Instruments:
    """The instruments on ``meter_provider`` (None: the global one), created once."""
    global _global_instruments  # noqa: PLW0603 - one set per process, like the providers
    with _lock:
        if meter_provider is None:
            if _global_instruments is None:
                _global_instruments = _Instruments(None)
            return _global_instruments
        instruments = _instruments_by_provider.get(meter_provider)
        if instruments is None:
            instruments = _instruments_by_provider[meter_provider] = _Instruments(meter_provider)
        return instruments


def shared_tracer() -> OpenTelemetryTracer:
    """The process-wide tracer over the global providers (what new objects install)."""
    global _shared  # noqa: PLW0603 - one per process, like the global providers
    if _shared is None:
        tracer = OpenTelemetryTracer()
        with _lock:
            if _shared is None:
                _shared = tracer
    return _shared
