"""The telemetry seam: every operation and backend attempt is counted under its name."""

from __future__ import annotations

from pathlib import Path

import pytest

from failover import NotFoundError
from failover.errors import BackendUnavailable
from failover.telemetry import DURATION_BUCKETS, PROMETHEUS, Stats

from .conftest import faulty, host


def test_operations_and_attempts_are_counted(urls: list[str], tmp_path: Path) -> None:
    with host(urls, tmp_path / "j") as store:
        store.put("k", b"v")
        assert store.get("k") == b"v"
        with pytest.raises(NotFoundError):
            store.get("missing")
        faulty(store, "c").set(error_rate=1.0, error=BackendUnavailable)
        store.put("k2", b"v")
        assert store.flush()
        stats = store.telemetry.stats
        durations = stats.durations()
        assert durations["put", "ok"][1] == 2
        assert durations["get", "ok"][1] == 1
        assert durations["get", "error"][1] == 1  # the NotFoundError
        requests = stats.requests()
        assert requests["c", "error"] >= 1  # injected failures count as errors...
        assert requests["a", "ok"] >= 3  # ...a not-found answer counts as ok


def test_a_repair_pass_reports_the_hints_it_found(urls: list[str], tmp_path: Path) -> None:
    with host(urls, tmp_path / "j") as store:
        c = faulty(store, "c")
        c.set(error_rate=1.0, error=BackendUnavailable)
        store.put("k", b"v")
        assert store.flush()
        store.repair()  # c is down: its hint stays, and is reported
        count, oldest = store.telemetry.stats.hints()["c"]
        assert count == 1
        assert oldest >= 0
        c.heal()
        store._dispatch.breakers.reset("c")
        store.repair()
        store.repair()
        assert store.telemetry.stats.hints()["c"] == (0, 0.0)


def test_histogram_buckets_hold_every_duration() -> None:
    stats = Stats()
    for seconds in (0.001, 0.02, 3.0, 100.0):
        stats.record_operation("get", "ok", seconds)
    buckets, count, total = stats.durations()["get", "ok"]
    assert len(buckets) == len(DURATION_BUCKETS) + 1
    assert (sum(buckets), count) == (4, 4)
    assert buckets[0] == 1
    assert buckets[-1] == 1  # above the last bound
    assert total == pytest.approx(103.021)


def test_prometheus_names_follow_the_conventions() -> None:
    for name, family in PROMETHEUS.items():
        assert name.startswith("failover.")
        assert family.startswith("failover_")
        if name.endswith(("duration", "latency", "oldest_age")):
            assert family.endswith("_seconds")
    assert PROMETHEUS["failover.backend.requests"].endswith("_total")
