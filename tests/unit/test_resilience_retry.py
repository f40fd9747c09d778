"""RetryPolicy (full jitter) and call_with_retries (tenacity, budget, deadline)."""

from __future__ import annotations

import random
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from failover.errors import (
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
    NotFoundError,
    PermissionDeniedError,
    ThrottledError,
)
from failover.resilience import (
    Deadline,
    ManualClock,
    RetryBudget,
    RetryPolicy,
    call_with_retries,
)


class MaxRandom(random.Random):
    """Always draws the top of the range: makes full jitter deterministic."""

    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.fixture(autouse=True)
def no_real_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(seconds: float) -> None:
        raise AssertionError(f"real sleep of {seconds} s in a unit test")

    monkeypatch.setattr(time, "sleep", refuse)


class Flaky:
    """Raises the given exceptions in turn, then returns "ok"."""

    def __init__(self, *errors: BaseException, clock: ManualClock | None = None, cost: float = 0):
        self.errors = list(errors)
        self.calls = 0
        self.clock = clock
        self.cost = cost

    def __call__(self) -> str:
        self.calls += 1
        if self.clock is not None:
            self.clock.advance(self.cost)
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


# -- RetryPolicy -----------------------------------------------------------------------


def test_backoff_cap_doubles_up_to_the_ceiling() -> None:
    policy = RetryPolicy(attempts=8, base_delay_seconds=0.1, max_delay_seconds=1.0)
    caps = [policy.backoff_cap_seconds(n) for n in range(6)]
    assert caps == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert policy.backoff_cap_seconds(10_000) == 1.0  # no overflow
    with pytest.raises(ValueError):
        policy.backoff_cap_seconds(-1)


def test_delays_yield_one_per_retry() -> None:
    policy = RetryPolicy(attempts=4, base_delay_seconds=0.1, max_delay_seconds=1.0)
    assert list(policy.delays(rng=MaxRandom())) == pytest.approx([0.1, 0.2, 0.4])
    assert list(RetryPolicy(attempts=1).delays()) == []


