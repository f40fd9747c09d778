"""OpenTelemetry: spans per operation and attempt, the metrics, and what it costs to import.

The tests give each tracer its own SDK providers (in-memory exporter and reader): the
global providers can be set once per process, so the one test that needs them runs in
a subprocess.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    Gauge,
    Histogram,
    InMemoryMetricReader,
    Metric,
    Sum,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    StatusCode,
    TraceFlags,
    get_current_span,
    use_span,
)

import failover.aio
from failover import Invoker, NotFoundError, Storage
from failover.backends import from_url
from failover.config import Settings
from failover.errors import BackendUnavailable
from failover.invoke import CallableTarget, target_from_url
from failover.otel import OpenTelemetryTracer, shared_tracer
from failover.telemetry import DURATION_BUCKETS, PROMETHEUS, Peer, Telemetry, default_tracer
from failover.testing import FaultyBackend
from failover.types import BackendHealth

from .conftest import faulty


@dataclass
class Otel:
    """A tracer over its own SDK providers, and what they collected."""

    spans: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider
    tracer: OpenTelemetryTracer

    def finished(self, count: int = 0, *, timeout: float = 5.0) -> list[ReadableSpan]:
        """The finished spans, once there are at least ``count`` (abandoned attempts end late)."""
        deadline = time.monotonic() + timeout
        while len(self.spans.get_finished_spans()) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return list(self.spans.get_finished_spans())

    def metrics(self) -> dict[str, Metric]:
        data = self.reader.get_metrics_data()
        if data is None:  # nothing observed at all
            return {}
        return {
            metric.name: metric
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
        }


#: OpenTelemetry's switches, which the tests must not inherit from the environment.
SWITCHES = ("OTEL_SDK_DISABLED", "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS")


@pytest.fixture(autouse=True)
def _otel_switched_on(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SWITCHES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def otel() -> Iterator[Otel]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    tracer = OpenTelemetryTracer(tracer_provider=tracer_provider, meter_provider=meter_provider)
    yield Otel(spans, reader, tracer_provider, tracer)
    meter_provider.shutdown()
    tracer_provider.shutdown()


def traced_host(urls: Sequence[str], journal: Path, otel: Otel, **options: object) -> Storage:
    backends = [FaultyBackend(from_url(u)) for u in urls]
    options.setdefault("repair_interval_seconds", 0)
    settings = Settings.from_urls(urls, journal=str(journal), **options)  # type: ignore[arg-type]
    store = Storage(backends, settings=settings)
    store.telemetry.tracer = otel.tracer
    return store


def named(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def attempts(spans: Sequence[ReadableSpan], operation: str) -> list[ReadableSpan]:
    return [
        s
        for s in spans
        if s.kind is SpanKind.CLIENT and (s.attributes or {}).get("failover.operation") == operation
    ]


def points(metric: Metric) -> list[Any]:
    return list(metric.data.data_points)


def by_backend(metric: Metric) -> dict[str, float]:
    return {p.attributes["failover.backend"]: p.value for p in points(metric)}


def parented_by(spans: Sequence[ReadableSpan], parent: ReadableSpan) -> bool:
    return all(s.parent is not None and s.parent.span_id == parent.context.span_id for s in spans)


# -- spans ---------------------------------------------------------------------------------


def test_a_failed_over_get_is_one_operation_span_with_an_attempt_per_backend(
    urls: list[str], tmp_path: Path, otel: Otel
) -> None:
    with traced_host(urls, tmp_path / "j", otel, read_policy="ordered", retry_attempts=1) as store:
        store.put("k", b"v")
        assert store.flush()
        otel.spans.clear()
        faulty(store, "a").set(error_rate=1.0, error=BackendUnavailable)
        app = otel.tracer_provider.get_tracer("app")
        with app.start_as_current_span("request") as request:
            assert store.get("k") == b"v"
        spans = otel.finished(4)

    (operation,) = named(spans, "failover.get")
    assert operation.kind is SpanKind.INTERNAL
    assert operation.parent is not None
    assert operation.parent.span_id == request.get_span_context().span_id
    assert operation.attributes == {"failover.operation": "get", "failover.outcome": "ok"}
    assert operation.status.status_code is StatusCode.UNSET

    tried = attempts(spans, "get")
    assert [s.name for s in tried] == ["failover.get a", "failover.get b"]
    for attempt in tried:  # started on worker threads, parented to the caller's span
        assert attempt.parent is not None
        assert attempt.parent.span_id == operation.context.span_id
        assert attempt.context.trace_id == request.get_span_context().trace_id
    failed, answered = tried
    assert failed.attributes is not None
    assert failed.attributes["failover.backend"] == "a"
    assert failed.attributes["failover.attempt"] == 1
    assert failed.attributes["failover.hedged"] is False
    assert failed.attributes["failover.outcome"] == "error"
    assert failed.attributes["error.type"] == "BackendUnavailable"
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description is None  # messages may name keys: not by default
    assert not failed.events
    assert answered.attributes is not None
    assert answered.attributes["failover.outcome"] == "ok"
    assert "error.type" not in answered.attributes
    assert answered.status.status_code is StatusCode.UNSET
    assert "failover.key" not in {**operation.attributes, **answered.attributes}


def test_retries_on_one_backend_are_numbered(urls: list[str], tmp_path: Path, otel: Otel) -> None:
    with traced_host(urls[:1], tmp_path / "j", otel, retry_attempts=3) as store:
        store.put("k", b"v")
        faulty(store, "a").set(error_rate=1.0, error=BackendUnavailable)
        otel.spans.clear()
        with pytest.raises(Exception, match="BackendUnavailable"):
            store.get("k")
        spans = otel.finished(4)
    tried = attempts(spans, "get")
    assert [s.attributes["failover.attempt"] for s in tried if s.attributes] == [1, 2, 3]
    (operation,) = named(spans, "failover.get")
    assert operation.attributes is not None
    assert operation.attributes["failover.outcome"] == "error"
    assert operation.attributes["error.type"] == "AllBackendsFailed"
    assert operation.status.status_code is StatusCode.ERROR


def test_not_found_is_an_answer_for_the_attempt_and_an_error_for_the_operation(
    urls: list[str], tmp_path: Path, otel: Otel
) -> None:
    with traced_host(urls, tmp_path / "j", otel) as store:
        with pytest.raises(NotFoundError):
            store.get("missing")
        spans = otel.finished(4)
    tried = attempts(spans, "get")
    assert tried
    for attempt in tried:
        assert attempt.attributes is not None
        assert attempt.attributes["failover.not_found"] is True
        assert attempt.attributes["failover.outcome"] == "ok"
        assert "error.type" not in attempt.attributes
        assert attempt.status.status_code is StatusCode.UNSET
    (operation,) = named(spans, "failover.get")
    assert operation.attributes is not None
    assert operation.attributes["error.type"] == "NotFoundError"  # as the histogram counts it
    assert operation.status.status_code is StatusCode.ERROR


def test_a_hedged_attempt_says_so(urls: list[str], tmp_path: Path, otel: Otel) -> None:
    with traced_host(urls, tmp_path / "j", otel, read_policy="hedged", hedge_delay_ms=20) as store:
        store.put("k", b"v")
        assert store.flush()
        for name in "abc":  # whichever is asked first is slow, so a hedge fires
            faulty(store, name).set(latency_seconds=0.3)
        otel.spans.clear()
        assert store.get("k") == b"v"
        spans = otel.finished(3)
    tried = attempts(spans, "get")
    hedged = [s.attributes.get("failover.hedged") for s in tried if s.attributes]
    assert hedged.count(False) == 1  # the first request
    assert hedged.count(True) >= 1
    (operation,) = named(spans, "failover.get")
    assert parented_by(tried, operation)


def test_writes_have_an_attempt_per_replica(urls: list[str], tmp_path: Path, otel: Otel) -> None:
    with traced_host(urls, tmp_path / "j", otel) as store:
        store.put("k", b"v")
        assert store.flush()
        store.delete("k")
        assert store.flush()
        spans = otel.finished(8)
    for operation in ("put", "delete"):
        (parent,) = named(spans, f"failover.{operation}")
        children = attempts(spans, operation)
        assert sorted(s.name for s in children) == [f"failover.{operation} {n}" for n in "abc"]
        assert {s.parent.span_id for s in children if s.parent} == {parent.context.span_id}


def test_keys_and_messages_are_recorded_only_when_asked(
    urls: list[str], tmp_path: Path, otel: Otel
) -> None:
    otel.tracer.capture_keys = True
    with traced_host(urls[:1], tmp_path / "j", otel, retry_attempts=1) as store:
        store.put("photos/cat.jpg", b"v")
        faulty(store, "a").set(error_rate=1.0, error=BackendUnavailable)
        with pytest.raises(Exception, match="BackendUnavailable"):
            store.get("photos/cat.jpg")
        spans = otel.finished(4)
    (operation,) = named(spans, "failover.get")
    assert operation.attributes is not None
    assert operation.attributes["failover.key"] == "photos/cat.jpg"
    (failed,) = attempts(spans, "get")
    assert failed.attributes is not None
    assert failed.attributes["failover.key"] == "photos/cat.jpg"
    assert (failed.status.description or "").startswith("BackendUnavailable: ")
    assert [event.name for event in failed.events] == ["exception"]


def test_an_attempt_describes_its_cloud(otel: Otel) -> None:
    s3 = from_url("s3://acme-data/app?region=eu-west-1&endpoint_url=https://s3.example.com:9000")
    try:
        peers = {"s3": Peer.of(s3)}
    finally:
        s3.close()
    telemetry = Telemetry(otel.tracer, peers=peers)
    otel.tracer.capture_keys = True
    with telemetry.attempt("s3", "get", "photos/cat.jpg", 1):
        pass
    (span,) = otel.finished(1)
    assert span.kind is SpanKind.CLIENT
    assert span.name == "failover.get s3"
    assert span.attributes is not None
    assert {k: v for k, v in span.attributes.items() if not k.startswith("failover.")} == {
        "cloud.provider": "aws",
        "server.address": "s3.example.com",
        "server.port": 9000,
        "aws.s3.bucket": "acme-data",
        "aws.s3.key": "app/photos/cat.jpg",
    }


@dataclass
class _Identified:
    identity: str


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (
            _Identified("s3|https://s3.eu-west-1.amazonaws.com|acme|data/"),
            Peer("aws", "s3.eu-west-1.amazonaws.com", 443, "acme", "data/"),
        ),
        (
            _Identified("gs|https://storage.googleapis.com|acme|"),
            Peer("gcp", "storage.googleapis.com", 443, "acme", ""),
        ),
        (
            _Identified("az|https://acct.blob.core.windows.net/acme|data/"),
            Peer("azure", "acct.blob.core.windows.net", 443, "acme", "data/"),
        ),
        (
            _Identified("az|http://127.0.0.1:10000/devstoreaccount1/acme|"),
            Peer("azure", "127.0.0.1", 10000, "acme", ""),
        ),
        (_Identified("memory|1|7f|"), Peer()),
        (_Identified("file|/var/data"), Peer()),
        (object(), Peer()),
    ],
)
def test_a_backend_s_peer_comes_from_its_identity(obj: object, expected: Peer) -> None:
    assert Peer.of(obj) == expected


def test_a_target_s_peer_comes_from_its_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZ_KEY", "k")
    built = [
        target_from_url("lambda://fn?region=us-east-1&endpoint_url=http://127.0.0.1:9001"),
        target_from_url("azfunc+https://app.azurewebsites.net/api/fn?key_env=AZ_KEY"),
        target_from_url("gcf+https://europe-west1-acme.cloudfunctions.net/fn?audience=aud"),
        target_from_url("https://api.example.com/fn"),
    ]
    try:
        assert [Peer.of(t) for t in built] == [
            Peer("aws", "127.0.0.1", 9001),
            Peer("azure", "app.azurewebsites.net", 443),
            Peer("gcp", "europe-west1-acme.cloudfunctions.net", 443),
            Peer("", "api.example.com", 443),
        ]
    finally:
        for target in built:
            target.close()
    assert Peer.of(CallableTarget("local", lambda _request: b"")) == Peer()


def test_an_invocation_is_traced_like_a_read(otel: Otel) -> None:
    def down(_request: object) -> bytes:
        raise ConnectionError("refused")

    invoker = Invoker(
        [CallableTarget("first", down), CallableTarget("second", lambda _r: b"ok")],
        read_policy="ordered",
        retry_attempts=1,
    )
    invoker.telemetry.tracer = otel.tracer
    with invoker:
        assert invoker.invoke({"x": 1}).payload == b"ok"
        spans = otel.finished(3)
    (operation,) = named(spans, "failover.invoke")
    tried = attempts(spans, "invoke")
    assert [s.name for s in tried] == ["failover.invoke first", "failover.invoke second"]
    assert tried[0].attributes is not None
    assert tried[0].attributes["error.type"] == "BackendUnavailable"
    assert parented_by(tried, operation)
    gauges = otel.metrics()
    assert "failover.repairs.pending" not in gauges  # an Invoker has no journal


def test_async_operations_are_children_of_the_task_s_span(
    urls: list[str], tmp_path: Path, otel: Otel
) -> None:
    store = traced_host(urls, tmp_path / "j", otel)
    app = otel.tracer_provider.get_tracer("app")

    async def main() -> int:
        async with failover.aio.Storage(store) as aio:
            await aio.put("k", b"v")
            with app.start_as_current_span("request") as request:
                await aio.get("k")
            return request.get_span_context().span_id

    request_id = asyncio.run(main())
    (operation,) = named(otel.finished(5), "failover.get")
    assert operation.parent is not None
    assert operation.parent.span_id == request_id


# -- metrics -------------------------------------------------------------------------------


def test_metrics_have_the_names_units_and_attributes_of_the_reference(
    urls: list[str], tmp_path: Path, otel: Otel
) -> None:
    with traced_host(urls, tmp_path / "j", otel, read_policy="ordered") as store:
        store.put("k", b"v")
        assert store.get("k") == b"v"
        faulty(store, "c").set(error_rate=1.0, error=BackendUnavailable)
        store.put("k2", b"v")
        assert store.flush()
        store.repair()  # c is down: its hints are outstanding
        metrics = otel.metrics()

    assert set(metrics) == set(PROMETHEUS)
    duration = metrics["failover.operation.duration"]
    assert duration.unit == "s"
    assert isinstance(duration.data, Histogram)
    by_operation = {
        (p.attributes["failover.operation"], p.attributes["failover.outcome"]): p
        for p in points(duration)
    }
    assert by_operation["get", "ok"].count == 1
    assert by_operation["put", "ok"].count == 2
    assert tuple(by_operation["get", "ok"].explicit_bounds) == DURATION_BUCKETS

    requests = metrics["failover.backend.requests"]
    assert requests.unit == "{request}"
    assert isinstance(requests.data, Sum)
    assert requests.data.is_monotonic
    counted = {
        (p.attributes["failover.backend"], p.attributes["failover.outcome"]): p.value
        for p in points(requests)
    }
    assert counted["a", "ok"] >= 2
    assert counted["c", "error"] >= 1

    states = {
        (p.attributes["failover.backend"], p.attributes["failover.breaker.state"]): p.value
        for p in points(metrics["failover.breaker.state"])
    }
    assert states["a", "closed"] == 1
    assert states["a", "open"] == 0
    assert {b for b, _ in states} == {"a", "b", "c"}
    scores = by_backend(metrics[HEALTH])
    assert set(scores) == {"a", "b", "c"}
    assert all(0 <= score <= 1 for score in scores.values())
    assert by_backend(metrics["failover.repairs.pending"])["c"] >= 1
    assert by_backend(metrics["failover.hints.outstanding"])["c"] >= 1
    assert by_backend(metrics["failover.hints.oldest_age"])["c"] >= 0
    assert set(by_backend(metrics["failover.backend.latency"])) == {"a", "b", "c"}
    assert by_backend(metrics["failover.backend.error_ratio"])["c"] > 0
    for name in set(metrics) - {"failover.operation.duration", "failover.backend.requests"}:
        assert isinstance(metrics[name].data, Gauge), name


HEALTH = "failover.backend.health_score"


def observed(otel: Otel, name: str) -> dict[str, float]:
    """Backend to value of one gauge now ({} when nothing is observed)."""
    metric = otel.metrics().get(name)
    return {} if metric is None else by_backend(metric)


def _prometheus_name(metric: Metric) -> str:
    """OpenTelemetry's Prometheus translation: unit suffix (``{...}`` dropped), ``_total``."""
    name = metric.name.replace(".", "_")
    units = {"s": "seconds", "1": "ratio" if isinstance(metric.data, Gauge) else ""}
    unit = "" if metric.unit.startswith("{") else units.get(metric.unit, metric.unit)
    if unit and not name.endswith("_" + unit):
        name += "_" + unit
    if isinstance(metric.data, Sum) and metric.data.is_monotonic:
        name += "_total"
    return name


