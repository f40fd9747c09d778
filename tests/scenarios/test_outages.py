"""One cloud lost (blackholed, refusing, resetting) behind a real TCP fault proxy.

The dead backend is first in priority order (``read_policy="ordered"``) so every read
meets it until its breaker opens; the other two replicas are real emulators too.
"""

from __future__ import annotations

import time

import pytest

from failover import AllBackendsFailed, Storage
from failover.backends import from_url
from failover.config import Settings
from failover.errors import BackendSkipped, BackendTimeout
from failover.events import BreakerStateChanged, FailedOver
from failover.resilience import ManualClock
from failover.testing import FaultyBackend

from .conftest import EventRecorder, ProxiedFactory

pytestmark = [pytest.mark.integration, pytest.mark.scenario]

KEYS = [f"outage/{i}" for i in range(5)]
OTHERS = {"s3": ("azure", "gcs"), "azure": ("s3", "gcs"), "gcs": ("s3", "azure")}
FAIL_MAX = 3
TIMEOUT = 0.5
RESET = 1.0
# A hung call ends at the deadline, not at the per-attempt timeout: the timeout is so
# long that the bound below can only hold if the deadline ended the call, and the bound
# leaves the deadline 10 s of slack that no load on the test machine can eat.
DEADLINE = 3.0
HUNG_TIMEOUT = 60.0
DEADLINE_BOUND = DEADLINE + 10.0


@pytest.mark.parametrize("mode", ["blackhole", "refuse", "reset"])
@pytest.mark.parametrize("kind", ["s3", "azure", "gcs"])
def test_one_cloud_lost_then_healed(
    kind: str, mode: str, proxied_cloud: ProxiedFactory, healthy_cloud, recorder: EventRecorder
) -> None:
    dead_url, proxy = proxied_cloud(kind, "dead")  # type: ignore[arg-type]
    urls = [dead_url, *(healthy_cloud(other, other) for other in OTHERS[kind])]
    # The dead backend is wrapped only to count the calls that reach it.
    dead = FaultyBackend(from_url(dead_url, timeout_seconds=TIMEOUT))
    backends = [dead, *(from_url(url, timeout_seconds=TIMEOUT) for url in urls[1:])]
    settings = Settings.from_urls(
        urls,
        read_policy="ordered",
        timeout_seconds=TIMEOUT,
        deadline_seconds=10,
        retry_attempts=1,
        breaker_fail_max=FAIL_MAX,
        breaker_reset_seconds=RESET,
        repair_interval_seconds=0,
    )
    # Breakers and deadlines run on a manual clock: the breaker half-opens when the test
    # advances it, not when a slow run of reads on a busy machine happens to take RESET.
    clock = ManualClock()
    with Storage(backends, settings=settings, hooks=[recorder], clock=clock) as store:
        for key in KEYS:
            # Quorum writes return before the slowest replica; wait for all three so
            # that no write is still in flight to the dead backend when it dies.
            assert len(store.backends) == 3
            store.put(key, key.encode())
        assert store.flush()
        assert store.head(KEYS[0]).backend == "dead"

        getattr(proxy, mode)()
        dead.reset_counters()
        latencies: list[float] = []
        errors = 0
        reads_until_open = None
        for i in range(20):
            key = KEYS[i % len(KEYS)]
            started = time.monotonic()
            try:
                assert store.get(key) == key.encode()
            except Exception:  # every read must succeed: count, then fail below
                errors += 1
            latencies.append(time.monotonic() - started)
            if reads_until_open is None and store.health()["dead"].state == "open":
                reads_until_open = i + 1
        assert errors == 0
        # One attempt per read (retry_attempts=1): the breaker opens on the FAIL_MAX-th.
        assert reads_until_open == FAIL_MAX
        opened = recorder.of(BreakerStateChanged, "dead")
        assert [(e.old, e.new) for e in opened] == [("closed", "open")]  # type: ignore[attr-defined]
        assert len(recorder.of(FailedOver, "dead")) == FAIL_MAX
        # Once open, reads no longer go to the dead backend, so they cannot wait on it.
        assert dead.calls == {"get": FAIL_MAX}
        if mode == "blackhole":  # a lower bound: load can only add to it
            assert min(latencies[:FAIL_MAX]) >= TIMEOUT * 0.9  # those did wait a timeout

        # Writes still reach the quorum and skip the open breaker: no attempt reaches it.
        info = store.put("outage/during", b"written while down")
        assert store.flush()
        assert info.backend != "dead"
        assert dead.calls == {"get": FAIL_MAX}
        assert store.health()["dead"].pending_repairs == 1

        proxy.pass_through()
        assert store.health()["dead"].state == "open"  # still: no reset time has passed
        clock.advance(RESET)
        # The next read is the half-open trial; it reaches the healed backend and closes it.
        assert store.get(KEYS[0]) == KEYS[0].encode()
        assert store.health()["dead"].state == "closed"
        assert dead.calls["get"] == FAIL_MAX + 1
        transitions = [(e.old, e.new) for e in recorder.of(BreakerStateChanged, "dead")]  # type: ignore[attr-defined]
        assert transitions[-2:] == [("open", "half-open"), ("half-open", "closed")]
        assert store.head(KEYS[1]).backend == "dead"  # takes traffic again


def test_deadline_bounds_a_call_when_every_backend_hangs(proxied_cloud: ProxiedFactory) -> None:
    pairs = [proxied_cloud(kind, kind) for kind in ("s3", "azure", "gcs")]  # type: ignore[arg-type]
    with Storage.from_urls(
        [url for url, _ in pairs],
        timeout_seconds=HUNG_TIMEOUT,
        deadline_seconds=DEADLINE,
        read_policy="ordered",
    ) as store:
        store.put("k", b"v")
        # Every replica holds "k" before the outage (no pending repair reorders the read).
        assert store.flush()
        for _, proxy in pairs:
            proxy.blackhole()
        started = time.monotonic()
        with pytest.raises(AllBackendsFailed) as info:
            store.get("k")
        elapsed = time.monotonic() - started
    assert DEADLINE <= elapsed < DEADLINE_BOUND
    assert set(info.value.errors) == {"s3", "azure", "gcs"}
    assert isinstance(info.value.errors["s3"], BackendTimeout)
    for name in ("azure", "gcs"):
        assert isinstance(info.value.errors[name], BackendSkipped)
        assert "deadline" in str(info.value.errors[name])


def test_hedged_deadline_tries_every_backend_before_giving_up(
    proxied_cloud: ProxiedFactory,
) -> None:
    pairs = [proxied_cloud(kind, kind) for kind in ("s3", "azure", "gcs")]  # type: ignore[arg-type]
    with Storage.from_urls(
        [url for url, _ in pairs],
        timeout_seconds=HUNG_TIMEOUT,
        deadline_seconds=DEADLINE,
        read_policy="hedged",
        hedge_delay_ms=100,
    ) as store:
        store.put("k", b"v")
        # Every replica holds "k" before the outage (no pending repair reorders the read).
        assert store.flush()
        for _, proxy in pairs:
            proxy.blackhole()
        started = time.monotonic()
        with pytest.raises(AllBackendsFailed) as info:
            store.get("k")
        elapsed = time.monotonic() - started
    assert DEADLINE <= elapsed < DEADLINE_BOUND
    assert all(isinstance(e, BackendTimeout) for e in info.value.errors.values()), info.value.errors
