"""A cloud that throttles, slows down, stalls or corrupts: measured on the real emulators."""

from __future__ import annotations

import random
import statistics
import time

import pytest

from failover import Storage
from failover.backends import Backend, from_url
from failover.backends.base import META_SHA256, META_VERSION
from failover.config import Settings
from failover.errors import ThrottledError
from failover.events import FailedOver, HedgeFired, RetryScheduled
from failover.payload import Payload
from failover.resilience import ManualClock, OrderedRouter, nearest_rank
from failover.testing import FaultyBackend

from .conftest import EventRecorder, ProxiedFactory

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


def test_slow_backend_gets_few_health_routed_reads(
    proxied_cloud: ProxiedFactory, healthy_cloud
) -> None:
    slow_url, proxy = proxied_cloud("gcs", "slow")  # type: ignore[arg-type]
    counted = [FaultyBackend(from_url(slow_url, timeout_seconds=5))]
    counted += [
        FaultyBackend(from_url(healthy_cloud(k, k), timeout_seconds=5)) for k in ("s3", "azure")
    ]
    settings = Settings.from_urls([b.name for b in counted], read_policy="health")
    with Storage(counted, settings=settings, rng=random.Random(3)) as store:
        for i in range(10):
            store.put(f"lat/{i}", b"x" * 100)
        assert store.flush()
        proxy.latency(0.150)
        for i in range(20):  # warm-up: the router learns the latencies
            store.get(f"lat/{i % 10}")
        for backend in counted:
            backend.reset_counters()
        reads = 200
        for i in range(reads):
            assert store.get(f"lat/{i % 10}") == b"x" * 100
        slow_share = counted[0].calls.get("get", 0) / reads
        health = store.health()
    print(
        f"\n[routing] slow backend served {slow_share:.1%} of {reads} reads; "
        f"latency_ms={ {n: round(h.latency_ms, 1) for n, h in health.items()} }"
    )
    assert slow_share <= 0.10
    # Its latency estimate stays the worst (the peak-EWMA decays between its few samples).
    assert health["slow"].latency_ms > max(health["s3"].latency_ms, health["azure"].latency_ms)
    assert health["slow"].score < min(health["s3"].score, health["azure"].score)


def _latencies(store: Storage, keys: list[str], reads: int) -> list[float]:
    out = []
    for i in range(reads):
        started = time.perf_counter()
        store.get(keys[i % len(keys)])
        out.append(time.perf_counter() - started)
    return out


def test_hedged_reads_cut_the_tail_of_a_stalling_backend(healthy_cloud) -> None:
    urls = [healthy_cloud(kind, kind) for kind in ("s3", "azure", "gcs")]
    keys = [f"hedge/{i}" for i in range(10)]
    reads = 150

    def store(policy: str, *, stall: bool, hedge_ms: float = 0) -> tuple[Storage, EventRecorder]:
        backends: list[Backend] = [from_url(url, timeout_seconds=5) for url in urls]
        if stall:  # same seed each time: the same reads stall in every run
            backends[0] = FaultyBackend(
                backends[0],
                seed=11,
                tail_probability=0.10,
                tail_latency_seconds=1.0,
                operations={"get"},
            )
        recorder = EventRecorder()
        settings = Settings.from_urls(urls, read_policy=policy, hedge_delay_ms=hedge_ms)
        built = Storage(backends, settings=settings, hooks=[recorder])
        # The stalling backend stays first, so every read meets its tail (with health
        # routing it would simply be avoided and hedging would have nothing to do).
        built._dispatch.router = OrderedRouter()
        return built, recorder

    healthy_store, _ = store("ordered", stall=False)
    with healthy_store:
        for key in keys:
            healthy_store.put(key, b"y" * 1000)
        assert healthy_store.flush()
        # Hedge after the healthy p95 ("The Tail at Scale"), calibrated under the load
        # of the measurement below (healthy reads interleaved with another store's
        # reads): measured alone, the p95 comes out lower, and more reads hedge.
        with store("ordered", stall=False)[0] as neighbour:
            calibration: list[float] = []
            for i in range(100):
                calibration += _latencies(healthy_store, [keys[i % len(keys)]], 1)
                _latencies(neighbour, [keys[i % len(keys)]], 1)
        hedge_ms = 1000 * (nearest_rank(calibration, 0.95) or 0.005)
        unhedged_store, _ = store("ordered", stall=True)
        hedged_store, recorder = store("hedged", stall=True, hedge_ms=hedge_ms)
        latencies: dict[str, list[float]] = {"healthy": [], "unhedged": [], "hedged": []}
        with unhedged_store, hedged_store:
            # Interleaved, so that all three see the same load on this machine.
            for i in range(reads):
                for name, subject in (
                    ("healthy", healthy_store),
                    ("unhedged", unhedged_store),
                    ("hedged", hedged_store),
                ):
                    latencies[name] += _latencies(subject, [keys[i % len(keys)]], 1)
    extra = len(recorder.of(HedgeFired)) / reads
    p99 = {name: nearest_rank(values, 0.99) or 0.0 for name, values in latencies.items()}
    print(
        f"\n[hedging] p50 healthy={statistics.median(latencies['healthy']) * 1000:.1f} ms; "
        f"hedge delay {hedge_ms:.1f} ms; p99 ms: "
        + ", ".join(f"{k}={v * 1000:.1f}" for k, v in p99.items())
        + f"; extra requests {extra:.1%}"
    )
    assert p99["unhedged"] >= 1.0  # the tail is real...
    assert p99["hedged"] < 3 * max(p99["healthy"], 0.010)  # ...and hedging cuts it
    assert 0.05 <= extra <= 0.25  # about the stalled 10 %, not every read


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
