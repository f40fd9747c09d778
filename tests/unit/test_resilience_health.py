"""HealthTracker: peak EWMA, error-rate EWMA, score, cold start, idle recovery."""

from __future__ import annotations

import math
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from failover.errors import ConfigError
from failover.resilience import HealthTracker, ManualClock
from failover.types import BackendHealth


def make(**kwargs: object) -> tuple[HealthTracker, ManualClock]:
    clock = ManualClock()
    return HealthTracker(clock=clock, **kwargs), clock  # type: ignore[arg-type]


def test_first_sample_sets_the_latency() -> None:
    tracker, _ = make()
    tracker.record_success("a", 0.02)
    snap = tracker.snapshot("a")
    assert snap.latency_ms == pytest.approx(20.0)
    assert snap.error_rate == 0.0
    assert snap.samples == 1
    assert snap.score == 1.0


def test_a_slower_sample_replaces_the_average_at_once() -> None:
    tracker, clock = make()
    tracker.record_success("a", 0.01)
    clock.advance(60)  # however long ago the last sample was
    tracker.record_success("a", 0.5)
    assert tracker.snapshot("a").latency_ms == pytest.approx(500.0)


def test_faster_samples_decay_the_peak_with_time_not_count() -> None:
    tracker, clock = make(decay_seconds=10.0)
    tracker.record_success("a", 0.5)
    for _ in range(1000):  # same instant: no time has passed, so no decay
        tracker.record_success("a", 0.01)
    assert tracker.snapshot("a").latency_ms == pytest.approx(500.0)

    clock.advance(10.0)  # one time constant
    tracker.record_success("a", 0.01)
    expected = 0.5 * math.exp(-1) + 0.01 * (1 - math.exp(-1))
    assert tracker.snapshot("a").latency_ms == pytest.approx(expected * 1000)


def test_decay_converges_to_the_new_latency() -> None:
    tracker, clock = make(decay_seconds=1.0)
    tracker.record_success("a", 1.0)
    for _ in range(50):
        clock.advance(1.0)
        tracker.record_success("a", 0.1)
    assert tracker.snapshot("a").latency_ms == pytest.approx(100.0, rel=1e-6)


def test_error_rate_follows_transient_failures() -> None:
    tracker, _ = make(error_window_calls=20)
    tracker.record_failure("a", 0.01)
    # The first sample starts from the cold-start "healthy": weight 1/20.
    assert tracker.snapshot("a").error_rate == pytest.approx(0.05)
    tracker.record_failure("a", 0.01)
    assert tracker.snapshot("a").error_rate == pytest.approx(0.05 + 0.95 * 0.05)
    for _ in range(200):
        tracker.record_failure("a", 0.01)
    assert tracker.snapshot("a").error_rate > 0.99
    for _ in range(200):
        tracker.record_success("a", 0.01)
    assert tracker.snapshot("a").error_rate < 0.01


def test_a_sample_after_a_long_silence_outweighs_stale_history() -> None:
    tracker, clock = make(decay_seconds=10.0, error_window_calls=20)
    for _ in range(200):
        tracker.record_failure("a", 0.01)
    clock.advance(100.0)
    tracker.record_success("a", 0.01)
    assert tracker.snapshot("a").error_rate < 0.001


def test_consecutive_failures_and_counts() -> None:
    tracker, _ = make()
    tracker.record_failure("a", 0.1)
    tracker.record_failure("a", 0.1)
    assert tracker.snapshot("a").consecutive_failures == 2
    tracker.record_success("a", 0.1)
    tracker.record_failure("a", 0.1)
    snap = tracker.snapshot("a")
    assert snap.consecutive_failures == 1
    assert snap.samples == 4
    assert snap.failures == 3


def test_score_is_latency_relative_to_the_best_times_success_rate() -> None:
    tracker, _ = make(latency_floor_seconds=0.001)
    tracker.record_success("fast", 0.010)
    tracker.record_success("slow", 0.020)
    scores = tracker.snapshots()
    assert scores["fast"].score == pytest.approx(1.0)
    assert scores["slow"].score == pytest.approx(0.011 / 0.021)

    tracker.record_failure("fast", 0.010)  # error rate 1/20, latency unchanged
    fast = tracker.snapshot("fast")
    assert fast.error_rate == pytest.approx(0.05)
    assert fast.score == pytest.approx(1.0 * (1 - 0.05))


def test_always_failing_backend_scores_about_zero() -> None:
    tracker, _ = make()
    tracker.record_success("good", 0.01)
    for _ in range(300):
        tracker.record_failure("bad", 0.01)
    assert tracker.score("bad") < 0.001
    assert tracker.score("good") == 1.0


def test_cold_backend_is_healthy_with_average_latency() -> None:
    tracker, _ = make(names=["a", "b", "cold"], latency_floor_seconds=0.0)
    tracker.record_success("a", 0.010)
    tracker.record_success("b", 0.030)
    cold = tracker.snapshot("cold")
    assert cold.samples == 0
    assert cold.error_rate == 0.0
    assert cold.latency_ms == pytest.approx(20.0)
    assert cold.score == pytest.approx(0.010 / 0.020)
    # An unknown name is reported the same way, without being remembered.
    assert tracker.snapshot("never-seen").latency_ms == pytest.approx(20.0)
    assert "never-seen" not in tracker.names


