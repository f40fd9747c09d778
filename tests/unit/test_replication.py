"""Journal, last-writer-wins writes, repair, read repair and tombstones (memory replicas)."""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable

import pytest

from failover import NotFoundError, Storage
from failover.backends import MemoryBackend
from failover.backends.base import META_SHA256, META_VERSION
from failover.config import Settings
from failover.payload import Payload
from failover.replication.journal import RepairJournal
from failover.replication.markers import is_marker, write_marker
from failover.replication.repair import InFlight, Repairer
from failover.replication.writer import RecentKeys, write_if_newer
from failover.testing import FaultyBackend

from ..conftest import deleted_on
from .test_storage import down, trio


def wait_until(condition: Callable[[], bool], *, timeout_seconds: float = 30.0) -> bool:
    """Poll ``condition`` until it holds or the (generous) time runs out."""
    give_up = time.monotonic() + timeout_seconds
    while not condition():
        if time.monotonic() > give_up:
            return False
        threading.Event().wait(0.005)
    return True


def replica_state(backend: FaultyBackend, key: str) -> tuple[bytes, str, str]:
    fetched = backend.inner.get(key)
    meta = fetched.info.metadata or {}
    return fetched.data, meta[META_VERSION], meta[META_SHA256]


# -- journal ---------------------------------------------------------------------------


def test_journal_file_is_private_and_in_wal_mode(tmp_path) -> None:
    path = tmp_path / "state" / "journal.sqlite"
    journal = RepairJournal(str(path))
    journal.record(["a", "b"], "k", "v1", "put")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    mode = journal._conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    journal.close()


def test_journal_keeps_only_the_newest_version_per_replica(tmp_path) -> None:
    journal = RepairJournal(str(tmp_path / "j.sqlite"))
    journal.record(["a"], "k", "v2", "put")
    journal.record(["a"], "k", "v1", "put")  # older: ignored
    journal.record(["a"], "k", "v3", "delete")  # newer tombstone replaces it
    (action,) = journal.pending()
    assert (action.version, action.op) == ("v3", "delete")
    journal.complete("a", "k", "v2")  # an older completion must not clear a newer row
    assert len(journal.pending()) == 1
    journal.complete("a", "k", "v3")
    assert journal.pending() == []


def test_journal_is_shared_between_connections(tmp_path) -> None:
    path = str(tmp_path / "j.sqlite")
    first, second = RepairJournal(path), RepairJournal(path)
    first.record(["a", "b"], "k", "v1", "put")
    assert {a.backend for a in second.pending()} == {"a", "b"}
    second.complete("a", "k", "v1")
    assert [a.backend for a in first.pending()] == ["b"]
    assert first.counts() == {"b": 1}


