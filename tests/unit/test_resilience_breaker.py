"""BreakerRegistry: pybreaker-backed breakers driven by outcomes, with a manual clock."""

from __future__ import annotations

import logging
import threading
import time

import pybreaker
import pytest

from failover.errors import (
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
    NotFoundError,
    PermissionDeniedError,
    ServerError,
)
from failover.resilience import BreakerRegistry, ManualClock

Event = tuple[str, str, str]


@pytest.fixture(autouse=True)
def no_real_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(seconds: float) -> None:
        raise AssertionError(f"real sleep of {seconds} s in a unit test")

    monkeypatch.setattr(time, "sleep", refuse)


def make(**kwargs: object) -> tuple[BreakerRegistry, ManualClock, list[Event]]:
    clock = ManualClock()
    events: list[Event] = []
    registry = BreakerRegistry(
        clock=clock,
        on_state_change=lambda name, old, new: events.append((name, old, new)),
        **kwargs,  # type: ignore[arg-type]
    )
    return registry, clock, events


def trip(registry: BreakerRegistry, name: str, times: int) -> None:
    for _ in range(times):
        assert registry.allow(name)
        registry.record_failure(name, BackendUnavailable("refused"))


def test_new_breaker_is_closed() -> None:
    registry, _, events = make()
    assert registry.state("s3") == "closed"
    assert registry.allow("s3")
    assert registry.retry_after("s3") == 0.0
    assert events == []


def test_opens_after_fail_max_consecutive_transient_failures() -> None:
    registry, _, events = make(fail_max=3, reset_timeout_seconds=30)
    trip(registry, "s3", 2)
    assert registry.state("s3") == "closed"
    assert registry.failure_count("s3") == 2
    trip(registry, "s3", 1)
    assert registry.state("s3") == "open"
    assert not registry.allow("s3")
    assert not registry.available("s3")
    assert registry.retry_after("s3") == pytest.approx(30.0)
    assert events == [("s3", "closed", "open")]


def test_success_resets_the_consecutive_count() -> None:
    registry, _, _ = make(fail_max=3)
    trip(registry, "s3", 2)
    registry.record_success("s3")
    assert registry.failure_count("s3") == 0
    trip(registry, "s3", 2)
    assert registry.state("s3") == "closed"


@pytest.mark.parametrize(
    "answer", [NotFoundError("k", backend="s3"), PermissionDeniedError("denied"), KeyError("x")]
)
def test_non_transient_outcomes_count_as_success(answer: BaseException) -> None:
    registry, _, _ = make(fail_max=2)
    trip(registry, "s3", 1)
    registry.record_failure("s3", answer)
    assert registry.failure_count("s3") == 0
    for _ in range(10):
        registry.record_failure("s3", answer)
    assert registry.state("s3") == "closed"


@pytest.mark.parametrize("error", [TimeoutError(), ConnectionRefusedError(), ServerError("500")])
def test_transient_outcomes_count(error: BaseException) -> None:
    registry, _, _ = make(fail_max=1)
    registry.record_failure("s3", error)
    assert registry.state("s3") == "open"


def test_half_open_admits_exactly_one_trial_and_success_closes() -> None:
    registry, clock, events = make(fail_max=2, reset_timeout_seconds=30)
    trip(registry, "s3", 2)
    clock.advance(29.9)
    assert not registry.allow("s3")
    assert registry.retry_after("s3") == pytest.approx(0.1)
    clock.advance(0.1)
    assert registry.state("s3") == "open"  # pybreaker's stored state until someone looks
    assert registry.available("s3")  # would admit, without taking the trial
    assert registry.state("s3") == "open"
    assert registry.allow("s3")  # the trial
    assert registry.state("s3") == "half-open"
    assert not registry.allow("s3")
    assert not registry.available("s3")
    registry.record_success("s3")
    assert registry.state("s3") == "closed"
    assert registry.allow("s3")
    assert registry.allow("s3")
    assert events == [
        ("s3", "closed", "open"),
        ("s3", "open", "half-open"),
        ("s3", "half-open", "closed"),
    ]


def test_failed_trial_reopens_for_a_full_reset_timeout() -> None:
    registry, clock, events = make(fail_max=1, reset_timeout_seconds=10)
    trip(registry, "s3", 1)
    clock.advance(10)
    assert registry.allow("s3")
    registry.record_failure("s3", BackendTimeout("still down"))
    assert registry.state("s3") == "open"
    assert registry.retry_after("s3") == pytest.approx(10.0)
    clock.advance(9)
    assert not registry.allow("s3")
    clock.advance(1)
    assert registry.allow("s3")
    assert events[-2:] == [("s3", "half-open", "open"), ("s3", "open", "half-open")]


def test_not_found_during_the_trial_closes_the_breaker() -> None:
    registry, clock, _ = make(fail_max=1, reset_timeout_seconds=5)
    trip(registry, "s3", 1)
    clock.advance(5)
    assert registry.allow("s3")
    registry.record_failure("s3", NotFoundError("k"))
    assert registry.state("s3") == "closed"


