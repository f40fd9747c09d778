"""The drill's lost-host rehearsal: another instance completes a lost host's work."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from failover import Storage
from failover.backends import Backend, from_url
from failover.config import Settings
from failover.drill import FleetDrill, rehearse_lost_host, run_drill
from failover.errors import BackendUnavailable
from failover.replication.hints import HINT_PREFIX
from failover.replication.markers import is_marker

from ..conftest import deleted_on
from .conftest import faulty, host

SCRATCH = "drill/fleet/"
#: Brisk policies: a hung call waits 0.2 s, a breaker admits a trial after 0.2 s.
BRISK = {
    "timeout_seconds": 0.2,
    "deadline_seconds": 5,
    "retry_attempts": 1,
    "breaker_fail_max": 3,
    "breaker_reset_seconds": 0.2,
}


class Hosts:
    """Instances over the same replicas, each with its own journal; ``c`` goes down."""

    def __init__(self, urls: Sequence[str], **options: object) -> None:
        self.urls = urls
        self.options = {**BRISK, **options}
        self.stores: list[Storage] = []

    def connect(self, journal: str) -> Storage:
        store = host(self.urls, journal, **self.options)
        self.stores.append(store)
        return store

    def take_down(self) -> None:
        for store in self.stores:
            faulty(store, "c").set(error_rate=1.0, error=BackendUnavailable)

    def bring_back(self) -> None:
        for store in self.stores:
            faulty(store, "c").heal()

    def rehearse(self, tmp_path: Path, *, clean_up: bool = False) -> FleetDrill:
        return rehearse_lost_host(
            self.connect,
            target="c",
            take_down=self.take_down,
            bring_back=self.bring_back,
            scratch=SCRATCH,
            journal_dir=tmp_path,
            objects=6,
            outage="error",
            clean_up=clean_up,
        )


def state(backend: Backend, prefix: str) -> dict[str, tuple[str, bytes | None]]:
    """What a replica holds under ``prefix``: version and bytes (None for a marker)."""
    held: dict[str, tuple[str, bytes | None]] = {}
    for listed in backend.list(prefix):
        info = backend.head(listed.key)
        version = (info.metadata or {})["failover_version"]
        held[listed.key] = (version, None if is_marker(info) else backend.get(listed.key).data)
    return held


def hints_on(urls: Sequence[str]) -> list[str]:
    return [o.key for u in urls for o in from_url(u).list(HINT_PREFIX)]


def test_the_recovered_replica_gets_the_lost_host_s_writes_and_deletes(
    urls: list[str], tmp_path: Path
) -> None:
    report = Hosts(urls).rehearse(tmp_path)

    # Host A wrote 6 new keys, overwrote 3 of host B's 6 and deleted the other 3;
    # replica c missed all of it, and each of a and b kept a hint per action.
    assert (report.writes, report.deletes, report.errors) == (9, 3, 0)
    assert (report.missed, report.hints) == (12, 24)
    assert (report.repaired, report.pending) == (12, 0)
    assert report.passed, report.problems
    # Read directly: c holds exactly what the replicas that took host A's work hold.
    a, b, c = (from_url(u) for u in urls)
    held = state(c, SCRATCH)
    assert held == state(a, SCRATCH) == state(b, SCRATCH)
    live = {key: data for key, (_, data) in held.items() if data is not None}
    gone = [key for key, (_, data) in held.items() if data is None]
    assert len(live) == report.writes
    assert len(gone) == report.deletes
    assert all(deleted_on(c, key) for key in gone)
    assert hints_on(urls) == []
    assert list(tmp_path.iterdir()) == []  # both journals are gone


def test_the_rehearsal_cleans_up_its_objects_markers_and_hints(
    urls: list[str], tmp_path: Path
) -> None:
    report = Hosts(urls).rehearse(tmp_path, clean_up=True)
    assert report.passed, report.problems
    assert report.cleaned is True
    assert [o.key for u in urls for o in from_url(u).list("")] == []
    assert hints_on(urls) == []


def test_the_rehearsal_fails_when_the_other_instance_cannot_repair(
    urls: list[str], tmp_path: Path
) -> None:
    hosts = Hosts(urls, deadline_seconds=2)

    def bring_back_but_not_for_host_b() -> None:
        Hosts.bring_back(hosts)
        # Host B's client of c keeps refusing writes: it cannot complete the hints.
        [survivor] = [s for s in hosts.stores if "host-b" in str(s.settings.journal_path)]
        faulty(survivor, "c").set(error_rate=1.0, error=BackendUnavailable, operations={"put"})

    hosts.bring_back = bring_back_but_not_for_host_b  # type: ignore[method-assign]
    report = hosts.rehearse(tmp_path, clean_up=True)
    assert not report.passed
    assert report.repaired == 0
    assert not report.writes_repaired
    assert not report.deletes_repaired
    assert report.hints_left == 24  # kept for a later repair
    assert any("c: " in line and "missing" in line for line in report.problems)
    # Still cleaned up: objects, markers and the hints nobody could complete.
    assert report.cleaned is True
    assert hints_on(urls) == []


@pytest.mark.parametrize("outage", ["error", "hang"])
def test_drill_fleet_rehearses_a_lost_host_per_backend(urls: list[str], outage: str) -> None:
    settings = Settings.from_urls(urls, **BRISK)  # type: ignore[arg-type]
    report = run_drill(settings, objects=2, outage=outage, fleet=True)  # type: ignore[arg-type]
    assert report.passed, [r.problems for r in (*report.results, *report.fleet)]
    assert [f.backend for f in report.fleet] == ["a", "b", "c"]
    for lost in report.fleet:
        assert (lost.writes, lost.deletes, lost.missed, lost.repaired) == (3, 1, 4, 4)
        assert lost.scratch.startswith(report.prefix)
        assert (lost.hints_left, lost.cleaned) == (0, True)
    data = report.to_dict()
    assert [f["passed"] for f in data["fleet"]] == [True, True, True]
    assert [o.key for u in urls for o in from_url(u).list("")] == []
    assert hints_on(urls) == []


def test_drill_without_fleet_reports_no_rehearsal(urls: list[str]) -> None:
    settings = Settings.from_urls(urls, **BRISK)  # type: ignore[arg-type]
    report = run_drill(settings, targets=["a"], objects=1, outage="error")
    assert report.passed
    assert report.fleet == ()
    assert report.to_dict()["fleet"] == []


def test_drill_fleet_over_directories(tmp_path: Path) -> None:
    dirs = []
    for name in "abc":
        (tmp_path / name).mkdir()
        dirs.append(f"file://{tmp_path / name}?name={name}")
    settings = Settings.from_urls(dirs, **BRISK)  # type: ignore[arg-type]
    report = run_drill(settings, targets=["b"], objects=3, outage="hang", fleet=True)
    assert report.passed, report.fleet[0].problems
    [lost] = report.fleet
    assert (lost.writes, lost.deletes, lost.missed, lost.hints_left) == (4, 2, 6, 0)
    assert [o.key for d in dirs for o in from_url(d).list("")] == []
    assert hints_on(dirs) == []


def test_drill_fleet_fails_when_writes_cannot_survive_a_loss(urls: list[str]) -> None:
    settings = Settings.from_urls(urls, write_policy="all", **BRISK)  # type: ignore[arg-type]
    report = run_drill(settings, targets=["c"], objects=2, outage="error", fleet=True)
    [lost] = report.fleet
    assert not report.passed
    assert not lost.passed
    assert lost.errors == 4  # every write and delete of host A missed its third ack
    assert "failed during the outage" in lost.problems[0]
    assert lost.cleaned is True
    assert [o.key for u in urls for o in from_url(u).list("")] == []
    assert hints_on(urls) == []
