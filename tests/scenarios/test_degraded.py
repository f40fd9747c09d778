"""A cloud that throttles, slows down, stalls or corrupts: measured on the real emulators."""

from __future__ import annotations

import random
import time

import pytest

from failover import Storage
from failover.backends import Backend, from_url
from failover.backends.base import META_SHA256, META_VERSION
from failover.config import Settings
from failover.errors import ThrottledError
from failover.events import FailedOver, HedgeFired, RetryScheduled
from failover.payload import Payload
from failover.resilience import ManualClock, OrderedRouter
from failover.testing import FaultyBackend

from .conftest import EventRecorder

pytestmark = [pytest.mark.integration, pytest.mark.scenario]


def _three(healthy_cloud) -> list[Backend]:
    return [
        from_url(healthy_cloud(kind, kind), timeout_seconds=5) for kind in ("s3", "azure", "gcs")
    ]


def test_throttling_is_retried_with_backoff_within_the_budget(
    healthy_cloud, recorder: EventRecorder
) -> None:
    s3, azure, gcs = _three(healthy_cloud)
    throttled = FaultyBackend(s3, error=ThrottledError, error_rate=1.0, operations={"get"})
    clock = ManualClock()  # backoff sleeps advance this clock instead of the test's time
    settings = Settings.from_urls(
        ["s3", "azure", "gcs"], read_policy="ordered", retry_attempts=3, breaker_fail_max=10_000
    )
    with Storage(
        [throttled, azure, gcs],
        settings=settings,
        hooks=[recorder],
        clock=clock,
        rng=random.Random(7),
    ) as store:
        store.put("hot", b"v")
        assert store.flush()  # every replica stored it: none is distrusted for reads
        assert store.get("hot") == b"v"
        # One read: 3 attempts on the throttled backend (2 backoff retries), then failover.
        assert throttled.calls["get"] == 3
        retries = recorder.of(RetryScheduled, "s3")
        assert [e.attempt for e in retries] == [1, 2]  # type: ignore[attr-defined]
        policy = store._dispatch.retry_policy
        for event in retries:
            cap = policy.backoff_cap_seconds(event.attempt - 1)  # type: ignore[attr-defined]
            assert 0 <= event.delay_seconds <= cap  # type: ignore[attr-defined]
        assert len(recorder.of(FailedOver, "s3")) == 1

        # Many reads: retries stop when the budget (reserve + 20 % of calls) runs dry.
        budget = store._dispatch.budget
        reserve = budget.balance
        throttled.reset_counters()
        reads = 80
        for _ in range(reads):
            assert store.get("hot") == b"v"
        attempts = throttled.calls["get"]
        retries_made = attempts - reads
        wanted = 2 * reads
        allowed = reserve + 0.2 * reads
        assert retries_made < wanted  # the budget refused retries
        assert allowed - 1 <= retries_made <= allowed
        assert budget.balance < 1
    print(
        f"\n[budget] {reads} reads: {retries_made} retries of {wanted} wanted "
        f"(allowed {allowed:.1f})"
    )


def test_slow_backend_gets_few_health_routed_reads(healthy_cloud) -> None:
    """A backend 150 ms slower than the others gets few reads once the router has learned.

    The latency is added on the injectable clock, which also times every attempt: the
    router sees exactly 150 ms more on the slow backend whatever the load on this
    machine, so which backend serves each read depends only on the seeded draws.
    """
    clock = ManualClock()
    counted = [
        FaultyBackend(
            from_url(healthy_cloud("gcs", "slow"), timeout_seconds=5),
            latency_seconds=0.150,
            operations={"get"},
            sleep=clock.sleep,
        )
    ]
    counted += [
        FaultyBackend(from_url(healthy_cloud(k, k), timeout_seconds=5)) for k in ("s3", "azure")
    ]
    settings = Settings.from_urls([b.name for b in counted], read_policy="health")
    with Storage(counted, settings=settings, clock=clock, rng=random.Random(3)) as store:
        for i in range(10):
            store.put(f"lat/{i}", b"x" * 100)
        assert store.flush()
        for i in range(20):  # warm-up: the router learns the latencies
            store.get(f"lat/{i % 10}")
        for backend in counted:
            backend.reset_counters()
        reads = 200
        for i in range(reads):
            assert store.get(f"lat/{i % 10}") == b"x" * 100
        served = {b.name: b.calls.get("get", 0) for b in counted}
        health = store.health()
    print(
        f"\n[routing] reads served: {served}; "
        f"latency_ms={ {n: round(h.latency_ms, 1) for n, h in health.items()} }"
    )
    assert sum(served.values()) == reads  # no read failed over or was retried
    assert served["slow"] <= 0.10 * reads
    assert served["slow"] < min(served["s3"], served["azure"])
    assert health["slow"].latency_ms > max(health["s3"].latency_ms, health["azure"].latency_ms)
    assert health["slow"].score < min(health["s3"].score, health["azure"].score)