def test_unwritable_journal_is_a_config_error(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    from failover.errors import ConfigError

    with pytest.raises(ConfigError, match="FAILOVER_JOURNAL"):
        RepairJournal(str(blocker / "journal.sqlite"))


# -- last writer wins --------------------------------------------------------------------


def _payload(data: bytes) -> Payload:
    return Payload.from_bytes(data)


def test_an_older_version_never_replaces_a_newer_one() -> None:
    backend = MemoryBackend("m")
    with _payload(b"new") as p:
        write_if_newer(backend, "k", p, content_type="x", metadata={META_VERSION: "2"}, version="2")
    with _payload(b"old") as p:
        outcome = write_if_newer(
            backend, "k", p, content_type="x", metadata={META_VERSION: "1"}, version="1"
        )
    assert outcome.superseded
    assert backend.get("k").data == b"new"
    with _payload(b"newer") as p:
        outcome = write_if_newer(
            backend, "k", p, content_type="x", metadata={META_VERSION: "3"}, version="3"
        )
    assert not outcome.superseded
    assert backend.get("k").data == b"newer"


def test_an_overwrite_of_a_key_written_lately_looks_first() -> None:
    backends, store = trio()
    with store:
        store.put("k", b"v1")
        store.put("fresh", b"x")
        assert store.flush()
        for backend in backends:
            backend.reset_counters()
        store.put("k", b"v2")
        assert store.flush()
        # head + conditional put, not create-only put (refused) + head + put.
        calls = [(b.calls.get("head", 0), b.calls.get("put", 0)) for b in backends]
        assert calls == [(1, 1)] * 3
        assert all(b.inner.get("k").data == b"v2" for b in backends)


def test_a_stale_exists_hint_still_writes_the_key() -> None:
    backends, store = trio()
    with store:
        store.put("k", b"v1")
        assert store.flush()
        for backend in backends:  # gone behind the writer's back
            backend.inner.delete("k")
        store.put("k", b"v2")
        assert store.flush()
        assert all(b.inner.get("k").data == b"v2" for b in backends)


def test_a_deleted_key_is_put_over_its_marker_in_two_requests() -> None:
    backends, store = trio()
    with store:
        store.put("k", b"v1")
        store.delete("k")
        assert store.flush()
        for backend in backends:
            backend.reset_counters()
        store.put("k", b"v2")
        assert store.flush()
        # The delete left a marker: the writer knows, so it looks and replaces it.
        assert [b.calls for b in backends] == [{"head": 1, "put": 1}] * 3
        assert store.get("k") == b"v2"


def test_recent_keys_are_bounded_least_recent_first() -> None:
    keys = RecentKeys(capacity=2)
    keys.add("a")
    keys.add("b")
    keys.add("a")  # a is now the most recent
    keys.add("c")
    assert "a" in keys
    assert "c" in keys
    assert "b" not in keys
    assert len(keys) == 2
    keys.discard("a")
    assert "a" not in keys
    with pytest.raises(ValueError):
        RecentKeys(capacity=0)


def test_a_tombstone_never_deletes_a_newer_version() -> None:
    backend = MemoryBackend("m")
    with _payload(b"v5") as p:
        backend.put("k", p, content_type="x", metadata={META_VERSION: "5"})
    assert write_marker(backend, "k", version="4").superseded
    assert backend.get("k").data == b"v5"
    assert not write_marker(backend, "k", version="6").superseded
    assert is_marker(backend.head("k"))
    assert not write_marker(backend, "k", version="7").superseded
    assert backend.head("k").metadata[META_VERSION] == "7"  # type: ignore[index]


def test_concurrent_writers_converge_on_the_highest_version() -> None:
    replicas = [MemoryBackend(n) for n in "abc"]
    versions = [f"{i:04d}" for i in range(40)]

    def writer(mine: list[str]) -> None:
        for version in mine:
            for backend in replicas:
                with _payload(version.encode()) as p:
                    write_if_newer(
                        backend,
                        "k",
                        p,
                        content_type="x",
                        metadata={META_VERSION: version},
                        version=version,
                    )

    threads = [threading.Thread(target=writer, args=(versions[i::2][::-1],)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {b.get("k").data for b in replicas} == {versions[-1].encode()}


# -- repair through Storage ----------------------------------------------------------------


def test_missed_write_is_journaled_and_repaired() -> None:
    backends, store = trio()
    with store:
        down(backends[2])
        info = store.put("k", b"payload")
        assert store.flush()
        assert store.health()["c"].pending_repairs == 1
        report = store.repair()  # c still down (its breaker may be open): stays pending
        assert report.repaired == 0
        assert report.pending == 1
        backends[2].heal()
        store._dispatch.breakers.reset("c")
        report = store.repair()
        assert (report.repaired, report.pending, report.failed) == (1, 0, ())
        assert store.health()["c"].pending_repairs == 0
    states = {replica_state(b, "k") for b in backends}
    assert states == {(b"payload", info.version, info.checksum)}


def test_repair_copies_from_a_replica_not_from_memory() -> None:
    backends, store = trio()
    with store:
        down(backends[2])
        store.put("k", b"first")
        assert store.flush()
        backends[2].heal()
        store._dispatch.breakers.reset("c")
        # A newer write lands on a and b only (c down again), then c heals: repair must
        # bring c the newest version held by a replica.
        down(backends[2])
        newest = store.put("k", b"second")
        assert store.flush()
        backends[2].heal()
        store._dispatch.breakers.reset("c")
        assert store.repair().repaired == 1
    assert replica_state(backends[2], "k")[1] == newest.version
    assert backends[2].inner.get("k").data == b"second"


def test_delete_missed_by_a_replica_never_comes_back() -> None:
    backends, store = trio()
    with store:
        store.put("doomed", b"x")
        assert store.flush()  # a holds it before it goes down (quorum returns at 2)
        down(backends[0])
        store.delete("doomed")
        assert store.flush()  # a's failed attempts (with retries) are over
        backends[0].heal()
        store._dispatch.breakers.reset("a")
        # 'a' still holds the object, but the journal's tombstone hides it everywhere.
        assert backends[0].inner.get("doomed").data == b"x"
        assert not store.exists("doomed")
        with pytest.raises(NotFoundError):
            store.get("doomed")
        assert [i.key for i in store.list()] == []
        assert store.reconcile().stale["a"] == ("doomed",)
        assert store.repair().repaired == 1
    assert deleted_on(backends[0].inner, "doomed")


def test_replica_with_a_pending_put_is_read_last() -> None:
    backends, store = trio(read_policy="ordered")
    with store:
        store.put("k", b"old")
        assert store.flush()  # a holds "old" before it goes down (quorum returns at 2)
        down(backends[0])
        store.put("k", b"new")
        assert store.flush()
        backends[0].heal()
        store._dispatch.breakers.reset("a")
        # 'a' answers first in priority order but holds the old version: not trusted.
        assert backends[0].inner.get("k").data == b"old"
        assert store.get("k") == b"new"
        assert store.head("k").backend == "b"


def test_read_verifying_latest_version_schedules_read_repair() -> None:
    backends, store = trio(read_policy="ordered")
    with store:
        store.put("k", b"v1")
        assert store.flush()  # a holds v1 before its metadata is read
        old = dict(backends[0].inner.head("k").metadata or {})
        store.put("k", b"v2")
        assert store.flush()
        # Replica 'a' is restored from an old backup, outside failover.
        with Payload.from_bytes(b"v1") as payload:
            backends[0].inner.put("k", payload, content_type="text/plain", metadata=old)
        assert store.get("k") == b"v1"  # 'any' trusts the first replica
        assert store.get("k", consistency="latest") == b"v2"
        # 'a' is scheduled for read repair whether it answered within the majority or
        # after it (late heads finish on their own workers).
        assert store._dispatch.breakers.available("a")
        assert wait_until(lambda: store.health()["a"].pending_repairs == 1)
        assert store.repair().repaired == 1
        assert store.get("k") == b"v2"


def test_corrupt_replica_found_by_a_read_is_rewritten_by_repair() -> None:
    backends, store = trio(read_policy="ordered")
    with store:
        store.put("k", b"genuine")
        assert store.flush()
        meta = dict(backends[0].inner.head("k").metadata or {})
        with Payload.from_bytes(b"garbage") as payload:  # same size, same metadata
            backends[0].inner.put("k", payload, content_type="text/plain", metadata=meta)
        assert store.get("k") == b"genuine"
        assert store.health()["a"].pending_repairs == 1
        assert store.repair().repaired == 1
    assert backends[0].inner.get("k").data == b"genuine"


def test_repair_does_not_touch_a_backend_whose_breaker_is_open() -> None:
    backends, store = trio(breaker_fail_max=1)
    with store:
        down(backends[1])
        store.put("k", b"v")
        assert store.flush()
        assert store.health()["b"].state == "open"
        backends[1].reset_counters()
        report = store.repair()
        assert report.pending == 1
        assert sum(backends[1].calls.values()) == 0


def test_unacknowledged_write_that_landed_nowhere_is_dropped_after_grace() -> None:
    replicas = {n: MemoryBackend(n) for n in "abc"}
    journal = RepairJournal(":memory:")
    journal.record(list(replicas), "ghost", "0001", "put")
    settings = Settings.from_urls(list(replicas), repair_interval_seconds=0)
    with Storage(list(replicas.values()), settings=settings) as store:
        repairer = Repairer(
            backends=replicas,
            journal=journal,
            dispatcher=store._dispatch,
            in_flight=InFlight(),
            grace_seconds=3600,
        )
        assert repairer.run_once().pending == 3  # too young: its writer may be alive
        repairer = Repairer(
            backends=replicas,
            journal=journal,
            dispatcher=store._dispatch,
            in_flight=InFlight(),
            grace_seconds=0,
        )
        report = repairer.run_once()
    assert (report.dropped, report.repaired, report.pending) == (3, 0, 0)
    assert journal.pending() == []


def test_one_policy_acknowledges_first_and_replicates_in_background() -> None:
    backends, store = trio(write_policy="one")
    # Hung until healed below: long enough that no slowness makes them time out first.
    backends[1].set(hang=True, hang_seconds=120, operations={"put"})
    backends[2].set(hang=True, hang_seconds=120, operations={"put"})
    with store:
        info = store.put("k", b"fast ack")
        assert info.backend == "a"
        assert backends[1].wait_until_hanging(1)
        assert backends[2].wait_until_hanging(1)
        assert not _has(backends[1], "k")  # acknowledged before the others stored it
        backends[1].heal()
        backends[2].heal()
        # The slower replicas finish on their own workers.
        assert store.flush(timeout_seconds=10)
        assert all(b.inner.get("k").data == b"fast ack" for b in backends)
        assert store.health()["b"].pending_repairs == 0


def _has(backend: FaultyBackend, key: str) -> bool:
    try:
        backend.inner.head(key)
    except NotFoundError:
        return False
    return True


def test_background_worker_repairs_without_being_asked() -> None:
    backends, store = trio(repair_interval_seconds=0.02)
    with store:
        down(backends[2])
        store.put("k", b"v")
        assert store.flush()
        backends[2].heal()
        store._dispatch.breakers.reset("c")
        assert wait_until(lambda: store.health()["c"].pending_repairs == 0)
    assert backends[2].inner.get("k").data == b"v"