def test_exported_through_prometheus_the_names_are_the_collector_s(
    urls: list[str], tmp_path: Path, otel: Otel
) -> None:
    with traced_host(urls, tmp_path / "j", otel) as store:
        store.put("k", b"v")
        assert store.flush()
        store.repair()
        metrics = otel.metrics()
    assert {name: _prometheus_name(m) for name, m in metrics.items()} == dict(PROMETHEUS)


def test_a_closed_or_forgotten_object_leaves_the_gauges(
    urls: list[str], tmp_path: Path, otel: Otel
) -> None:
    store = traced_host(urls, tmp_path / "j", otel)
    store.close()
    healthy = BackendHealth("x", "closed", 1.0, 1.0, 0.0, 0)

    def watched(health: Callable[[], dict[str, BackendHealth]]) -> Telemetry:
        telemetry = Telemetry(otel.tracer)
        telemetry.watch(health)
        return telemetry

    kept = watched(lambda: {"kept": healthy})
    watched(lambda: {"forgotten": healthy})  # dropped at once: held weakly
    gc.collect()
    assert observed(otel, HEALTH) == {"kept": 1.0}
    kept.close()
    assert observed(otel, HEALTH) == {}


def test_a_new_tracer_moves_the_watch_along(otel: Otel) -> None:
    telemetry = Telemetry()
    telemetry.watch(lambda: {"x": BackendHealth("x", "open", 0.1, 1.0, 1.0, 0)})
    telemetry.tracer = otel.tracer
    states = {
        p.attributes["failover.breaker.state"]: p.value
        for p in points(otel.metrics()["failover.breaker.state"])
    }
    assert states == {"closed": 0, "open": 1, "half-open": 0}
    telemetry.tracer = None
    assert observed(otel, HEALTH) == {}


