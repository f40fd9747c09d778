"""The Invoker over in-process CallableTargets: classification, routing, events (fast)."""

from __future__ import annotations

import importlib
import threading
import time
import uuid

import pytest

from failover import AllBackendsFailed, FailoverError, InvalidKeyError
from failover.errors import (
    BackendTimeout,
    BackendUnavailable,
    PermissionDeniedError,
    ThrottledError,
)
from failover.events import BreakerStateChanged, Event, FailedOver, HedgeFired
from failover.invoke import (
    CallableTarget,
    FunctionError,
    InvocationRequest,
    Invoker,
    RequestRejected,
    TargetNotFoundError,
    TargetResponse,
)
from failover.resilience import ManualClock, OrderedRouter


class Recorder:
    """A target operation that records requests and plays scripted outcomes."""

    def __init__(self, *outcomes: object) -> None:
        self.outcomes = list(outcomes)
        self.requests: list[InvocationRequest] = []
        self.lock = threading.Lock()

    def __call__(self, request: InvocationRequest) -> object:
        with self.lock:
            self.requests.append(request)
            outcome = self.outcomes.pop(0) if self.outcomes else None
        if isinstance(outcome, BaseException):
            raise outcome
        if callable(outcome):
            return outcome(request)
        return request.body if outcome is None else outcome

    @property
    def keys(self) -> list[str]:
        return [r.idempotency_key for r in self.requests]


class Events:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type[Event]) -> list[Event]:
        return [e for e in self.events if isinstance(e, kind)]


def pair(first: Recorder, second: Recorder, **options: object) -> tuple[Invoker, Events]:
    events = Events()
    options.setdefault("read_policy", "ordered")
    invoker = Invoker(
        [CallableTarget("a", first), CallableTarget("b", second)],
        hooks=[events],
        clock=options.pop("clock", None),  # type: ignore[arg-type]
        **options,
    )
    return invoker, events


def test_payloads_are_encoded_by_type() -> None:
    echo = Recorder()
    with Invoker([CallableTarget("a", echo)]) as invoker:
        assert invoker.invoke({"n": 1, "s": "é"}).payload == '{"n":1,"s":"é"}'.encode()
        assert invoker.invoke("héllo").payload == "héllo".encode()
        assert invoker.invoke(b"\x00\x01").payload == b"\x00\x01"
        assert invoker.invoke(b"{}", content_type="application/json").json() == {}
    assert [r.content_type for r in echo.requests] == [
        "application/json",
        "text/plain; charset=utf-8",
        "application/octet-stream",
        "application/json",
    ]


def test_unencodable_payload_and_bad_key_fail_before_any_call() -> None:
    echo = Recorder()
    with Invoker([CallableTarget("a", echo)]) as invoker:
        with pytest.raises(TypeError, match="JSON-serialisable"):
            invoker.invoke({"when": object()})
        with pytest.raises(TypeError):
            invoker.invoke(float("nan"))
        for bad in ("", "has space", "x" * 256, "new\nline"):
            with pytest.raises(InvalidKeyError):
                invoker.invoke(b"", idempotency_key=bad)
    assert echo.requests == []


def test_result_fields_and_generated_idempotency_key() -> None:
    with Invoker([CallableTarget("a", Recorder(TargetResponse(202, b'{"ok":true}')))]) as invoker:
        result = invoker.invoke({})
    assert (result.target, result.status, result.json(), result.attempts) == (
        "a",
        202,
        {"ok": True},
        1,
    )
    assert result.latency_ms >= 0
    assert uuid.UUID(result.idempotency_key).version == 4
    with pytest.raises(AttributeError):
        result.status = 500  # type: ignore[misc]


def test_transient_errors_are_retried_then_failed_over_with_one_key() -> None:
    first = Recorder(*(ThrottledError("429") for _ in range(3)))
    second = Recorder()
    invoker, events = pair(first, second, retry_attempts=3, clock=ManualClock())
    with invoker:
        result = invoker.invoke(b"x", idempotency_key="order-42")
    assert result.target == "b"
    assert result.attempts == 4
    assert first.keys == ["order-42"] * 3
    assert second.keys == ["order-42"]
    failed = events.of(FailedOver)
    assert [(e.backend, e.operation, e.key) for e in failed] == [("a", "invoke", "order-42")]  # type: ignore[attr-defined]


