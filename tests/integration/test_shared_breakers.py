"""Shared breakers against a real redis-server started by the test session.

Two instances (each with its own journal and clients) over the same backends: one
instance's open breaker is seen by the other; Redis blackholed, refused or behind a
wrong password never fails a call nor holds it past its deadline; the password never
shows.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
import redis

from failover import Invoker, Settings, Storage
from failover.backends import from_url
from failover.drill import MeteredBackend, run_drill
from failover.errors import BackendUnavailable
from failover.events import (
    BreakerStateChanged,
    BreakerStorageRecovered,
    BreakerStorageUnavailable,
    Event,
)
from failover.invoke import CallableTarget
from failover.invoke.base import InvocationRequest
from failover.testing import FaultProxy, FaultyBackend
from failover.testing.emulators import EmulatorProcess, redis_url, start_redis
from failover.testing.emulators._process import free_port

pytestmark = pytest.mark.integration

NAMES = ("aws", "azure", "gcp")
PASSWORD = "hunter2-secret"
#: Brisk call timeouts: the Redis client's timeout is then min(0.25, 1/10, 4/20) = 0.1 s.
TIMEOUTS = {"timeout_seconds": 1.0, "deadline_seconds": 4.0}
#: Where Redis must answer (sharing is the point): the client's timeout is then the
#: default 0.25 s, so that a loaded machine does not pass for a Redis outage.
ROOMY = {"timeout_seconds": 5.0, "deadline_seconds": 20.0}


class Events:
    """A thread-safe event hook that keeps everything."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[Event] = []

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._events.append(event)

    def of(self, kind: type[Event]) -> list[Event]:
        with self._lock:
            return [e for e in self._events if isinstance(e, kind)]


class Instance:
    """One application instance: its own clients, journal and hooks."""

    def __init__(self, store: Storage, backends: dict[str, FaultyBackend], events: Events) -> None:
        self.store = store
        self.backends = backends
        self.events = events

    def state(self, name: str) -> str:
        return self.store.health()[name].state

    def calls(self, name: str) -> int:
        return sum(self.backends[name].calls.values())


@pytest.fixture
def memory_urls() -> list[str]:
    run = uuid.uuid4().hex[:8]
    return [f"memory://shared-{run}-{name}?name={name}" for name in NAMES]


@pytest.fixture
def connect(memory_urls: list[str], tmp_path: Path) -> Iterator[Callable[..., Instance]]:
    """Build instances over the same three in-process backends."""
    made: list[Storage] = []

    def make(
        breaker_storage: str, *, hooks: Sequence[Callable[[Event], object]] = (), **options: object
    ) -> Instance:
        events = Events()
        backends = {
            name: FaultyBackend(MeteredBackend(from_url(url)))
            for name, url in zip(NAMES, memory_urls, strict=True)
        }
        settings = Settings.from_urls(
            list(backends),
            breaker_storage=breaker_storage,
            breaker_fail_max=2,
            breaker_reset_seconds=30,
            retry_attempts=1,
            repair_interval_seconds=0,
            journal=str(tmp_path / f"journal-{len(made)}.sqlite"),
            **{**ROOMY, **options},
        )
        store = Storage(list(backends.values()), settings=settings, hooks=[events, *hooks])
        made.append(store)
        return Instance(store, backends, events)

    yield make
    for store in made:
        store.close()


def _namespace() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def _trip(instance: Instance, name: str, *, writes: int = 5) -> None:
    """Fail ``name`` for this instance and write until its breaker opens."""
    instance.backends[name].set(error_rate=1.0, error=BackendUnavailable)
    for i in range(writes):
        if instance.state(name) == "open":
            return
        instance.store.put(f"trip/{name}/{i}", b"x")  # never fails: 2 of 3 acknowledge
    assert instance.state(name) == "open"


def _timed(call: Callable[[], object]) -> float:
    began = time.monotonic()
    call()
    return time.monotonic() - began


def test_one_instances_open_breaker_stops_the_others(
    redis_server: EmulatorProcess, connect: Callable[..., Instance]
) -> None:
    url = redis_url(redis_server, namespace=_namespace())
    a, b = connect(url), connect(url)
    seeds = {f"seed/{i}": f"data {i}".encode() for i in range(6)}
    for key, data in seeds.items():
        b.store.put(key, data)
    b.store.flush()

    _trip(a, "aws")

    assert b.state("aws") == "open"  # B has not met a single failure of aws
    assert b.events.of(BreakerStateChanged) == [BreakerStateChanged("aws", "closed", "open")]
    before = b.calls("aws")
    for i, (key, data) in enumerate(seeds.items()):
        assert b.store.get(key) == data
        b.store.put(f"b/{i}", data)
    assert b.calls("aws") == before  # B did not call aws at all
    assert b.state("azure") == b.state("gcp") == "closed"
    assert a.events.of(BreakerStorageUnavailable) == b.events.of(BreakerStorageUnavailable) == []


