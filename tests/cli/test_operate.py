"""``failover status``, ``repair`` and ``reconcile``."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from failover import Settings, Storage
from failover.backends import from_url
from failover.errors import BackendUnavailable
from failover.telemetry import PROMETHEUS
from failover.testing import FaultyBackend
from failover.types import field_name

from .conftest import Invoke


@pytest.fixture
def backends_arg(memory_urls: list[str]) -> list[str]:
    return ["--backends", ",".join(memory_urls)]


@pytest.fixture
def dead_s3_url(monkeypatch: pytest.MonkeyPatch) -> str:
    """An S3 backend whose endpoint refuses connections."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"s3://gone?region=us-east-1&endpoint_url=http://127.0.0.1:{port}&name=dead"


# -- status -------------------------------------------------------------------------------


def test_status_shows_every_backend_healthy(failover_cli: Invoke, backends_arg: list[str]) -> None:
    result = failover_cli(*backends_arg, "status")
    assert result.exit_code == 0, result.output
    for name in ("aws", "azure", "gcp"):
        assert name in result.stdout
    assert result.stdout.count(" ok ") == 3
    assert "closed" in result.stdout


def test_status_fails_when_a_backend_does_not_answer(
    failover_cli: Invoke, memory_urls: list[str], dead_s3_url: str
) -> None:
    urls = ",".join([dead_s3_url, *memory_urls[:2]])
    result = failover_cli("--backends", urls, "status", "--json", "--timeout", "1")
    assert result.exit_code == 1
    by_name = {entry["name"]: entry for entry in json.loads(result.stdout)}
    assert by_name["dead"]["ok"] is False
    assert "BackendUnavailable" in by_name["dead"]["answer"]
    assert by_name["aws"]["ok"] is True
    assert by_name["aws"]["pending_repairs"] == 0


def test_status_json_names_quantities_like_the_metrics(
    failover_cli: Invoke, backends_arg: list[str]
) -> None:
    result = failover_cli(*backends_arg, "status", "--json")
    assert result.exit_code == 0, result.output
    entries = json.loads(result.stdout)
    metric_keys = {field_name(family) for family in PROMETHEUS.values()}
    for entry in entries:
        assert entry["backend"] == entry["name"]
        assert entry["breaker_state"] == entry["state"] == "closed"
        assert entry["health_score"] == entry["score"]
        assert entry["latency_seconds"] == pytest.approx(entry["latency_ms"] / 1000, abs=1e-6)
        assert entry["error_ratio"] == entry["error_rate"] == 0
        assert entry["repairs_pending"] == entry["pending_repairs"] == 0
        assert entry["hints_outstanding"] == 0
        assert entry["hints_oldest_age_seconds"] == 0
        # every per-backend gauge of the collector is here under its field name
        gauges = metric_keys - {"requests", "operation_duration_seconds"}
        assert gauges <= set(entry)


def test_status_counts_the_hints_kept_for_a_backend(
    failover_cli: Invoke, backends_arg: list[str], memory_urls: list[str], cli_env: dict[str, str]
) -> None:
    # An application on another host wrote while "gcp" was down: aws and azure keep hints.
    backends = [FaultyBackend(from_url(url)) for url in memory_urls]
    backends[2].set(error_rate=1.0, error=BackendUnavailable)
    settings = Settings.from_urls(
        memory_urls,
        journal=str(Path(cli_env["FAILOVER_JOURNAL"]).with_suffix(".other")),
        repair_interval_seconds=0,
    )
    with Storage(backends, settings=settings) as store:
        store.put("one", b"1")
        store.put("two", b"2")
    result = failover_cli(*backends_arg, "status", "--json")
    assert result.exit_code == 0, result.output
    by_name = {entry["backend"]: entry for entry in json.loads(result.stdout)}
    assert by_name["gcp"]["hints_outstanding"] == 2  # the same two hints on both holders
    assert by_name["gcp"]["hints_oldest_age_seconds"] >= 0
    assert by_name["gcp"]["repairs_pending"] == 0  # that host's journal is not this one
    assert by_name["aws"]["hints_outstanding"] == 0
    table = failover_cli(*backends_arg, "status")
    assert "2 (oldest" in table.stdout


