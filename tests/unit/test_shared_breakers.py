"""Shared breakers over a fake Redis client: sharing, fallback, retry, recovery (no I/O).

The real server is in tests/integration/test_shared_breakers.py; here the client is a
dictionary that can be switched off, and time is a ManualClock.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
import redis.exceptions as redis_exceptions

from failover import ConfigError, Settings, Storage, shared_breakers
from failover.backends.memory import MemoryBackend
from failover.breaker_storage import BreakerStorageURL
from failover.errors import BackendUnavailable
from failover.events import BreakerStorageRecovered, BreakerStorageUnavailable, Event
from failover.resilience import BreakerRegistry, ManualClock
from failover.shared_breakers import SharedBreakers

PASSWORD = "hunter2-s3cret"
URL = BreakerStorageURL.parse(f"redis://:{PASSWORD}@cache:6379/0?namespace=t&retry_seconds=5")
DOWN = BackendUnavailable("down")


class FakeRedis:
    """The few commands pybreaker's CircuitRedisStorage sends, over a dict."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.calls = 0
        self.error: Exception | None = None
        #: Each command takes this long on ``clock`` (a slow Redis).
        self.delay_seconds = 0.0
        self.clock: ManualClock | None = None

    def _check(self) -> None:
        self.calls += 1
        if self.clock is not None:
            self.clock.advance(self.delay_seconds)
        if self.error is not None:
            raise self.error

    def get(self, key: str) -> bytes | None:
        self._check()
        return self.data.get(key)

    def set(self, key: str, value: object) -> bool:
        self._check()
        self.data[key] = str(value).encode()
        return True

    def setnx(self, key: str, value: object) -> bool:
        self._check()
        if key in self.data:
            return False
        self.data[key] = str(value).encode()
        return True

    def incr(self, key: str) -> int:
        self._check()
        value = int(self.data.get(key, b"0")) + 1
        self.data[key] = str(value).encode()
        return value

    def transaction(self, func: Callable[[Any], None], *watches: str) -> list[object]:
        self._check()
        func(_FakePipeline(self))
        return []

    def close(self) -> None:
        pass


class _FakePipeline:
    def __init__(self, redis: FakeRedis) -> None:
        self._redis = redis

    def get(self, key: str) -> bytes | None:
        return self._redis.data.get(key)

    def multi(self) -> None:
        pass

    def set(self, key: str, value: object) -> None:
        self._redis.data[key] = str(value).encode()


class Instance:
    """One process's view: a registry whose breakers are kept through SharedBreakers."""

    def __init__(
        self, redis: FakeRedis, clock: ManualClock, *, fail_max: int = 2, reset: float = 10.0
    ) -> None:
        self.events: list[Event] = []
        self.changes: list[tuple[str, str, str]] = []
        self.shared = SharedBreakers(
            URL, timeout_seconds=0.1, on_event=self.events.append, clock=clock, client=redis
        )
        self.breakers = BreakerRegistry(
            names=["aws", "gcp"],
            fail_max=fail_max,
            reset_timeout_seconds=reset,
            clock=clock,
            on_state_change=lambda n, o, s: self.changes.append((n, o, s)),
            storage_factory=lambda name: self.shared.storage(f"storage|{name}"),
        )

    def trip(self, name: str, times: int) -> None:
        for _ in range(times):
            assert self.breakers.allow(name)
            self.breakers.record_failure(name, DOWN)

    def kinds(self) -> list[str]:
        return [type(e).__name__ for e in self.events]


@pytest.fixture
def redis() -> FakeRedis:
    return FakeRedis()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def test_an_open_breaker_is_seen_by_every_instance(redis: FakeRedis, clock: ManualClock) -> None:
    a, b = Instance(redis, clock), Instance(redis, clock)
    a.trip("aws", 2)
    assert a.breakers.state("aws") == "open"
    assert b.breakers.state("aws") == "open"
    assert not b.breakers.allow("aws")
    assert b.breakers.retry_after("aws") > 5  # reset 10 s, opened_at kept in whole seconds
    assert b.changes == [("aws", "closed", "open")]  # B's own event for what it noticed
    assert b.breakers.state("gcp") == "closed"
    assert a.events == b.events == []  # Redis answered all along