def test_a_rejected_request_is_raised_at_once_without_failover_or_breaker_charge() -> None:
    first = Recorder(
        *(RequestRejected("HTTP 400: bad", status=400, payload=b"bad") for _ in range(9))
    )
    second = Recorder()
    invoker, events = pair(first, second, breaker_fail_max=2, retry_attempts=3)
    with invoker:
        for _ in range(3):
            with pytest.raises(RequestRejected) as info:
                invoker.invoke(b"x")
            assert (info.value.status, info.value.payload) == (400, b"bad")
        health = invoker.health()
    assert len(first.requests) == 3  # never retried
    assert second.requests == []  # never failed over
    assert health["a"].state == "closed"
    assert health["a"].error_rate == 0
    assert events.of(FailedOver) == []


def test_function_errors_fail_over_by_default() -> None:
    first = Recorder(FunctionError("boom", status=500), FunctionError("boom", status=500))
    second = Recorder()
    invoker, _ = pair(first, second, retry_attempts=2, clock=ManualClock())
    with invoker:
        result = invoker.invoke(b"x")
    assert result.target == "b"
    assert len(first.requests) == 2  # retried within the attempts, then failed over


def test_function_errors_raise_at_once_with_the_raise_policy() -> None:
    first = Recorder(*(FunctionError("boom", status=500, payload=b"trace") for _ in range(3)))
    second = Recorder()
    invoker, _ = pair(first, second, retry_attempts=3, breaker_fail_max=1, function_error="raise")
    with invoker:
        for _ in range(2):
            with pytest.raises(FunctionError) as info:
                invoker.invoke(b"x")
            assert info.value.payload == b"trace"
        assert invoker.health()["a"].state == "closed"
    assert len(first.requests) == 2
    assert second.requests == []


@pytest.mark.parametrize(
    "error", [PermissionDeniedError("401"), TargetNotFoundError("no such function")]
)
def test_target_configuration_errors_fail_over_without_retry(error: Exception) -> None:
    first = Recorder(error)
    second = Recorder()
    invoker, events = pair(first, second, retry_attempts=3)
    with invoker:
        assert invoker.invoke(b"x").target == "b"
    assert len(first.requests) == 1
    assert len(events.of(FailedOver)) == 1


def test_all_targets_failed_names_every_target() -> None:
    invoker, _ = pair(
        Recorder(BackendUnavailable("refused")),
        Recorder(FunctionError("boom", status=500)),
        retry_attempts=1,
    )
    with invoker, pytest.raises(AllBackendsFailed) as info:
        invoker.invoke(b"x")
    assert set(info.value.errors) == {"a", "b"}
    assert isinstance(info.value.errors["a"], BackendUnavailable)
    assert isinstance(info.value.errors["b"], FunctionError)


def test_breaker_opens_after_fail_max_and_closes_after_reset() -> None:
    clock = ManualClock()
    first = Recorder(*(BackendUnavailable("down") for _ in range(2)))
    second = Recorder()
    invoker, events = pair(
        first, second, retry_attempts=1, breaker_fail_max=2, breaker_reset_seconds=30, clock=clock
    )
    with invoker:
        for _ in range(2):
            assert invoker.invoke(b"x").target == "b"
        assert invoker.health()["a"].state == "open"
        assert invoker.invoke(b"x").target == "b"
        assert len(first.requests) == 2  # skipped while open
        clock.advance(31)
        assert invoker.invoke(b"x").target == "a"  # the half-open trial succeeds
        assert invoker.health()["a"].state == "closed"
    transitions = [(e.old, e.new) for e in events.of(BreakerStateChanged)]  # type: ignore[attr-defined]
    assert transitions == [("closed", "open"), ("open", "half-open"), ("half-open", "closed")]