def test_all_cold_backends_score_one() -> None:
    tracker, _ = make(names=["a", "b"])
    for snap in tracker.snapshots().values():
        assert snap.score == 1.0
        assert snap.latency_ms == 0.0


def test_idle_backend_fades_in_its_score_until_it_is_probed() -> None:
    tracker, clock = make(idle_recovery_seconds=30.0, latency_floor_seconds=0.0)
    tracker.record_success("slow", 0.500)
    for _ in range(300):
        tracker.record_failure("slow", 0.500)
    tracker.record_success("fast", 0.010)
    before = tracker.snapshot("slow")
    assert before.score < 0.01

    clock.advance(30.0)
    tracker.record_success("fast", 0.010)  # the fast one stays busy
    after = tracker.snapshot("slow")
    fade = math.exp(-1)
    # The measured numbers are reported unchanged ...
    assert after.latency_ms == before.latency_ms
    assert after.error_rate == before.error_rate
    # ... but the score uses their faded values.
    expected = 0.010 / (0.500 * fade) * (1 - before.error_rate * fade)
    assert after.score == pytest.approx(expected)
    assert after.score > before.score

    clock.advance(300.0)
    tracker.record_success("fast", 0.010)
    assert tracker.score("slow") > 0.9  # now it ranks first: worth a probe


def test_idle_recovery_can_be_disabled() -> None:
    tracker, clock = make(idle_recovery_seconds=math.inf)
    tracker.record_success("fast", 0.01)
    tracker.record_success("slow", 0.1)
    before = tracker.score("slow")
    clock.advance(10_000)
    tracker.record_success("fast", 0.01)
    assert tracker.score("slow") == before


def test_a_failed_probe_after_idling_drops_the_score_again() -> None:
    tracker, clock = make()
    tracker.record_success("fast", 0.01)
    for _ in range(300):
        tracker.record_failure("slow", 0.5)
    clock.advance(600.0)
    tracker.record_success("fast", 0.01)
    assert tracker.score("slow") > 0.9
    tracker.record_failure("slow", 0.5)
    assert tracker.score("slow") < 0.05


def test_reset_makes_a_backend_cold() -> None:
    tracker, _ = make()
    tracker.record_failure("a", 1.0)
    tracker.reset("a")
    assert tracker.snapshot("a").samples == 0


def test_snapshot_converts_to_backend_health() -> None:
    tracker, _ = make()
    tracker.record_success("a", 0.004)
    health = tracker.snapshot("a").to_backend_health(state="closed", pending_repairs=3)
    assert health == BackendHealth(
        name="a",
        state="closed",
        score=1.0,
        latency_ms=pytest.approx(4.0),  # type: ignore[arg-type]
        error_rate=0.0,
        pending_repairs=3,
    )


@pytest.mark.parametrize("latency", [-0.1, math.nan])
def test_rejects_bad_latencies(latency: float) -> None:
    tracker, _ = make()
    with pytest.raises(ValueError):
        tracker.record_success("a", latency)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"decay_seconds": 0},
        {"idle_recovery_seconds": -1},
        {"error_window_calls": 0},
        {"latency_floor_seconds": -0.001},
    ],
)
def test_rejects_bad_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        HealthTracker(**kwargs)  # type: ignore[arg-type]


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c"]),
            st.floats(min_value=0, max_value=100, allow_nan=False),
            st.booleans(),
            st.floats(min_value=0, max_value=1000, allow_nan=False),
        ),
        max_size=60,
    )
)
def test_scores_and_rates_stay_in_range(events: list[tuple[str, float, bool, float]]) -> None:
    tracker, clock = make()
    for name, latency, failed, wait in events:
        clock.advance(wait)
        if failed:
            tracker.record_failure(name, latency)
        else:
            tracker.record_success(name, latency)
    for snap in tracker.snapshots(["a", "b", "c"]).values():
        assert 0.0 <= snap.score <= 1.0
        assert 0.0 <= snap.error_rate <= 1.0
        assert snap.latency_ms >= 0.0


def test_thread_safety_smoke() -> None:
    tracker, clock = make()
    threads_n, per_thread = 8, 2000
    errors: list[BaseException] = []

    def hammer(index: int) -> None:
        try:
            for i in range(per_thread):
                name = "ab"[i % 2]
                if (i + index) % 4 == 0:
                    tracker.record_failure(name, 0.02)
                else:
                    tracker.record_success(name, 0.01)
                if i % 100 == 0:
                    clock.advance(0.01)
                    tracker.snapshots()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    snaps = tracker.snapshots()
    assert snaps["a"].samples + snaps["b"].samples == threads_n * per_thread
    expected_failures = sum(
        1 for n in range(threads_n) for i in range(per_thread) if (i + n) % 4 == 0
    )
    assert snaps["a"].failures + snaps["b"].failures == expected_failures