def test_failures_count_across_instances(redis: FakeRedis, clock: ManualClock) -> None:
    a, b = Instance(redis, clock, fail_max=3), Instance(redis, clock, fail_max=3)
    a.trip("aws", 2)
    assert b.breakers.failure_count("aws") == 2
    b.trip("aws", 1)  # the third consecutive failure of the fleet opens it for all
    assert a.breakers.state("aws") == "open"


def test_the_half_open_trial_slot_is_per_process(redis: FakeRedis, clock: ManualClock) -> None:
    a, b = Instance(redis, clock), Instance(redis, clock)
    a.trip("aws", 2)
    clock.advance(12)  # past the reset timeout, whole-second stamps included
    assert a.breakers.allow("aws")  # A's trial: half-open for everyone
    assert not a.breakers.allow("aws")
    assert b.breakers.state("aws") == "half-open"
    assert b.breakers.allow("aws")  # B may send its own trial
    assert not b.breakers.allow("aws")
    a.breakers.record_success("aws")  # A's trial succeeded: closed for everyone
    assert b.breakers.state("aws") == "closed"
    assert b.breakers.allow("aws")


def test_redis_down_from_the_start_gives_local_breakers(
    redis: FakeRedis, clock: ManualClock
) -> None:
    redis.error = redis_exceptions.ConnectionError("Error 111 connecting. Connection refused.")
    a = Instance(redis, clock)  # builds: no error reaches the caller
    assert a.kinds() == ["BreakerStorageUnavailable"]
    event = a.events[0]
    assert isinstance(event, BreakerStorageUnavailable)
    assert event.backend == "redis://***@cache:6379/0?namespace=t"
    assert event.error == "ConnectionError: Error 111 connecting. Connection refused."
    assert event.retry_seconds == 5
    assert not a.shared.available
    calls = redis.calls
    a.trip("aws", 2)  # the local breaker works on its own
    assert a.breakers.state("aws") == "open"
    assert not a.breakers.allow("aws")
    for _ in range(50):
        assert a.breakers.allow("gcp")
        a.breakers.record_success("gcp")
    assert redis.calls == calls  # no Redis call until the retry delay has passed
    assert a.kinds() == ["BreakerStorageUnavailable"]  # once, not per call


def test_redis_is_tried_again_after_the_retry_delay(redis: FakeRedis, clock: ManualClock) -> None:
    redis.error = redis_exceptions.TimeoutError("Timeout reading from cache:6379")
    a = Instance(redis, clock)
    calls = redis.calls
    clock.advance(4.9)
    a.breakers.state("aws")
    assert redis.calls == calls
    clock.advance(0.2)
    a.breakers.state("aws")
    a.breakers.state("aws")
    assert redis.calls == calls + 1  # one probe; it failed; the next waits 5 s more
    assert a.kinds() == ["BreakerStorageUnavailable"]
    clock.advance(5.1)
    redis.error = None
    assert a.breakers.state("aws") == "closed"
    assert a.shared.available
    assert a.kinds() == ["BreakerStorageUnavailable", "BreakerStorageRecovered"]
    recovered = a.events[1]
    assert isinstance(recovered, BreakerStorageRecovered)
    assert recovered.down_seconds == pytest.approx(10.2)


def test_after_recovery_the_shared_state_is_used_again(
    redis: FakeRedis, clock: ManualClock
) -> None:
    a, b = Instance(redis, clock), Instance(redis, clock)
    redis.error = redis_exceptions.ConnectionError("refused")
    a.trip("aws", 2)  # A opens its local breaker; B, over the same Redis, cannot know
    assert a.breakers.state("aws") == "open"
    assert b.breakers.state("aws") == "closed"
    clock.advance(5.1)
    redis.error = None
    a.trip("gcp", 2)  # Redis is back: what opens now is shared again
    assert b.breakers.state("gcp") == "open"
    assert a.kinds() == ["BreakerStorageUnavailable", "BreakerStorageRecovered"]


