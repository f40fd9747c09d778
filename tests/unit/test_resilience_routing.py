"""Routers (ordered, power of two choices, panic mode) and hedging."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from failover.errors import ConfigError
from failover.resilience import (
    HealthRouter,
    HealthTracker,
    HedgePolicy,
    LatencyWindow,
    ManualClock,
    OrderedRouter,
    nearest_rank,
)

NAMES = ["s3", "az", "gs"]


def everyone(_: str) -> bool:
    return True


def tracker_with(
    latencies: dict[str, float], *, failures: dict[str, int] | None = None
) -> HealthTracker:
    tracker = HealthTracker(clock=ManualClock())
    for name, latency in latencies.items():
        tracker.record_success(name, latency)
    for name, count in (failures or {}).items():
        for _ in range(count):
            tracker.record_failure(name, latencies[name])
    return tracker


# -- OrderedRouter ---------------------------------------------------------------------


def test_ordered_router_keeps_priority_order() -> None:
    router = OrderedRouter()
    assert router.order(NAMES, available=everyone) == NAMES
    plan = router.plan(NAMES, available=everyone)
    assert plan.excluded == frozenset()
    assert not plan.panic


def test_unavailable_backends_go_last_and_are_excluded() -> None:
    router = OrderedRouter()
    plan = router.plan(NAMES, available=lambda name: name != "s3")
    assert plan.order == ("az", "gs", "s3")
    assert plan.excluded == frozenset({"s3"})
    assert not plan.panic


def test_panic_when_nothing_is_available_returns_priority_order() -> None:
    for router in (OrderedRouter(), HealthRouter(tracker_with({"gs": 0.001, "az": 0.5}))):
        plan = router.plan(NAMES, available=lambda _: False)
        assert plan.order == tuple(NAMES)
        assert plan.panic
        assert plan.excluded == frozenset()


def test_panic_below_threshold_stops_excluding() -> None:
    router = OrderedRouter()  # 50 %: one of three available is too few
    plan = router.plan(NAMES, available=lambda name: name == "gs")
    assert plan.panic
    assert plan.excluded == frozenset()
    assert plan.order == tuple(NAMES)


def test_panic_threshold_is_configurable() -> None:
    router = OrderedRouter(panic_threshold=0.3)  # one of three (33 %) is enough
    plan = router.plan(NAMES, available=lambda name: name == "gs")
    assert not plan.panic
    assert plan.order == ("gs", "s3", "az")
    assert plan.excluded == frozenset({"s3", "az"})
    # 0 disables panic mode except when nothing at all is available.
    assert not OrderedRouter(panic_threshold=0).plan(NAMES, available=lambda n: n == "az").panic


def test_exactly_half_available_is_not_panic() -> None:
    plan = OrderedRouter().plan(["a", "b"], available=lambda name: name == "b")
    assert not plan.panic
    assert plan.order == ("b", "a")


def test_router_edge_cases() -> None:
    router = OrderedRouter()
    assert router.order([], available=everyone) == []
    assert router.order(["solo"], available=everyone) == ["solo"]
    with pytest.raises(ConfigError):
        router.order(["a", "a"], available=everyone)
    with pytest.raises(ConfigError):
        OrderedRouter(panic_threshold=1.5)


# -- HealthRouter ----------------------------------------------------------------------


def first_picks(router: HealthRouter, names: list[str], rounds: int = 1000) -> Counter[str]:
    return Counter(router.order(names, available=everyone)[0] for _ in range(rounds))


def test_slow_backend_gets_a_minority_of_first_picks() -> None:
    tracker = tracker_with({"s3": 0.010, "az": 0.012, "gs": 0.200})
    router = HealthRouter(tracker, rng=random.Random(1))
    picks = first_picks(router, NAMES)
    assert picks["gs"] < 1000 / 3
    assert picks["s3"] > picks["az"] > 0  # load still spreads over the good ones


def test_failing_backend_is_rarely_first() -> None:
    tracker = tracker_with({"s3": 0.010, "az": 0.010, "gs": 0.010}, failures={"gs": 300})
    assert tracker.score("gs") < 0.01
    router = HealthRouter(tracker, rng=random.Random(7))
    picks = first_picks(router, NAMES)
    assert picks["gs"] < 100
    # Equal scores: pairs are random, so both healthy backends lead sometimes.
    assert picks["s3"] > 200
    assert picks["az"] > 200


def test_rest_is_ordered_by_score() -> None:
    tracker = tracker_with({"s3": 0.010, "az": 0.040, "gs": 0.020})
    router = HealthRouter(tracker, rng=random.Random(3))
    for _ in range(100):
        order = router.order(NAMES, available=everyone)
        rest = order[1:]
        scores = [tracker.score(name) for name in rest]
        assert scores == sorted(scores, reverse=True)


def test_health_router_excludes_unavailable_then_panics() -> None:
    tracker = tracker_with({"s3": 0.010, "az": 0.020, "gs": 0.030})
    router = HealthRouter(tracker, rng=random.Random(5))
    plan = router.plan(NAMES, available=lambda name: name != "s3")
    assert plan.order[-1] == "s3"
    assert set(plan.order[:2]) == {"az", "gs"}
    assert plan.excluded == frozenset({"s3"})
    # Only one of three available: panic, every backend is routable by score.
    panic_orders = {
        router.plan(NAMES, available=lambda name: name == "gs").order for _ in range(50)
    }
    assert all(len(order) == 3 for order in panic_orders)
    assert any(order[0] == "s3" for order in panic_orders)


def test_seeded_router_is_deterministic() -> None:
    tracker = tracker_with({"s3": 0.010, "az": 0.011, "gs": 0.012})
    one = HealthRouter(tracker, rng=random.Random(42))
    two = HealthRouter(tracker, rng=random.Random(42))
    assert [one.order(NAMES, available=everyone) for _ in range(20)] == [
        two.order(NAMES, available=everyone) for _ in range(20)
    ]


def test_cold_backends_share_first_picks() -> None:
    router = HealthRouter(HealthTracker(clock=ManualClock()), rng=random.Random(0))
    picks = first_picks(router, NAMES, rounds=900)
    assert set(picks) == set(NAMES)


@given(
    names=st.lists(st.text(min_size=1, max_size=5), unique=True, max_size=8),
    down=st.sets(st.integers(min_value=0, max_value=7)),
    seed=st.integers(min_value=0, max_value=2**32),
    threshold=st.floats(min_value=0, max_value=1),
)
def test_plan_is_a_permutation_with_excluded_last(
    names: list[str], down: set[int], seed: int, threshold: float
) -> None:
    tracker = HealthTracker(clock=ManualClock())
    rng = random.Random(seed)
    for name in names:
        tracker.record_success(name, rng.random())
    unavailable = {name for i, name in enumerate(names) if i in down}
    for router in (
        OrderedRouter(panic_threshold=threshold),
        HealthRouter(tracker, rng=rng, panic_threshold=threshold),
    ):
        plan = router.plan(names, available=lambda n: n not in unavailable)
        assert sorted(plan.order) == sorted(names)
        assert len(plan.order) == len(names)
        if plan.panic:
            assert plan.excluded == frozenset()
        else:
            assert plan.excluded == unavailable
            tail = [n for n in names if n in unavailable]
            assert list(plan.order[len(names) - len(tail) :]) == tail


# -- hedging ---------------------------------------------------------------------------


def test_fixed_hedge_delay_ignores_latencies() -> None:
    policy = HedgePolicy(fixed_delay_seconds=0.25)
    assert not policy.adaptive
    assert policy.delay_seconds([5.0] * 100) == 0.25
    assert policy.delay_for(LatencyWindow(), "s3") == 0.25


def test_adaptive_hedge_delay_is_p95_of_the_primary() -> None:
    window = LatencyWindow(size=100)
    for ms in range(1, 101):
        window.record("s3", ms / 1000)
        window.record("az", 5.0)
    policy = HedgePolicy(min_delay_seconds=0.0, max_delay_seconds=10.0)
    assert policy.adaptive
    assert policy.delay_for(window, "s3") == pytest.approx(0.095)
    assert policy.delay_for(window, "az") == 5.0


def test_adaptive_hedge_delay_is_capped_at_a_multiple_of_the_median() -> None:
    # 10 % of reads stall for 500 ms: the p95 is a stall, the median is not.
    samples = [0.005] * 90 + [0.5] * 10
    assert HedgePolicy(min_samples=1).delay_seconds(samples) == pytest.approx(0.020)
    assert HedgePolicy(min_samples=1, median_multiple=None).delay_seconds(samples) == 0.5


def test_adaptive_hedge_delay_is_clamped() -> None:
    policy = HedgePolicy(min_delay_seconds=0.01, max_delay_seconds=0.5, min_samples=1)
    assert policy.delay_seconds([0.001] * 20) == 0.01
    assert policy.delay_seconds([3.0] * 20) == 0.5


def test_adaptive_hedge_delay_waits_for_enough_samples() -> None:
    policy = HedgePolicy(max_delay_seconds=0.8, min_samples=10)
    assert policy.delay_seconds([0.01] * 9) == 0.8
    assert policy.delay_seconds([0.01] * 10) == 0.01


def test_latency_window_is_bounded() -> None:
    window = LatencyWindow(size=5)
    for value in range(10):
        window.record("s3", float(value))
    assert window.samples("s3") == (5.0, 6.0, 7.0, 8.0, 9.0)
    assert window.samples("unknown") == ()
    assert window.percentile("unknown", 0.5) is None
    assert window.percentile("s3", 1.0) == 9.0
    with pytest.raises(ValueError):
        window.record("s3", -1.0)
    with pytest.raises(ConfigError):
        LatencyWindow(size=0)


def test_nearest_rank() -> None:
    assert nearest_rank([3.0, 1.0, 2.0], 0.5) == 2.0
    assert nearest_rank([1.0], 0.01) == 1.0
    assert nearest_rank([float(i) for i in range(1, 61)], 0.95) == 57.0
    for bad in (0.0, 1.01):
        with pytest.raises(ValueError):
            nearest_rank([1.0], bad)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fixed_delay_seconds": -1.0},
        {"percentile": 0.0},
        {"min_delay_seconds": 2.0, "max_delay_seconds": 1.0},
        {"min_samples": 0},
        {"median_multiple": 0.5},
        {"median_multiple": float("nan")},
    ],
)
def test_hedge_policy_validation(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        HedgePolicy(**kwargs)  # type: ignore[arg-type]


@given(st.lists(st.floats(min_value=0, max_value=1e4, allow_nan=False), max_size=50))
def test_adaptive_delay_within_floor_and_ceiling(samples: list[float]) -> None:
    policy = HedgePolicy(min_delay_seconds=0.002, max_delay_seconds=1.5, min_samples=3)
    assert 0.002 <= policy.delay_seconds(samples) <= 1.5