# -- installation and cost -----------------------------------------------------------------


def test_importing_failover_does_not_import_opentelemetry() -> None:
    code = (
        "import sys, failover, failover.invoke, failover.telemetry, failover.aio; "
        "print([m for m in sys.modules if m.startswith('opentelemetry')])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_the_default_tracer_is_opentelemetry_unless_switched_off() -> None:
    assert default_tracer({}) is shared_tracer()
    assert default_tracer({"OTEL_SDK_DISABLED": "TRUE"}) is None
    assert default_tracer({"OTEL_SDK_DISABLED": "false"}) is shared_tracer()
    assert default_tracer({"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "flask, failover"}) is None
    assert default_tracer({"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "failover_x"}) is not None


def test_without_an_sdk_nothing_is_made(urls: list[str], tmp_path: Path) -> None:
    backends = [FaultyBackend(from_url(u)) for u in urls]
    settings = Settings.from_urls(urls, journal=str(tmp_path / "j"), repair_interval_seconds=0)
    remote = NonRecordingSpan(
        SpanContext(trace_id=7, span_id=9, is_remote=True, trace_flags=TraceFlags.SAMPLED)
    )
    with Storage(backends, settings=settings) as store:
        assert isinstance(store.telemetry.tracer, OpenTelemetryTracer)
        with store.telemetry.operation("get", "k") as record:
            pass
        assert record.span is None
        with use_span(remote), store.telemetry.operation("get", "k") as record:
            assert get_current_span() is remote  # propagated as it came
        assert record.span is None
        store.put("k", b"v")
        assert store.get("k") == b"v"


class _SkipOperations(Sampler):
    """Samples attempt spans only, whatever their parent says."""

    def should_sample(  # type: ignore[override]
        self,
        parent_context: object,
        trace_id: int,
        name: str,
        kind: object = None,
        attributes: Any = None,
        links: object = None,
        trace_state: object = None,
    ) -> SamplingResult:
        decision = Decision.DROP if " " not in name else Decision.RECORD_AND_SAMPLE
        return SamplingResult(decision, attributes)  # the span's attributes, passed on

    def get_description(self) -> str:
        return "attempts only"


def test_an_unsampled_operation_still_parents_its_attempts(
    urls: list[str], tmp_path: Path, otel: Otel
) -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider(sampler=_SkipOperations())
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracer = OpenTelemetryTracer(tracer_provider=provider)
    with traced_host(urls, tmp_path / "j", otel) as store:
        store.telemetry.tracer = tracer
        store.put("k", b"v")
        assert store.flush()
    tried = attempts(spans.get_finished_spans(), "put")
    assert len(tried) == 3
    assert len({s.context.trace_id for s in tried}) == 1  # one trace, not three
    assert all(s.parent is not None for s in tried)
    provider.shutdown()


_LATE_SDK = """
import json, sys, uuid
from failover import Storage
from failover.backends import from_url
from failover.config import Settings
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

urls = [f"memory://{uuid.uuid4().hex}?name={n}" for n in "ab"]
settings = Settings.from_urls(urls, journal=sys.argv[1], repair_interval_seconds=0)
store = Storage([from_url(u) for u in urls], settings=settings)
store.put("before", b"v")  # no SDK yet: nothing to see
spans = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(spans))
trace.set_tracer_provider(provider)
reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
store.get("before")
names = sorted(
    m.name
    for r in reader.get_metrics_data().resource_metrics
    for s in r.scope_metrics
    for m in s.metrics
)
store.close()
print(json.dumps({"spans": sorted({s.name for s in spans.get_finished_spans()}), "metrics": names}))
"""


def test_an_sdk_configured_after_the_storage_still_gets_its_telemetry(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _LATE_SDK, str(tmp_path / "j")],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k not in SWITCHES},
    ).stdout
    seen = json.loads(out)
    assert "failover.get" in seen["spans"]
    assert "failover.put" not in seen["spans"]
    assert {
        "failover.operation.duration",
        "failover.backend.requests",
        "failover.breaker.state",
        "failover.repairs.pending",
    } <= set(seen["metrics"])


def test_every_span_attribute_and_instrument_is_in_the_observe_page() -> None:
    import failover.otel as otel

    page = (Path(__file__).resolve().parents[2] / "docs" / "observe.md").read_text("utf-8")
    section = page.split("## OpenTelemetry", 1)[1].split("\n## ", 1)[0]
    # The attribute names: constants of failover.otel, public and private, with a dot.
    attributes = [
        value
        for name, value in vars(otel).items()
        if name.lstrip("_").isupper() and isinstance(value, str) and "." in value
    ]
    assert "error.type" in attributes
    for name in [*attributes, *PROMETHEUS, *PROMETHEUS.values()]:
        assert f"`{name}`" in section, name