def test_hedged_call_sends_the_same_key_to_both_targets() -> None:
    release = threading.Event()
    # Stalled until released (once the call is over): only the hedge can answer.
    slow = Recorder(lambda request: release.wait(120) and request.body)
    fast = Recorder()
    invoker, events = pair(slow, fast, read_policy="hedged", hedge_delay_ms=20)
    invoker._dispatch.router = OrderedRouter()  # the slow one first (hedging routes by health)
    with invoker:
        try:
            result = invoker.invoke(b"x", idempotency_key="hedge-1")
        finally:
            release.set()
    assert result.target == "b"
    assert result.attempts == 2
    assert slow.keys == fast.keys == ["hedge-1"]
    assert len(events.of(HedgeFired)) == 1


def test_call_deadline_bounds_a_hung_target_and_caps_attempt_timeouts() -> None:
    release = threading.Event()
    # Hangs until released (at the end), far longer than the bound below.
    hung = Recorder(lambda request: release.wait(120))
    invoker, _ = pair(hung, Recorder(), timeout_seconds=60, deadline_seconds=120)
    with invoker:
        try:
            started = time.monotonic()
            with pytest.raises(AllBackendsFailed) as info:
                invoker.invoke(b"x", timeout_seconds=0.3)
            elapsed = time.monotonic() - started
        finally:
            release.set()
    assert elapsed >= 0.3
    # The call's 0.3 s deadline ends it, not the 60 s attempt timeout nor the hang. The
    # bound is 30x that deadline and far below the others: a loaded machine cannot reach
    # it, a call the deadline did not end does.
    assert elapsed < 10.0, f"the hung call took {elapsed:.1f} s"
    assert isinstance(info.value.errors["a"], BackendTimeout)
    assert hung.requests[0].timeout_seconds <= 0.3


@pytest.mark.parametrize(
    ("raised", "mapped"),
    [
        (TimeoutError("slow"), BackendTimeout),
        (ConnectionRefusedError("refused"), BackendUnavailable),
        (ValueError("bug"), FunctionError),
        (ThrottledError("already mapped"), ThrottledError),
    ],
)
def test_callable_target_maps_exceptions(raised: Exception, mapped: type[Exception]) -> None:
    target = CallableTarget("a", Recorder(raised))
    with pytest.raises(mapped) as info:
        target.invoke(InvocationRequest(body=b"", idempotency_key="k"))
    if mapped is not type(raised):
        assert info.value.__cause__ is raised


def test_callable_target_custom_error_mapping_and_close() -> None:
    closed: list[bool] = []

    def to_throttle(exc: Exception) -> ThrottledError | None:
        return ThrottledError("queue full") if "full" in str(exc) else None

    target = CallableTarget(
        "q",
        Recorder(RuntimeError("queue full")),
        map_error=to_throttle,
        close=lambda: closed.append(True),
    )
    with pytest.raises(ThrottledError):
        target.invoke(InvocationRequest(body=b"", idempotency_key="k"))
    target.close()
    assert closed == [True]


def test_callable_answers_none_as_empty_payload_and_names_may_hold_commas() -> None:
    with Invoker([CallableTarget("queue,eu-west-1", lambda request: None)]) as invoker:
        result = invoker.invoke({"order": 1})
    assert (result.target, result.status, result.payload) == ("queue,eu-west-1", 200, b"")


def test_closed_invoker_refuses_calls() -> None:
    invoker = Invoker([CallableTarget("a", Recorder())])
    invoker.close()
    invoker.close()  # idempotent
    with pytest.raises(FailoverError, match="closed"):
        invoker.invoke(b"x")


@pytest.mark.parametrize(
    "module",
    [
        "failover.invoke",
        "failover.invoke.base",
        "failover.invoke.errors",
        "failover.invoke.config",
        "failover.invoke.callable",
        "failover.invoke.http",
        "failover.invoke.azure",
        "failover.invoke.gcf",
        "failover.invoke.aws_lambda",
        "failover.invoke.testing",
    ],
)
def test_every_exported_name_exists(module: str) -> None:
    loaded = importlib.import_module(module)
    for name in loaded.__all__:
        assert getattr(loaded, name) is not None, name