def test_status_watch_opens_the_breaker_of_a_dead_backend(
    failover_cli: Invoke, memory_urls: list[str], dead_s3_url: str
) -> None:
    urls = ",".join([dead_s3_url, *memory_urls[:2]])
    result = failover_cli(
        "--backends",
        urls,
        "status",
        "--watch",
        "--count",
        "3",
        "--interval",
        "0.05",
        "--timeout",
        "1",
        env={"FAILOVER_BREAKER_FAIL_MAX": "2", "FAILOVER_BREAKER_RESET_SECONDS": "60"},
    )
    assert result.exit_code == 1
    assert "probe 3 of 3" in result.stdout
    assert "skipped: breaker open" in result.stdout  # the third probe was not sent


# -- repair -------------------------------------------------------------------------------


def test_repair_brings_a_replica_that_missed_a_write_up_to_date(
    failover_cli: Invoke, backends_arg: list[str], memory_urls: list[str], cli_env: dict[str, str]
) -> None:
    # An application wrote while "gcp" was down (sharing the journal the command uses).
    backends = [FaultyBackend(from_url(url)) for url in memory_urls]
    backends[2].set(error_rate=1.0, error=BackendUnavailable)
    settings = Settings.from_urls(
        memory_urls, journal=cli_env["FAILOVER_JOURNAL"], repair_interval_seconds=0
    )
    with Storage(backends, settings=settings) as store:
        store.put("missed/by-gcp", b"written while gcp was down")
    assert list(from_url(memory_urls[2]).list("missed/")) == []

    result = failover_cli(*backends_arg, "repair")
    assert result.exit_code == 0, result.output
    assert "repaired 1 replica action(s); 0 pending; 0 failed" in result.stdout
    assert from_url(memory_urls[2]).get("missed/by-gcp").data == b"written while gcp was down"


def test_repair_with_nothing_to_do_reports_json(
    failover_cli: Invoke, backends_arg: list[str]
) -> None:
    result = failover_cli(*backends_arg, "repair", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["repaired"] == 0
    assert data["pending"] == 0
    assert data["failed"] == []
    assert data["pending_by_backend"] == {"aws": 0, "azure": 0, "gcp": 0}


# -- reconcile ----------------------------------------------------------------------------


def test_reconcile_finds_then_fixes_a_missing_replica(
    failover_cli: Invoke, backends_arg: list[str], memory_urls: list[str]
) -> None:
    for i in range(5):
        assert failover_cli(*backends_arg, "put", f"r/{i}", input=b"data").exit_code == 0
    from_url(memory_urls[1]).delete("r/3")  # "azure" loses one object behind our back

    found = failover_cli(*backends_arg, "reconcile")
    assert found.exit_code == 1
    assert "5 key(s) compared" in found.stdout
    assert "missing on azure: r/3" in found.stdout
    assert "run again with --fix" in found.stdout

    fixed = failover_cli(*backends_arg, "reconcile", "--fix")
    assert fixed.exit_code == 0, fixed.output
    assert "fixed 1 replica(s)" in fixed.stdout
    assert from_url(memory_urls[1]).get("r/3").data == b"data"

    again = failover_cli(*backends_arg, "reconcile", "r/", "--verify-bytes")
    assert again.exit_code == 0
    assert "replicas agree" in again.stdout


def test_reconcile_json_lists_the_keys(
    failover_cli: Invoke, backends_arg: list[str], memory_urls: list[str]
) -> None:
    failover_cli(*backends_arg, "put", "j/1", input=b"x")
    from_url(memory_urls[0]).delete("j/1")
    result = failover_cli(*backends_arg, "reconcile", "j/", "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["missing"] == {"aws": ["j/1"], "azure": [], "gcp": []}
    assert data["scanned"] == 1
    assert data["consistent"] is False