@given(
    retry=st.integers(min_value=0, max_value=2000),
    base=st.floats(min_value=0, max_value=10, allow_nan=False),
    extra=st.floats(min_value=0, max_value=100, allow_nan=False),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_full_jitter_delay_is_within_bounds(
    retry: int, base: float, extra: float, seed: int
) -> None:
    policy = RetryPolicy(attempts=3, base_delay_seconds=base, max_delay_seconds=base + extra)
    delay = policy.delay_seconds(retry, rng=random.Random(seed))
    assert 0.0 <= delay <= min(base + extra, base * 2.0 ** min(retry, 1000))


def test_full_jitter_spreads_over_the_whole_range() -> None:
    policy = RetryPolicy(attempts=3, base_delay_seconds=1.0, max_delay_seconds=1.0)
    rng = random.Random(11)
    delays = [policy.delay_seconds(0, rng=rng) for _ in range(2000)]
    assert min(delays) < 0.05
    assert max(delays) > 0.95


@pytest.mark.parametrize(
    "kwargs",
    [
        {"attempts": 0},
        {"base_delay_seconds": -1.0},
        {"base_delay_seconds": float("nan")},
        {"base_delay_seconds": 2.0, "max_delay_seconds": 1.0},
    ],
)
def test_policy_validation(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


# -- call_with_retries -----------------------------------------------------------------


def test_success_needs_no_retry() -> None:
    clock = ManualClock()
    fn = Flaky()
    assert call_with_retries(fn, policy=RetryPolicy(), clock=clock) == "ok"
    assert fn.calls == 1
    assert clock.sleeps == ()


def test_transient_errors_are_retried_with_jittered_backoff() -> None:
    clock = ManualClock()
    fn = Flaky(BackendUnavailable("refused"), ThrottledError("slow down"))
    policy = RetryPolicy(attempts=3, base_delay_seconds=0.1, max_delay_seconds=5)
    result = call_with_retries(fn, policy=policy, clock=clock, rng=MaxRandom())
    assert result == "ok"
    assert fn.calls == 3
    assert clock.sleeps == pytest.approx((0.1, 0.2))


def test_bare_timeout_and_connection_errors_are_transient() -> None:
    fn = Flaky(TimeoutError(), ConnectionResetError())
    assert call_with_retries(fn, policy=RetryPolicy(), clock=ManualClock()) == "ok"
    assert fn.calls == 3


@pytest.mark.parametrize(
    "error", [NotFoundError("k", backend="s3"), PermissionDeniedError("no"), ValueError("bug")]
)
def test_non_transient_errors_are_raised_at_once(error: BaseException) -> None:
    clock = ManualClock()
    fn = Flaky(error)
    with pytest.raises(type(error)) as info:
        call_with_retries(fn, policy=RetryPolicy(attempts=5), clock=clock)
    assert info.value is error
    assert fn.calls == 1
    assert clock.sleeps == ()


def test_stops_after_the_attempts_and_reraises_the_last_error() -> None:
    clock = ManualClock()
    errors = [BackendTimeout(f"timeout {n}") for n in range(5)]
    fn = Flaky(*errors)
    with pytest.raises(BackendTimeout) as info:
        call_with_retries(fn, policy=RetryPolicy(attempts=3), clock=clock)
    assert info.value is errors[2]  # the exception itself, not tenacity's RetryError
    assert fn.calls == 3
    assert len(clock.sleeps) == 2


def test_stops_when_the_next_sleep_would_pass_the_deadline() -> None:
    clock = ManualClock()
    deadline = Deadline.after(2.5, clock=clock)
    fn = Flaky(*[BackendUnavailable("down")] * 10)
    policy = RetryPolicy(attempts=10, base_delay_seconds=1.0, max_delay_seconds=1.0)
    with pytest.raises(BackendUnavailable):
        call_with_retries(fn, policy=policy, deadline=deadline, rng=MaxRandom())
    # t=0 try, sleep 1, t=1 try, sleep 1, t=2 try; 0.5 s left < next 1 s sleep: stop.
    assert fn.calls == 3
    assert clock.sleeps == (1.0, 1.0)  # the deadline's clock was used for sleeping
    assert clock.monotonic() == 2.0


def test_slow_attempts_use_up_the_deadline() -> None:
    clock = ManualClock()
    deadline = Deadline.after(1.0, clock=clock)
    fn = Flaky(*[BackendTimeout("slow")] * 10, clock=clock, cost=0.6)
    policy = RetryPolicy(attempts=10, base_delay_seconds=0.01, max_delay_seconds=0.01)
    with pytest.raises(BackendTimeout):
        call_with_retries(fn, policy=policy, deadline=deadline, clock=clock)
    assert fn.calls == 2


def test_stops_when_the_budget_is_empty() -> None:
    clock = ManualClock()
    budget = RetryBudget(ratio=0.2, min_retries_per_second=0, clock=clock)
    fn = Flaky(BackendUnavailable("down"), BackendUnavailable("down"))
    with pytest.raises(BackendUnavailable):
        call_with_retries(fn, policy=RetryPolicy(attempts=5), budget=budget, clock=clock)
    assert fn.calls == 1  # the call's own deposit (0.2) does not buy a retry
    assert budget.balance == pytest.approx(0.2)


def test_budget_pays_for_exactly_the_retries_made() -> None:
    clock = ManualClock()
    budget = RetryBudget(ratio=1.0, min_retries_per_second=0, clock=clock)
    for _ in range(2):
        budget.deposit()  # earlier calls: 2 tokens; this call adds 1
    fn = Flaky(*[BackendUnavailable("down")] * 10)
    with pytest.raises(BackendUnavailable):
        call_with_retries(fn, policy=RetryPolicy(attempts=10), budget=budget, clock=clock)
    assert fn.calls == 4
    assert budget.balance == 0.0


def test_budget_is_not_charged_when_attempts_run_out() -> None:
    clock = ManualClock()
    budget = RetryBudget(ratio=1.0, min_retries_per_second=0, clock=clock)
    fn = Flaky(BackendUnavailable("down"))
    with pytest.raises(BackendUnavailable):
        call_with_retries(fn, policy=RetryPolicy(attempts=1), budget=budget, clock=clock)
    assert budget.balance == 1.0


def test_on_retry_reports_each_retry() -> None:
    clock = ManualClock()
    first, second = BackendUnavailable("a"), ServerLikeError()
    events: list[tuple[int, BaseException, float]] = []
    fn = Flaky(first, second)
    policy = RetryPolicy(attempts=3, base_delay_seconds=0.5, max_delay_seconds=5)
    call_with_retries(
        fn,
        policy=policy,
        clock=clock,
        rng=MaxRandom(),
        is_retryable=lambda exc: isinstance(exc, (BackendUnavailable, ServerLikeError)),
        on_retry=lambda attempt, exc, delay: events.append((attempt, exc, delay)),
    )
    assert events == [(1, first, 0.5), (2, second, 1.0)]
    assert clock.sleeps == (0.5, 1.0)


class ServerLikeError(Exception):
    """A caller-defined retryable error."""


def test_custom_is_retryable() -> None:
    fn = Flaky(NotFoundError("k"))
    result = call_with_retries(
        fn,
        policy=RetryPolicy(),
        clock=ManualClock(),
        is_retryable=lambda exc: isinstance(exc, NotFoundError),
    )
    assert result == "ok"
    assert fn.calls == 2


def test_policy_is_shareable_and_immutable() -> None:
    policy = RetryPolicy()
    with pytest.raises(AttributeError):
        policy.attempts = 9  # type: ignore[misc]
    assert policy == RetryPolicy(attempts=3, base_delay_seconds=0.05, max_delay_seconds=2.0)
