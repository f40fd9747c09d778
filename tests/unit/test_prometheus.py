"""The Prometheus collector, scraped through a real registry over memory replicas."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from failover import Invoker, Storage
from failover.errors import BackendUnavailable
from failover.invoke.testing import FunctionServer, Reply
from failover.prometheus import FailoverCollector
from failover.telemetry import DURATION_BUCKETS, PROMETHEUS

from .conftest import faulty, host

#: family (as OpenMetrics names it: counters without ``_total``) -> type, labels, unit
FAMILIES = {
    "failover_backend_requests": ("counter", {"client", "backend", "outcome"}, ""),
    "failover_operation_duration_seconds": (
        "histogram",
        {"client", "operation", "outcome", "le"},
        "seconds",
    ),
    "failover_breaker_state": ("gauge", {"client", "backend", "state"}, ""),
    "failover_backend_health_score": ("gauge", {"client", "backend"}, ""),
    "failover_backend_latency_seconds": ("gauge", {"client", "backend"}, "seconds"),
    "failover_backend_error_ratio": ("gauge", {"client", "backend"}, "ratio"),
    "failover_repairs_pending": ("gauge", {"client", "backend"}, ""),
    "failover_hints_outstanding": ("gauge", {"client", "backend"}, ""),
    "failover_hints_oldest_age_seconds": ("gauge", {"client", "backend"}, "seconds"),
}


class Scrape:
    """One scrape of a registry, parsed back (OpenMetrics, which carries units)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        text = generate_openmetrics(registry).decode()
        self.families = {f.name: f for f in text_string_to_metric_families(text)}

    def samples(self, family: str, suffix: str = "", **labels: str) -> list[Sample]:
        return [
            s
            for s in self.families[family].samples
            if s.name == family + suffix and labels.items() <= s.labels.items()
        ]

    def value(self, family: str, suffix: str = "", **labels: str) -> float:
        (sample,) = self.samples(family, suffix, **labels)
        return sample.value


@pytest.fixture
def store(urls: list[str], tmp_path: Path) -> Iterator[Storage]:
    with host(urls, tmp_path / "j", retry_attempts=1, breaker_fail_max=2) as s:
        yield s


@pytest.fixture
def registry(store: Storage) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(FailoverCollector(store))
    return registry


def test_every_family_has_its_type_labels_and_unit(
    store: Storage, registry: CollectorRegistry
) -> None:
    store.put("k", b"v")
    assert store.get("k") == b"v"
    store.repair()  # reports the hints
    scrape = Scrape(registry)
    assert set(scrape.families) == set(FAMILIES)
    for name, (kind, labels, unit) in FAMILIES.items():
        family = scrape.families[name]
        assert (family.type, family.unit) == (kind, unit), name
        assert family.samples, name
        for sample in family.samples:
            expected = labels if sample.name.endswith("_bucket") else labels - {"le"}
            assert set(sample.labels) == expected, (name, sample)
            assert sample.labels["client"] == "storage"
    # the names are the contract's
    assert {f.removesuffix("_total") for f in PROMETHEUS.values()} == set(FAMILIES)
    # the classic text format shows counters with _total
    assert b"failover_backend_requests_total{" in generate_latest(registry)


def test_counters_grow_with_operations(store: Storage, registry: CollectorRegistry) -> None:
    def answered(scrape: Scrape) -> float:
        return sum(
            s.value for s in scrape.samples("failover_backend_requests", "_total", outcome="ok")
        )

    store.put("k", b"v")
    assert store.flush()
    before = Scrape(registry)
    assert answered(before) == 3  # one write per replica
    gets = before.samples("failover_operation_duration_seconds", "_count", operation="get")
    assert gets == []
    for _ in range(3):
        store.get("k")
    after = Scrape(registry)
    assert answered(after) == 6  # and one read per get
    count = after.value(
        "failover_operation_duration_seconds", "_count", operation="get", outcome="ok"
    )
    assert count == 3


def test_breaker_state_flips_to_open_after_failures(
    store: Storage, registry: CollectorRegistry
) -> None:
    def state(scrape: Scrape, backend: str) -> dict[str, float]:
        return {
            s.labels["state"]: s.value
            for s in scrape.samples("failover_breaker_state", backend=backend)
        }

    assert state(Scrape(registry), "c") == {"closed": 1, "open": 0, "half-open": 0}
    faulty(store, "c").set(error_rate=1.0, error=BackendUnavailable)
    for n in range(3):
        store.put(f"k{n}", b"v")
    assert store.flush()
    scrape = Scrape(registry)
    assert state(scrape, "c") == {"closed": 0, "open": 1, "half-open": 0}
    assert state(scrape, "a") == {"closed": 1, "open": 0, "half-open": 0}
    assert scrape.value("failover_backend_requests", "_total", backend="c", outcome="error") >= 2
    assert scrape.value("failover_backend_error_ratio", backend="c") > 0
    assert 0 <= scrape.value("failover_backend_health_score", backend="c") <= 1
    assert scrape.value("failover_repairs_pending", backend="c") == 3
    store.repair()  # c is still down: its hints stay, and are reported
    scrape = Scrape(registry)
    assert scrape.value("failover_hints_outstanding", backend="c") == 3
    assert scrape.value("failover_hints_oldest_age_seconds", backend="c") >= 0
    assert scrape.value("failover_hints_outstanding", backend="a") == 0