def test_the_local_copy_keeps_the_last_shared_state(redis: FakeRedis, clock: ManualClock) -> None:
    a, b = Instance(redis, clock), Instance(redis, clock)
    a.trip("aws", 2)
    assert b.breakers.state("aws") == "open"
    redis.error = redis_exceptions.ConnectionError("refused")
    assert b.breakers.state("aws") == "open"  # Redis is gone; the breaker stays open
    assert not b.breakers.allow("aws")
    assert b.kinds() == ["BreakerStorageUnavailable"]


def test_an_answer_slower_than_the_timeout_counts_as_unavailable(
    redis: FakeRedis, clock: ManualClock
) -> None:
    a, b = Instance(redis, clock), Instance(redis, clock)
    a.trip("aws", 2)
    redis.clock, redis.delay_seconds = clock, 0.2  # answers, but in 0.2 s: timeout is 0.1
    assert b.breakers.state("aws") == "open"  # the slow answer is still used
    calls = redis.calls
    assert not b.breakers.allow("aws")
    assert redis.calls == calls  # then local breakers: no more waiting on Redis
    (event,) = b.events
    assert isinstance(event, BreakerStorageUnavailable)
    assert re.fullmatch(r"an answer took 0\.[2-9]0 s, more than the 0\.1 s timeout", event.error)


def test_a_state_that_is_not_one_counts_as_unavailable(
    redis: FakeRedis, clock: ManualClock
) -> None:
    a = Instance(redis, clock)
    key = next(k for k in redis.data if k.endswith(":pybreaker:state"))
    redis.data[key] = b"sideways"
    assert a.breakers.state("aws") in ("closed", "open", "half-open")
    assert a.kinds() == ["BreakerStorageUnavailable"]


def test_the_password_never_leaves(redis: FakeRedis, clock: ManualClock) -> None:
    redis.error = redis_exceptions.AuthenticationError(f"WRONGPASS for {PASSWORD}")
    a = Instance(redis, clock)
    (event,) = a.events
    assert isinstance(event, BreakerStorageUnavailable)
    assert PASSWORD not in repr(event)
    assert PASSWORD not in str(event.to_dict())
    assert "***" in event.error
    assert PASSWORD not in repr(a.shared)


def test_keys_are_per_identity_and_per_namespace(redis: FakeRedis, clock: ManualClock) -> None:
    shared = SharedBreakers(URL, timeout_seconds=0.1, clock=clock, client=redis)
    other = SharedBreakers(URL.with_namespace("u"), timeout_seconds=0.1, clock=clock, client=redis)
    assert shared.key_namespace("s3|e|b|") != shared.key_namespace("s3|e|c|")
    assert shared.key_namespace("s3|e|b|").startswith("t:breaker:")
    assert other.key_namespace("s3|e|b|").startswith("u:breaker:")


def test_closed_shared_breakers_use_local_state(redis: FakeRedis, clock: ManualClock) -> None:
    a = Instance(redis, clock)
    a.shared.close()
    calls = redis.calls
    a.trip("aws", 2)
    assert a.breakers.state("aws") == "open"
    assert redis.calls == calls


def test_without_the_redis_client_it_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(ConfigError, match=r"failover\[redis\]") as info:
        SharedBreakers(URL, timeout_seconds=0.1)
    assert PASSWORD not in str(info.value)


def test_a_storage_runs_on_local_breakers_when_redis_refuses(
    monkeypatch: pytest.MonkeyPatch, redis: FakeRedis
) -> None:
    redis.error = redis_exceptions.ConnectionError("refused")
    monkeypatch.setattr(shared_breakers, "_connect", lambda url, **_: (redis, (Exception,)))
    events: list[Event] = []
    backends = [MemoryBackend(f"m{i}") for i in range(3)]
    settings = Settings.from_urls(
        [b.name for b in backends],
        breaker_storage=f"redis://:{PASSWORD}@127.0.0.1:1/0",
        repair_interval_seconds=0,
    )
    with Storage(backends, settings=settings, hooks=[events.append]) as store:
        store.put("k", b"v")
        assert store.get("k") == b"v"
        assert {h.state for h in store.health().values()} == {"closed"}
    assert [type(e).__name__ for e in events] == ["BreakerStorageUnavailable"]


def test_importing_failover_loads_neither_redis_nor_pybreaker() -> None:
    code = (
        "import sys, failover; "
        "print(sorted(m for m in ('redis', 'pybreaker', 'failover.shared_breakers') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