def test_breakers_are_per_namespace(
    redis_server: EmulatorProcess, connect: Callable[..., Instance]
) -> None:
    a = connect(redis_url(redis_server, namespace=_namespace()))
    other_application = connect(redis_url(redis_server, namespace=_namespace()))
    _trip(a, "aws")
    assert other_application.state("aws") == "closed"


def test_redis_blackholed_never_fails_nor_holds_a_call(
    redis_server: EmulatorProcess, connect: Callable[..., Instance]
) -> None:
    with FaultProxy("127.0.0.1", redis_server.port) as proxy:
        url = redis_url(redis_server, port=proxy.port, namespace=_namespace(), retry_seconds=0.5)
        a, b = connect(url, **TIMEOUTS), connect(url, **TIMEOUTS)
        a.store.put("k", b"v")
        proxy.blackhole()

        # Every call works, each within its deadline (and far below it: Redis costs at
        # most a couple of 0.1 s client timeouts when it first fails, and per probe).
        deadline = a.store.settings.deadline_seconds
        durations: list[float] = []
        for i in range(15):
            for n, instance in enumerate((a, b)):
                key = f"x/{n}/{i}"  # each instance its own keys: no write races the other's
                durations.append(_timed(lambda s=instance.store, k=key: s.put(k, b"d")))
                durations.append(_timed(lambda s=instance.store: s.get("k")))
        assert max(durations) < deadline
        for instance in (a, b):
            assert len(instance.events.of(BreakerStorageUnavailable)) == 1  # once, not per call
            (event,) = instance.events.of(BreakerStorageUnavailable)
            assert isinstance(event, BreakerStorageUnavailable)
            assert "Timeout" in event.error

        # Breakers keep working, locally: A's opens, B (cut off from Redis) cannot know.
        _trip(a, "aws")
        assert b.state("aws") == "closed"

        proxy.pass_through()
        for instance in (a, b):
            _until(
                lambda i=instance: bool(i.events.of(BreakerStorageRecovered)),
                lambda i=instance: i.store.get("k"),
                timeout_seconds=10,
            )
        # Shared again: what A opens now, B sees.
        a.backends["aws"].heal()
        _trip(a, "azure")
        assert b.state("azure") == "open"


def test_a_redis_dripping_its_answers_is_left_alone(
    redis_server: EmulatorProcess, connect: Callable[..., Instance]
) -> None:
    with FaultProxy("127.0.0.1", redis_server.port) as proxy:
        url = redis_url(redis_server, port=proxy.port, namespace=_namespace(), retry_seconds=60)
        a = connect(url, **TIMEOUTS)
        # A byte every 0.05 s: no single read waits the 0.25 s client timeout, yet each
        # answer takes many times that. After the first one, calls leave Redis alone.
        proxy.slow_drip(chunk_bytes=1, interval_seconds=0.05)
        first = _timed(lambda: a.store.put("d/0", b"d"))
        assert first < a.store.settings.deadline_seconds
        sent = proxy.stats.bytes_to_upstream
        durations = [_timed(lambda i=i: a.store.put(f"d/{i}", b"d")) for i in range(1, 10)]
        assert max(durations) < a.store.settings.deadline_seconds
        assert proxy.stats.bytes_to_upstream == sent  # local breakers: no Redis request
        (event,) = a.events.of(BreakerStorageUnavailable)
        assert isinstance(event, BreakerStorageUnavailable)
        assert "more than the 0.25 s timeout" in event.error or "Timeout" in event.error