def test_histogram_buckets_are_cumulative_and_match_the_count(
    store: Storage, registry: CollectorRegistry
) -> None:
    for seconds in (0.001, 0.02, 3.0, 100.0):
        store.telemetry.stats.record_operation("probe", "ok", seconds)
    store.put("k", b"v")
    scrape = Scrape(registry)
    family = "failover_operation_duration_seconds"
    buckets = {
        s.labels["le"]: s.value for s in scrape.samples(family, "_bucket", operation="probe")
    }
    assert list(buckets) == [*(repr(b) for b in DURATION_BUCKETS), "+Inf"]
    assert buckets["0.005"] == 1
    assert buckets["0.025"] == 2
    assert buckets["5.0"] == 3
    assert buckets["30.0"] == 3
    assert buckets["+Inf"] == 4 == scrape.value(family, "_count", operation="probe")
    assert scrape.value(family, "_sum", operation="probe") == pytest.approx(103.021)
    put = [s.value for s in scrape.samples(family, "_bucket", operation="put")]
    assert put == sorted(put)  # never decreasing
    assert put[-1] == scrape.value(family, "_count", operation="put") == 1


def test_two_stores_are_told_apart_by_the_client_label(urls: list[str], tmp_path: Path) -> None:
    with host(urls, tmp_path / "j1") as uploads, host(urls[:2], tmp_path / "j2") as archive:
        registry = CollectorRegistry()
        registry.register(FailoverCollector(uploads, archive, names=["uploads", "archive"]))
        uploads.put("k", b"v")
        assert uploads.flush()
        scrape = Scrape(registry)
        requests = "failover_backend_requests"
        assert scrape.value(requests, "_total", client="uploads", backend="c", outcome="ok") >= 1
        assert scrape.samples(requests, "_total", client="archive") == []
        score = "failover_backend_health_score"
        assert {s.labels["backend"] for s in scrape.samples(score, client="archive")} == {"a", "b"}
        assert len(scrape.samples(score, client="uploads")) == 3


def test_names_must_tell_the_objects_apart(urls: list[str], tmp_path: Path) -> None:
    with host(urls, tmp_path / "j1") as one, host(urls, tmp_path / "j2") as two:
        with pytest.raises(ValueError, match="names="):
            FailoverCollector(one, two)
        with pytest.raises(ValueError, match="2 object"):
            FailoverCollector(one, two, names=["only-one"])
        with pytest.raises(ValueError, match="sequence"):
            FailoverCollector(one, names="uploads")
        with pytest.raises(ValueError, match="empty"):
            FailoverCollector(one, names=[""])
    with pytest.raises(ValueError, match="at least one"):
        FailoverCollector()


def test_one_collector_per_registry(store: Storage, registry: CollectorRegistry) -> None:
    with pytest.raises(ValueError, match="Duplicated"):
        registry.register(FailoverCollector(store))


def test_a_scrape_calls_no_backend(store: Storage, registry: CollectorRegistry) -> None:
    store.put("k", b"v")
    assert store.flush()
    before = {name: faulty(store, name).calls for name in "abc"}
    for _ in range(3):
        generate_latest(registry)
    assert {name: faulty(store, name).calls for name in "abc"} == before


def test_a_closed_store_still_scrapes(urls: list[str], tmp_path: Path) -> None:
    store = host(urls, tmp_path / "j")
    registry = CollectorRegistry()
    registry.register(FailoverCollector(store))
    store.put("k", b"v")
    store.close()
    scrape = Scrape(registry)  # its counters remain; its health is gone with its journal
    assert scrape.value("failover_backend_requests", "_total", backend="a", outcome="ok") >= 1
    assert scrape.samples("failover_breaker_state") == []


def test_an_invoker_reports_its_targets() -> None:
    with FunctionServer() as down, FunctionServer() as up:
        down.reply_always(Reply(status=503))
        urls = [
            f"http://127.0.0.1:{down.port}/api/fn?name=primary",
            f"http://127.0.0.1:{up.port}/api/fn?name=secondary",
        ]
        with Invoker.from_urls(
            urls, read_policy="ordered", retry_attempts=1, breaker_fail_max=2
        ) as invoker:
            registry = CollectorRegistry()
            registry.register(FailoverCollector(invoker))
            for n in range(3):
                assert invoker.invoke({"n": n}).target == "secondary"
            received = len(down.requests) + len(up.requests)
            scrape = Scrape(registry)
            assert len(down.requests) + len(up.requests) == received  # no call at scrape
    requests = "failover_backend_requests"
    assert (
        scrape.value(requests, "_total", client="invoker", backend="secondary", outcome="ok") == 3
    )
    assert scrape.value(requests, "_total", backend="primary", outcome="error") == 2
    assert scrape.value("failover_breaker_state", backend="primary", state="open") == 1
    count = scrape.value(
        "failover_operation_duration_seconds", "_count", operation="invoke", outcome="ok"
    )
    assert count == 3
    # no journal, no hints: nothing to report rather than misleading zeros
    for family in (
        "failover_repairs_pending",
        "failover_hints_outstanding",
        "failover_hints_oldest_age_seconds",
    ):
        assert scrape.families[family].samples == []


def test_an_async_storage_is_read_through_its_sync_core(store: Storage) -> None:
    from failover import aio

    registry = CollectorRegistry()
    registry.register(FailoverCollector(aio.Storage(store)))
    store.put("k", b"v")
    scrape = Scrape(registry)
    assert scrape.value("failover_backend_requests", "_total", backend="a", outcome="ok") >= 1
    assert scrape.value("failover_breaker_state", client="storage", backend="b", state="closed")


def test_importing_failover_does_not_import_prometheus_client() -> None:
    code = (
        "import sys, failover, failover.invoke, failover.telemetry, failover.events; "
        "print([m for m in ('prometheus_client', 'failover.prometheus') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