STALLED = ("hedge/2", "hedge/5", "hedge/8")


def test_hedged_reads_cut_the_tail_of_a_stalling_backend(healthy_cloud) -> None:
    """Reads of three keys stall on the first backend until the test lifts the stall.

    The stall is scripted, not drawn from a latency distribution: whether a read met it
    does not depend on how busy the machine is. A hedged read of a stalled key must come
    back while its first attempt is still stalled (the hedge cut the tail); the same read
    without hedging waits for the stall to give up (the tail is real).
    """
    urls = [healthy_cloud(kind, kind) for kind in ("s3", "azure", "gcs")]
    keys = [f"hedge/{i}" for i in range(10)]

    def store(policy: str, *, stall_seconds: float) -> tuple[Storage, FaultyBackend, EventRecorder]:
        backends: list[Backend] = [from_url(url, timeout_seconds=5) for url in urls]
        stalling = FaultyBackend(
            backends[0], hang=True, hang_seconds=stall_seconds, operations={"get"}, keys=STALLED
        )
        recorder = EventRecorder()
        settings = Settings.from_urls(urls, read_policy=policy, hedge_delay_ms=50)
        built = Storage([stalling, *backends[1:]], settings=settings, hooks=[recorder])
        # The stalling backend stays first, so every read meets it (with health routing
        # it would simply be avoided and hedging would have nothing to do).
        built._dispatch.router = OrderedRouter()
        return built, stalling, recorder

    # The hedged store's stall outlasts the test (it is lifted at the end): a read that
    # returns while the stall holds can only have been answered by the hedge.
    hedged, stalling, recorder = store("hedged", stall_seconds=300)
    with hedged:
        for key in keys:
            hedged.put(key, key.encode() * 100)
        assert hedged.flush()
        for round_number in range(2):
            for key in keys:
                assert hedged.get(key) == key.encode() * 100
            # Every read of a stalled key is still stuck on s3: none was lifted or
            # timed out, so each of those reads was served by a hedge.
            assert stalling.hanging == len(STALLED) * (round_number + 1)
        assert stalling.faults.get("timeout", 0) == 0
        hedges = recorder.of(HedgeFired, "s3")
        assert {e.key for e in hedges} >= set(STALLED)  # type: ignore[attr-defined]
        assert all(e.hedge in {"azure", "gcs"} for e in hedges)  # type: ignore[attr-defined]
        # The stalled reads failed over to nothing: they were cut, not failed.
        assert recorder.of(FailedOver, "s3") == []
        stalling.heal()  # the stuck attempts finish; their late answers are discarded

    # Without hedging, a read of a stalled key waits until the stall gives up.
    stall_seconds = 1.0
    ordered, stalling, recorder = store("ordered", stall_seconds=stall_seconds)
    with ordered:
        started = time.monotonic()
        assert ordered.get(STALLED[0]) == STALLED[0].encode() * 100
        waited = time.monotonic() - started
        assert stalling.faults.get("timeout") == 1
        assert recorder.of(HedgeFired) == []
        assert len(recorder.of(FailedOver, "s3")) == 1
    assert waited >= stall_seconds  # a lower bound: load can only add to it
    print(f"\n[hedging] unhedged read of a stalled key waited {waited:.2f} s; hedged: cut")


def test_corrupted_replica_is_served_from_another(healthy_cloud) -> None:
    urls = [healthy_cloud(kind, kind) for kind in ("s3", "azure", "gcs")]
    with Storage.from_urls(urls, read_policy="ordered") as store:
        info = store.put("precious", b"the real bytes")
        assert store.flush()
        s3 = store.backends["s3"]
        meta = dict(s3.head("precious").metadata or {})
        assert meta[META_SHA256] == info.checksum
        assert meta[META_VERSION] == info.version
        with Payload.from_bytes(b"the evil bytes") as payload:  # same size, same metadata
            s3.put("precious", payload, content_type="text/plain", metadata=meta)
        assert store.get("precious") == b"the real bytes"
        report = store.reconcile(verify_bytes=True, fix=True)
        assert report.corrupt["s3"] == ("precious",)
        assert report.fixed == 1
        assert s3.get("precious").data == b"the real bytes"