def test_lost_trial_is_replaced_after_the_trial_timeout() -> None:
    registry, clock, _ = make(fail_max=1, reset_timeout_seconds=5, trial_timeout_seconds=2)
    trip(registry, "s3", 1)
    clock.advance(5)
    assert registry.allow("s3")  # this trial's outcome never arrives
    clock.advance(1.5)
    assert not registry.allow("s3")
    assert registry.retry_after("s3") == pytest.approx(0.5)
    clock.advance(0.5)
    assert registry.allow("s3")
    assert not registry.allow("s3")


def test_success_threshold_needs_several_trials() -> None:
    registry, clock, _ = make(fail_max=1, reset_timeout_seconds=5, success_threshold=2)
    trip(registry, "s3", 1)
    clock.advance(5)
    assert registry.allow("s3")
    registry.record_success("s3")
    assert registry.state("s3") == "half-open"
    assert registry.allow("s3")
    registry.record_success("s3")
    assert registry.state("s3") == "closed"


def test_outcomes_arriving_while_open_are_ignored() -> None:
    registry, clock, events = make(fail_max=1, reset_timeout_seconds=5)
    trip(registry, "s3", 1)
    clock.advance(3)
    registry.record_success("s3")  # a call admitted before the breaker opened
    registry.record_failure("s3", BackendTimeout("late"))
    assert registry.state("s3") == "open"
    assert registry.retry_after("s3") == pytest.approx(2.0)  # not extended
    assert events == [("s3", "closed", "open")]


def test_breakers_are_independent() -> None:
    registry, _, _ = make(names=["s3", "az"], fail_max=1)
    assert registry.names == ("s3", "az")
    trip(registry, "s3", 1)
    assert registry.state("s3") == "open"
    assert registry.state("az") == "closed"
    assert registry.allow("az")


def test_state_lives_in_pybreaker_storage() -> None:
    storages: dict[str, pybreaker.CircuitMemoryStorage] = {}

    def factory(name: str) -> pybreaker.CircuitBreakerStorage:
        storages[name] = pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
        return storages[name]

    registry, _, _ = make(fail_max=2, reset_timeout_seconds=10, storage_factory=factory)
    trip(registry, "gs", 2)
    assert storages["gs"].state == "open"
    assert storages["gs"].counter == 2
    assert storages["gs"].opened_at is not None
    breaker = registry.breaker("gs")
    assert isinstance(breaker, pybreaker.CircuitBreaker)
    assert breaker.current_state == "open"
    # A state changed in the storage (by another process, say) is picked up.
    storages["gs"].state = pybreaker.STATE_CLOSED
    assert registry.state("gs") == "closed"
    assert registry.allow("gs")


def test_reset_closes_the_breaker() -> None:
    registry, _, events = make(fail_max=1)
    trip(registry, "s3", 1)
    registry.reset("s3")
    assert registry.state("s3") == "closed"
    assert registry.failure_count("s3") == 0
    assert events == [("s3", "closed", "open"), ("s3", "open", "closed")]


def test_failing_state_hook_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    def broken(name: str, old: str, new: str) -> None:
        raise RuntimeError("hook bug")

    registry = BreakerRegistry(fail_max=1, clock=ManualClock(), on_state_change=broken)
    with caplog.at_level(logging.ERROR, logger="failover.resilience.breaker"):
        registry.record_failure("s3", BackendUnavailable("down"))
    assert registry.state("s3") == "open"
    assert "on_state_change hook failed" in caplog.text


def test_caller_exception_is_not_touched() -> None:
    registry, _, _ = make(fail_max=1)
    error = BackendUnavailable("refused")
    registry.record_failure("s3", error)
    assert error.__traceback__ is None
    assert error.__context__ is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fail_max": 0},
        {"success_threshold": 0},
        {"reset_timeout_seconds": -1},
        {"trial_timeout_seconds": -1},
    ],
)
def test_rejects_bad_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        BreakerRegistry(**kwargs)  # type: ignore[arg-type]


def test_thread_safety_smoke() -> None:
    registry = BreakerRegistry(fail_max=10**9, clock=ManualClock())
    errors: list[BaseException] = []

    def hammer() -> None:
        try:
            for _ in range(1000):
                assert registry.allow("s3")
                registry.record_failure("s3", BackendUnavailable("down"))
                registry.state("s3")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert registry.failure_count("s3") == 8000
    assert registry.state("s3") == "closed"


def test_concurrent_half_open_grants_one_trial() -> None:
    registry = BreakerRegistry(fail_max=1, reset_timeout_seconds=1, clock=(clock := ManualClock()))
    registry.record_failure("s3", BackendUnavailable("down"))
    clock.advance(1)
    granted: list[bool] = []
    lock = threading.Lock()
    barrier = threading.Barrier(16)

    def contend() -> None:
        barrier.wait()
        result = registry.allow("s3")
        with lock:
            granted.append(result)

    threads = [threading.Thread(target=contend) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert granted.count(True) == 1
