"""Deletes are facts the replicas keep: delete markers (memory replicas, many writers)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from failover import NotFoundError, Storage, Superseded
from failover.backends import Backend, from_url
from failover.backends.base import META_VERSION, StoredObject
from failover.config import Settings
from failover.errors import BackendUnavailable
from failover.replication.markers import META_DELETED, is_marker

from ..conftest import deleted_on
from .conftest import faulty, host


def raw(urls: Sequence[str], key: str) -> list[StoredObject | None]:
    """What each replica holds for ``key``, read around the library."""
    found: list[StoredObject | None] = []
    for url in urls:
        backend = from_url(url)
        try:
            found.append(backend.head(key))
        except NotFoundError:
            found.append(None)
    return found


def test_a_late_replica_write_does_not_bring_a_delete_back(urls: list[str], tmp_path: Path) -> None:
    # Defect 1: the quorum put is acknowledged while c's upload is still on the wire,
    # the delete is acknowledged everywhere, then c's upload lands.
    with host(urls, tmp_path / "j") as store:
        slow = faulty(store, "c")
        slow.set(hang=True, operations={"put"}, keys={"k"})
        store.put("k", b"v1")
        assert slow.wait_until_hanging()
        slow.set(hang=False)  # new calls pass; the stalled upload is still held
        store.delete("k")
        slow.heal()  # the old upload lands now, after the delete
        assert store.flush()
        assert not store.exists("k")
        with pytest.raises(NotFoundError):
            store.get("k")
        assert list(store.list()) == []
        assert store.repair().failed == ()
        report = store.reconcile(fix=True)
        assert report.consistent
        assert report.fixed == 0
    assert all(info is not None and is_marker(info) for info in raw(urls, "k"))


def test_a_delete_on_another_host_wins_over_a_slow_writer(urls: list[str], tmp_path: Path) -> None:
    writer, deleter = host(urls, tmp_path / "w"), host(urls, tmp_path / "d")
    with writer, deleter:
        slow = faulty(writer, "c")
        slow.set(hang=True, operations={"put"}, keys={"k"})
        writer.put("k", b"from the writer")
        assert slow.wait_until_hanging()
        deleter.delete("k")  # another host: knows nothing of the write in flight
        slow.heal()
        assert writer.flush()
        for store in (writer, deleter):
            assert not store.exists("k")
        # A third instance with an empty journal sees the delete in the replicas.
        with host(urls, tmp_path / "third") as third:
            assert not third.exists("k")
            assert third.reconcile(fix=True).consistent
            assert third.repair().repaired == 0
            assert not third.exists("k")


def test_a_put_that_loses_to_a_later_delete_is_told_so(urls: list[str], tmp_path: Path) -> None:
    writer, deleter = host(urls, tmp_path / "w"), host(urls, tmp_path / "d")
    with writer, deleter:
        deleter.delete("k")  # a delete stamped now, and a writer 10 s behind (in skew)
        writer._clock._wall_ms = lambda: time.time_ns() // 1_000_000 - 10_000
        with pytest.raises(Superseded):
            writer.put("k", b"too old")
        assert not deleter.exists("k")


def test_a_put_after_a_delete_replaces_the_marker(urls: list[str], tmp_path: Path) -> None:
    with host(urls, tmp_path / "j") as store:
        store.put("k", b"v1")
        store.delete("k")
        info = store.put("k", b"v2")
        assert store.flush()
        assert store.get("k") == b"v2"
        assert [i.key for i in store.list()] == ["k"]
        assert store.head("k").version == info.version
    assert all(i is not None and not is_marker(i) for i in raw(urls, "k"))


def test_markers_are_hidden_from_every_read(urls: list[str], tmp_path: Path) -> None:
    with host(urls, tmp_path / "j") as store:
        store.put("gone", b"x")
        store.put("kept", b"y")
        store.put("empty", b"")
        store.delete("gone")
        assert store.flush()
        for read in (store.get, store.head, store.open):
            with pytest.raises(NotFoundError):
                read("gone")
        assert not store.exists("gone")
        assert [i.key for i in store.list()] == ["empty", "kept"]
        assert store.get("empty") == b""
        with pytest.raises(NotFoundError):
            store.get("gone", consistency="latest")


class _ListsWithoutMetadata:
    """A backend whose listings carry no metadata, as S3's do."""

    def __init__(self, inner: Backend) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        for stored in self._inner.list(prefix):
            yield StoredObject(stored.key, stored.size, "", None, stored.last_modified, None)


