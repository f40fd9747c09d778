"""Hinted handoff: a replica's missed actions are kept by the replicas that took them."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from failover import InvalidKeyError
from failover.backends import from_url
from failover.errors import BackendUnavailable
from failover.keys import RESERVED_KEY_PREFIX, validate_key
from failover.replication.hints import HINT_PREFIX, hints_for, remove_hint, write_hint
from failover.replication.markers import is_marker

from ..conftest import deleted_on
from .conftest import faulty, host


def hint_keys(url: str) -> list[str]:
    return [o.key for o in from_url(url).list(HINT_PREFIX)]


def test_a_missed_write_leaves_a_hint_on_each_replica_that_took_it(
    urls: list[str],
    tmp_path: Path,
) -> None:
    with host(urls, tmp_path / "j") as store:
        faulty(store, "c").set(error_rate=1.0, error=BackendUnavailable)
        store.put("k", b"v")
        assert store.flush()
        assert [len(hint_keys(u)) for u in urls] == [1, 1, 0]
        assert [i.key for i in store.list()] == ["k"]  # hints never listed
        faulty(store, "c").heal()
        assert store.reconcile().scanned == 1  # nor compared
    (hint,) = hints_for(from_url(urls[0]), from_url(urls[2]).identity)
    assert (hint.key, hint.op) == ("k", "put")


def test_writes_every_replica_took_leave_no_hint(urls: list[str], tmp_path: Path) -> None:
    with host(urls, tmp_path / "j") as store:
        store.put("k", b"v")
        store.delete("k")
        assert store.flush()
    assert [hint_keys(u) for u in urls] == [[], [], []]


@pytest.mark.parametrize("key", [f"{RESERVED_KEY_PREFIX}x", ".failover/meta/x"])
def test_the_library_s_own_prefixes_are_not_keys(key: str) -> None:
    with pytest.raises(InvalidKeyError, match="reserved"):
        validate_key(key)


def test_hints_work_on_directories_too(tmp_path: Path) -> None:
    dirs = [f"file://{tmp_path / n}?name={n}" for n in "abc"]
    for d in "abc":
        (tmp_path / d).mkdir()
    with host(dirs, tmp_path / "w.sqlite") as writer:
        faulty(writer, "c").set(error_rate=1.0, error=BackendUnavailable)
        writer.put("k", b"v")
        assert writer.flush()
        assert [i.key for i in writer.list()] == ["k"]
    (tmp_path / "w.sqlite").unlink()
    with host(dirs, tmp_path / "r.sqlite") as other:
        assert other.repair().repaired == 1
    assert (tmp_path / "c" / "k").read_bytes() == b"v"


def test_a_lost_hosts_missed_actions_are_completed_from_hints(
    urls: list[str],
    tmp_path: Path,
) -> None:
    journal = tmp_path / "lost.sqlite"
    with host(urls, journal) as lost:
        lost.put("doomed", b"x")
        assert lost.flush()
        faulty(lost, "c").set(error_rate=1.0, error=BackendUnavailable)
        lost.put("new", b"1")
        lost.put("twice", b"first")
        lost.put("twice", b"second")
        lost.delete("doomed")
        assert lost.flush()
    journal.unlink()  # the host is gone, with its disk and its journal
    c = from_url(urls[2])
    assert not deleted_on(c, "doomed")
    with host(urls, tmp_path / "survivor.sqlite") as survivor:
        assert survivor.health()["c"].pending_repairs == 0  # its journal knows nothing
        report = survivor.repair()
        assert (report.repaired, report.pending, report.failed) == (3, 0, ())
        assert survivor.repair().repaired == 0  # the hints were removed
    assert c.get("new").data == b"1"
    assert c.get("twice").data == b"second"
    assert deleted_on(c, "doomed")
    assert [hint_keys(u) for u in urls] == [[], [], []]


def test_hints_wait_while_their_replica_is_down(urls: list[str], tmp_path: Path) -> None:
    with host(urls, tmp_path / "w") as writer:
        faulty(writer, "c").set(error_rate=1.0, error=BackendUnavailable)
        writer.put("k", b"v")
        assert writer.flush()
    with host(urls, tmp_path / "r") as other:
        c = faulty(other, "c")
        c.set(error_rate=1.0, error=BackendUnavailable)
        assert other.repair().repaired == 0
        assert [len(hint_keys(u)) for u in urls] == [1, 1, 0]  # kept for later
        c.heal()
        other._dispatch.breakers.reset("c")
        assert other.repair().repaired == 1
    assert from_url(urls[2]).get("k").data == b"v"
    assert [hint_keys(u) for u in urls] == [[], [], []]


def test_instances_completing_the_same_hints_at_once_agree(
    urls: list[str],
    tmp_path: Path,
) -> None:
    with host(urls, tmp_path / "w") as writer:
        faulty(writer, "c").set(error_rate=1.0, error=BackendUnavailable)
        for i in range(20):
            writer.put(f"k{i}", str(i).encode())
        assert writer.flush()
    repairers = [host(urls, tmp_path / f"r{i}") for i in range(3)]
    reports = []
    start = threading.Barrier(len(repairers))

    def run(store: object) -> None:
        start.wait()
        reports.append(store.repair())  # type: ignore[attr-defined]

    threads = [threading.Thread(target=run, args=(s,)) for s in repairers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in repairers:
        store.close()
    assert all(r.failed == () for r in reports)
    assert sum(r.repaired for r in reports) >= 20  # repeats are harmless, none is lost
    c = from_url(urls[2])
    assert sorted(c.get(f"k{i}").data for i in range(20)) == sorted(
        str(i).encode() for i in range(20)
    )
    assert [hint_keys(u) for u in urls] == [[], [], []]


def test_a_hint_names_the_newest_action_missed(urls: list[str]) -> None:
    holder, target = from_url(urls[0]), from_url(urls[2]).identity
    write_hint(holder, target, "k", "0002", "put")
    write_hint(holder, target, "k", "0001", "delete")  # older: ignored
    (hint,) = hints_for(holder, target)
    assert (hint.version, hint.op) == ("0002", "put")
    write_hint(holder, target, "k", "0003", "delete")  # newer: replaces it
    remove_hint(holder, hint)  # read before the newer one: must not remove it
    (hint,) = hints_for(holder, target)
    assert (hint.version, hint.op) == ("0003", "delete")
    remove_hint(holder, hint)
    assert list(hints_for(holder, target)) == []


def test_a_repaired_delete_from_a_hint_leaves_a_marker(urls: list[str], tmp_path: Path) -> None:
    with host(urls, tmp_path / "w") as writer:
        writer.put("k", b"v")
        assert writer.flush()
        faulty(writer, "c").set(error_rate=1.0, error=BackendUnavailable)
        writer.delete("k")
        assert writer.flush()
    (tmp_path / "w").unlink()
    with host(urls, tmp_path / "r") as other:
        assert other.repair().repaired == 1
    info = from_url(urls[2]).head("k")
    assert is_marker(info)
