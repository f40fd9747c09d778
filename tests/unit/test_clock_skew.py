"""Versions resist bad clocks: bounded skew, no poisoning, no silent lost writes."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from failover import Storage, Superseded
from failover.backends.base import META_VERSION
from failover.backends.memory import MemoryBackend
from failover.events import ClockSkewDetected, Event
from failover.payload import Payload
from failover.replication.version import HybridClock, parse_version

from ..conftest import deleted_on


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@pytest.fixture
def urls() -> Iterator[list[str]]:
    stores = [f"skew-{uuid.uuid4().hex[:8]}-{n}" for n in "abc"]
    yield [f"memory://{s}" for s in stores]
    for store in stores:
        MemoryBackend.forget(store)


def _writer(urls: list[str], events: list[Event] | None = None, **options: object) -> Storage:
    hooks = [events.append] if events is not None else None
    return Storage.from_urls(
        urls,
        journal=":memory:",
        repair_interval_seconds=0,
        write_policy="all",
        hooks=hooks,
        **options,
    )


def _versions(store: Storage, key: str) -> set[str]:
    return {(b.head(key).metadata or {}).get(META_VERSION, "") for b in store.backends.values()}


def test_a_writer_with_a_fast_clock_does_not_swallow_later_writes(urls: list[str]) -> None:
    events: list[Event] = []
    fast, honest = _writer(urls), _writer(urls, events, max_clock_skew_seconds=30)
    with fast, honest:
        fast._clock._wall_ms = lambda: _now_ms() + 60_000  # this host's clock: 60 s fast
        fast.put("cfg", b"old value")
        info = honest.put("cfg", b"NEW value")  # later in real time
        assert honest.get("cfg") == b"NEW value"
        assert _versions(honest, "cfg") == {info.version}  # stored on every replica
        skews = [e for e in events if isinstance(e, ClockSkewDetected)]
        assert len(skews) == 3
        assert all(55 <= e.ahead_seconds <= 61 for e in skews)  # type: ignore[attr-defined]
        # The honest writer did not adopt the future stamp: its next stamp is its own time.
        stamp = parse_version(honest.put("other", b"x").version)
        assert stamp is not None
        assert stamp[0] <= _now_ms() + 1000


def test_one_replica_with_a_far_future_version_poisons_nothing(urls: list[str]) -> None:
    with _writer(urls) as store:
        store.put("k", b"v1")
        first = next(iter(store.backends.values()))
        meta = dict(first.head("k").metadata or {})
        meta[META_VERSION] = "9999999999999990.000000.bogus"  # corrupted metadata
        with Payload.from_bytes(b"v1") as payload:
            first.put("k", payload, content_type="text/plain", metadata=meta)
        info = store.put("k", b"v2")
        assert store.get("k") == b"v2"
        assert _versions(store, "k") == {info.version}
        stamp = parse_version(store.put("other", b"x").version)
        assert stamp is not None
        assert stamp[0] <= _now_ms() + 1000


def test_a_delete_removes_a_version_stamped_too_far_ahead(urls: list[str]) -> None:
    fast, honest = _writer(urls), _writer(urls)
    with fast, honest:
        fast._clock._wall_ms = lambda: _now_ms() + 3_600_000  # an hour fast
        fast.put("k", b"from the future")
        honest.delete("k")
        assert all(deleted_on(b, "k") for b in honest.backends.values())
        assert not honest.exists("k")


def test_a_write_that_loses_to_a_newer_version_is_told_so(urls: list[str]) -> None:
    slow, current = _writer(urls), _writer(urls)
    with slow, current:
        slow._clock._wall_ms = lambda: _now_ms() - 10_000  # 10 s behind: within any skew
        newest = current.put("k", b"newest")
        with pytest.raises(Superseded) as info:
            slow.put("k", b"older write")
        assert info.value.current == newest.version
        assert info.value.version < newest.version
        assert current.get("k") == b"newest"
        assert _versions(current, "k") == {newest.version}


def test_the_clock_refuses_stamps_beyond_the_skew_and_never_overflows() -> None:
    wall = [1_700_000_000_000]
    clock = HybridClock(writer_id="w", wall_ms=lambda: wall[0], max_skew_ms=30_000)
    assert clock.observe(f"{wall[0] + 29_000:016d}.000000.x") is True
    assert clock.observe(f"{wall[0] + 31_000:016d}.000000.x") is False
    assert clock.trusts(f"{wall[0] + 30_000:016d}.999999.zzzz")
    assert not clock.trusts(f"{wall[0] + 30_001:016d}.000000.a")
    stamp = parse_version(clock.now())
    assert stamp == (wall[0] + 29_000, 1)  # moved past the trusted stamp only
    # At the end of the 16-digit field the clock refuses rather than widen the stamp
    # (a wider stamp would sort before every other).
    edge = HybridClock(writer_id="w", wall_ms=lambda: 10**16 - 1)
    assert edge.observe(f"{10**16 - 1}.999999.x")  # the last stamp there is
    with pytest.raises(OverflowError):
        edge.now()


def test_reconcile_replaces_a_far_future_version_instead_of_spreading_it(
    urls: list[str],
) -> None:
    with _writer(urls) as store:
        info = store.put("k", b"v1")
        first_name, first = next(iter(store.backends.items()))
        meta = dict(first.head("k").metadata or {})
        meta[META_VERSION] = "9999999999999990.000000.bogus"
        with Payload.from_bytes(b"v1") as payload:
            first.put("k", payload, content_type="text/plain", metadata=meta)
        report = store.reconcile(fix=True)
        assert report.stale[first_name] == ("k",)
        assert report.fixed == 1
        assert _versions(store, "k") == {info.version}
        assert store.reconcile().consistent