def test_listings_without_metadata_still_hide_markers(urls: list[str], tmp_path: Path) -> None:
    with host(urls, tmp_path / "w") as writer:
        writer.put("gone", b"x")
        writer.put("empty", b"")
        writer.put("kept", b"y")
        writer.delete("gone")
        assert writer.flush()
    backends = [_ListsWithoutMetadata(from_url(u)) for u in urls]
    settings = Settings.from_urls(urls, journal=str(tmp_path / "r"), repair_interval_seconds=0)
    with Storage(backends, settings=settings) as reader:  # type: ignore[arg-type]
        assert [i.key for i in reader.list()] == ["empty", "kept"]


def _delete_missed_by_c(urls: list[str], journal: Path) -> None:
    """Write ``k`` everywhere, then delete it while c is down (c keeps its old copy)."""
    with host(urls, journal) as writer:
        writer.put("k", b"old")
        assert writer.flush()
        faulty(writer, "c").set(error_rate=1.0, error=BackendUnavailable)
        writer.delete("k")
        assert writer.flush()
    assert not deleted_on(from_url(urls[2]), "k")


def test_an_older_copy_than_a_marker_seen_is_refused(urls: list[str], tmp_path: Path) -> None:
    _delete_missed_by_c(urls, tmp_path / "w")
    # A reader on another host asks a, b (markers) and then c (the old copy): the
    # markers outrank it, the read says not found and schedules c's delete.
    with host(urls, tmp_path / "r", read_policy="ordered") as reader:
        with pytest.raises(NotFoundError):
            reader.get("k")
        assert reader.health()["c"].pending_repairs == 1
        assert reader.repair().repaired == 1
    assert all(deleted_on(from_url(u), "k") for u in urls)


def test_a_latest_read_never_serves_a_missed_delete(urls: list[str], tmp_path: Path) -> None:
    _delete_missed_by_c(urls, tmp_path / "w")
    c_first = [urls[2], urls[0], urls[1]]
    with host(c_first, tmp_path / "r", read_policy="ordered") as reader:
        # consistency="any" asks c first and gets its copy: a stale read, documented.
        # "latest" compares a majority's versions first: the marker is the newest.
        with pytest.raises(NotFoundError):
            reader.get("k", consistency="latest")
        assert reader.repair().repaired == 1
        with pytest.raises(NotFoundError):
            reader.get("k")
    assert all(deleted_on(from_url(u), "k") for u in urls)


def test_markers_are_removed_after_the_grace_period(urls: list[str], tmp_path: Path) -> None:
    with host(urls, tmp_path / "j", tombstone_grace_seconds=0) as store:
        store.put("k", b"v")
        store.delete("k")
        assert store.flush()
        assert store.repair().purged == 1
        assert store.repair().purged == 0  # once
    assert raw(urls, "k") == [None, None, None]


def test_markers_stay_while_a_replica_misses_the_delete(urls: list[str], tmp_path: Path) -> None:
    with host(urls, tmp_path / "j", tombstone_grace_seconds=0) as store:
        store.put("k", b"v")
        assert store.flush()
        c = faulty(store, "c")
        c.set(error_rate=1.0, error=BackendUnavailable)
        store.delete("k")
        assert store.flush()
        report = store.repair()
        assert report.purged == 0  # c still holds the object: the markers must stay
        assert deleted_on(store.backends["a"], "k")
        c.heal()
        store._dispatch.breakers.reset("c")
        report = store.repair()
        assert (report.repaired, report.purged) == (1, 1)
    assert raw(urls, "k") == [None, None, None]


def test_markers_within_the_grace_period_stay(urls: list[str], tmp_path: Path) -> None:
    with host(urls, tmp_path / "j") as store:  # default grace: a day
        store.put("k", b"v")
        store.delete("k")
        assert store.flush()
        assert store.repair().purged == 0
        assert store.reconcile(fix=True).purged == 0
    assert all(info is not None and is_marker(info) for info in raw(urls, "k"))


def test_reconcile_removes_markers_a_lost_host_left(urls: list[str], tmp_path: Path) -> None:
    with host(urls, tmp_path / "lost", tombstone_grace_seconds=0) as lost:
        lost.put("k", b"v")
        lost.delete("k")
        assert lost.flush()
    (tmp_path / "lost").unlink()  # the host is gone with its disk
    with host(urls, tmp_path / "other", tombstone_grace_seconds=0) as other:
        assert other.repair().purged == 0  # nothing in this host's journal
        report = other.reconcile(fix=True)
        assert (report.purged, report.consistent) == (1, True)
    assert raw(urls, "k") == [None, None, None]


def test_a_marker_carries_the_delete_version_and_no_bytes(urls: list[str], tmp_path: Path) -> None:
    with host(urls, tmp_path / "j") as store:
        store.put("k", b"payload")
        before = store._clock.now()
        store.delete("k")
        assert store.flush()
    for info in raw(urls, "k"):
        assert info is not None
        assert info.size == 0
        assert (info.metadata or {})[META_DELETED] == "1"
        assert (info.metadata or {})[META_VERSION] > before