def test_redis_refused_from_the_start(
    connect: Callable[..., Instance], caplog: pytest.LogCaptureFixture
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0?namespace={_namespace()}"  # nobody listens
    with caplog.at_level(logging.INFO, logger="failover"):
        from failover.events import LoggingHook

        a = connect(url, hooks=[LoggingHook()], **TIMEOUTS)
        a.store.put("k", b"v")
        assert a.store.get("k") == b"v"
        _trip(a, "gcp")  # local breakers
    (event,) = a.events.of(BreakerStorageUnavailable)
    assert isinstance(event, BreakerStorageUnavailable)
    assert "ConnectionError" in event.error
    warnings = [r for r in caplog.records if "breaker storage" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "using local breakers" in warnings[0].getMessage()


def test_redis_blackholed_from_the_start_costs_one_client_timeout(
    connect: Callable[..., Instance],
) -> None:
    with FaultProxy("127.0.0.1", free_port()) as proxy:
        proxy.blackhole()
        url = f"redis://127.0.0.1:{proxy.port}/0?namespace={_namespace()}&retry_seconds=60"
        began = time.monotonic()
        a = connect(url, **TIMEOUTS)
        a.store.put("k", b"v")
        assert a.store.get("k") == b"v"
        # Building and two calls, with Redis silent: the first access waited for the
        # 0.1 s client timeout, every other one went straight to the local breakers.
        assert time.monotonic() - began < TIMEOUTS["deadline_seconds"]
        assert len(a.events.of(BreakerStorageUnavailable)) == 1


def test_the_password_never_shows(
    connect: Callable[..., Instance], caplog: pytest.LogCaptureFixture
) -> None:
    from failover.events import LoggingHook

    server = start_redis(password=PASSWORD)
    try:
        good = redis_url(server, password=PASSWORD, namespace=_namespace())
        a, b = connect(good), connect(good)
        _trip(a, "aws")
        assert b.state("aws") == "open"  # authenticated and shared

        wrong = redis_url(server, password="wrong-" + PASSWORD, namespace=_namespace())
        with caplog.at_level(logging.DEBUG):
            c = connect(wrong, hooks=[LoggingHook()])
            c.store.put("k", b"v")
            assert c.store.get("k") == b"v"
        (event,) = c.events.of(BreakerStorageUnavailable)
        assert isinstance(event, BreakerStorageUnavailable)
        assert "Authentication" in event.error or "WRONGPASS" in event.error
        shown = [
            caplog.text,
            repr(event),
            str(event.to_dict()),
            repr(c.store.settings),
            repr(a.store.settings),
            repr(c.store),
            str(c.store.settings.breaker_storage),
        ]
        for text in shown:
            assert "secret" not in text, text
    finally:
        server.stop()


def test_invokers_share_breakers_too(redis_server: EmulatorProcess) -> None:
    url = redis_url(redis_server, namespace=_namespace())

    def down(_request: InvocationRequest) -> bytes:
        raise ConnectionError("refused")

    def up(_request: InvocationRequest) -> bytes:
        return b"ok"

    options = {
        "breaker_storage": url,
        "breaker_fail_max": 2,
        "retry_attempts": 1,
        "read_policy": "ordered",  # aws first, every time
        **ROOMY,
    }
    a = Invoker([CallableTarget("aws", down), CallableTarget("gcp", up)], **options)
    b_calls: list[str] = []

    def counted(_request: InvocationRequest) -> bytes:
        b_calls.append("aws")
        return b"ok"

    b = Invoker([CallableTarget("aws", counted), CallableTarget("gcp", up)], **options)
    with a, b:
        for _ in range(4):
            assert a.invoke({"n": 1}).payload == b"ok"
            if a.health()["aws"].state == "open":
                break
        assert a.health()["aws"].state == "open"
        assert b.health()["aws"].state == "open"
        assert b.invoke({"n": 2}).payload == b"ok"
        assert b_calls == []


def test_the_drill_shows_one_instance_seeing_anothers_breaker(
    redis_server: EmulatorProcess, memory_urls: list[str]
) -> None:
    namespace = _namespace()
    url = redis_url(redis_server, namespace=namespace)
    settings = Settings.from_urls(
        memory_urls,
        breaker_storage=url,
        breaker_fail_max=2,
        breaker_reset_seconds=1,
        retry_attempts=1,
        **ROOMY,
    )
    lines: list[str] = []
    report = run_drill(
        settings, targets=["aws"], objects=3, outage="error", on_progress=lines.append
    )
    assert report.passed, (report, lines)
    (shared,) = report.shared
    assert shared.summary.startswith("shared breaker: B saw aws open after A's failures: yes")
    assert (shared.opened, shared.seen, shared.b_calls, shared.errors) == (True, True, 0, 0)
    assert f"namespace={namespace}.drill-" in shared.storage
    client = redis.Redis(host=redis_server.host, port=redis_server.port)
    try:
        # The drill's own breakers are gone, and its outages never touched the
        # application's namespace.
        assert client.keys(f"{namespace}*") == []
    finally:
        client.close()
    assert report.to_dict()["shared"][0]["passed"] is True


def _until(
    condition: Callable[[], bool], step: Callable[[], object], *, timeout_seconds: float
) -> None:
    """Run ``step`` until ``condition`` holds, for at most ``timeout_seconds``."""
    give_up = time.monotonic() + timeout_seconds
    while not condition():
        assert time.monotonic() < give_up, "condition not reached in time"
        step()
        time.sleep(0.05)
