"""``failover doctor`` and ``failover drill`` through the command line."""

from __future__ import annotations

import json
import socket
import time

import pytest

from failover.backends import from_url
from failover.doctor import PROBE_PREFIX
from failover.replication.hints import HINT_PREFIX
from failover.testing.emulators import EmulatorProcess, redis_url
from failover.testing.emulators._process import free_port

from .conftest import Invoke

pytestmark = pytest.mark.integration

#: Brisk policies for the drills. One attempt's timeout is also how long a call to a
#: hung backend waits, but it bounds every call to the live emulators as well: it
#: leaves them seconds, so that a loaded machine cannot turn a slow answer into a failure.
BRISK = {
    "FAILOVER_TIMEOUT_SECONDS": "3",
    "FAILOVER_DEADLINE_SECONDS": "30",
    "FAILOVER_RETRY_ATTEMPTS": "1",
    "FAILOVER_BREAKER_FAIL_MAX": "3",
    "FAILOVER_BREAKER_RESET_SECONDS": "0.5",
}


# -- doctor -------------------------------------------------------------------------------


def test_doctor_passes_three_emulated_clouds(failover_cli: Invoke, cloud_urls: list[str]) -> None:
    result = failover_cli("doctor", env={"FAILOVER_BACKENDS": ",".join(cloud_urls)})
    assert result.exit_code == 0, result.output
    assert "no critical finding" in result.stdout
    assert "custom-endpoint" in result.stdout  # emulators are on custom endpoints (info)
    assert "critical" not in result.stdout.replace("no critical finding", "")
    # The conditional-write probe ran on each real emulator and cleaned up after itself.
    for url in cloud_urls:
        backend = from_url(url)
        try:
            assert list(backend.list(PROBE_PREFIX)) == []
        finally:
            backend.close()


def test_doctor_fails_a_single_backend(failover_cli: Invoke, cloud_urls: list[str]) -> None:
    result = failover_cli("doctor", "--json", env={"FAILOVER_BACKENDS": cloud_urls[0]})
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert [f["code"] for f in report["findings"] if f["severity"] == "critical"] == [
        "single-backend"
    ]


def test_doctor_fails_an_all_write_policy(failover_cli: Invoke, cloud_urls: list[str]) -> None:
    env = {"FAILOVER_BACKENDS": ",".join(cloud_urls), "FAILOVER_WRITE_POLICY": "all"}
    result = failover_cli("doctor", env=env)
    assert result.exit_code == 1
    assert "write-policy" in result.stdout
    assert "1 critical finding(s)" in result.stdout


def test_doctor_reports_an_unset_configuration(failover_cli: Invoke) -> None:
    result = failover_cli("doctor", env={"FAILOVER_BACKENDS": None})
    assert result.exit_code == 1
    assert "config-invalid" in result.stdout
    assert "FAILOVER_BACKENDS is not set" in result.stdout


def test_doctor_does_not_hang_on_an_unreachable_endpoint(
    failover_cli: Invoke, cloud_urls: list[str]
) -> None:
    # A blackholed endpoint: it accepts connections (the kernel's backlog) and never
    # answers, wherever the test runs (an unrouted address may be refused at once).
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        dead = f"s3://lost?region=us-east-1&endpoint_url=http://127.0.0.1:{port}&name=dead"
        env = {"FAILOVER_BACKENDS": ",".join([dead, *cloud_urls[1:]])}
        started = time.monotonic()
        # The timeout also bounds the probes of the two live emulators (client set-up
        # included): it is generous so that a loaded machine does not make them miss it.
        result = failover_cli("doctor", "--timeout", "5", "--json", env=env)
        elapsed = time.monotonic() - started
    assert result.exit_code == 1
    # The 5 s timeout ends the dead probe; without it the doctor would wait forever. The
    # bound is 10x that: only a doctor that hangs, not a loaded machine, fails it.
    assert elapsed < 50, f"doctor took {elapsed:.1f} s"
    findings = json.loads(result.stdout)["findings"]
    unreachable = [f for f in findings if f["code"] == "endpoint-unreachable"]
    assert [f["backend"] for f in unreachable] == ["dead"]


def test_doctor_without_probes_skips_the_network(failover_cli: Invoke) -> None:
    dead = "s3://lost?region=us-east-1&endpoint_url=http://192.0.2.1:9000"
    env = {"FAILOVER_BACKENDS": f"{dead},az://b,gs://c"}
    result = failover_cli("doctor", "--no-probe", env=env)
    assert result.exit_code == 0, result.output
    assert "network checks skipped" in result.stdout


# -- drill --------------------------------------------------------------------------------


def _scratch_left(urls: list[str], prefix: str = "failover-drill/") -> list[str]:
    left = []
    for url in urls:
        backend = from_url(url)
        try:
            left += [o.key for o in backend.list(prefix)]
        finally:
            backend.close()
    return left


def test_drill_takes_each_emulated_cloud_down_and_passes(
    failover_cli: Invoke, cloud_urls: list[str]
) -> None:
    env = {**BRISK, "FAILOVER_BACKENDS": ",".join(cloud_urls)}
    result = failover_cli("drill", "--objects", "3", "--outage", "error", env=env)
    assert result.exit_code == 0, result.output
    assert result.stdout.count("PASS") == 3
    for name in ("aws", "azure", "gcp"):
        assert f"{name}: down; reading and writing through the others" in result.stdout
    assert "drill passed" in result.stdout
    assert _scratch_left(cloud_urls) == []
    # Nor a hint for them (a repair pass can complete a journal row without reading
    # its hints; the clean-up removes those too).
    assert _scratch_left(cloud_urls, HINT_PREFIX) == []


def test_drill_one_hanging_backend_as_json(failover_cli: Invoke, cloud_urls: list[str]) -> None:
    env = {**BRISK, "FAILOVER_BACKENDS": ",".join(cloud_urls)}
    result = failover_cli("drill", "--backend", "azure", "--objects", "4", "--json", env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["passed"] is True
    assert report["write_policy"] == "quorum"
    [outcome] = report["results"]
    assert outcome["backend"] == "azure"
    assert outcome["outage"] == "hang"
    # Four writes time out on azure (3 s each, in parallel); three open its breaker.
    assert outcome["breaker_opened_after_seconds"] is not None
    assert (outcome["reads"], outcome["read_errors"]) == (8, 0)
    assert (outcome["writes"], outcome["write_errors"]) == (4, 0)
    assert outcome["repaired"] == 4  # the writes azure missed
    assert outcome["consistent"]
    assert outcome["intact"]
    assert outcome["cleaned"]
    assert _scratch_left(cloud_urls) == []
    assert _scratch_left(cloud_urls, HINT_PREFIX) == []


@pytest.mark.parametrize("policy", ["all", "quorum"])
def test_drill_fails_when_writes_cannot_survive_a_loss(
    failover_cli: Invoke, memory_urls: list[str], policy: str
) -> None:
    urls = memory_urls[:1] if policy == "quorum" else memory_urls
    env = {**BRISK, "FAILOVER_BACKENDS": ",".join(urls), "FAILOVER_WRITE_POLICY": policy}
    result = failover_cli(
        "drill", "--objects", "3", "--outage", "error", "--backend", "aws", env=env
    )
    assert result.exit_code == 1
    assert "FAIL" in result.stdout
    assert "write failover-drill/" in result.stdout
    assert "failed during the outage" in result.stdout
    assert "drill failed" in result.stdout


def test_drill_fleet_against_the_emulators(failover_cli: Invoke, cloud_urls: list[str]) -> None:
    env = {**BRISK, "FAILOVER_BACKENDS": ",".join(cloud_urls)}
    args = ("--fleet", "--backend", "gcp", "--objects", "4", "--outage", "error", "--json")
    result = failover_cli("drill", *args, env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["passed"] is True
    [lost] = report["fleet"]
    assert lost["backend"] == "gcp"
    assert lost["scratch"] == report["prefix"] + "gcp/fleet/"
    # Host A wrote 4 new objects, overwrote 2 of host B's 4 and deleted the other 2;
    # gcp missed all 8, and aws and azure each kept a hint per action.
    assert (lost["writes"], lost["deletes"], lost["errors"]) == (6, 2, 0)
    assert (lost["missed"], lost["hints"]) == (8, 16)
    assert (lost["repaired"], lost["pending"]) == (8, 0)  # by host B, its journal empty
    assert lost["writes_repaired"] is True  # read back on every replica
    assert lost["deletes_repaired"] is True
    assert lost["hints_left"] == 0
    assert lost["cleaned"] is True
    assert lost["problems"] == []
    assert lost["passed"] is True
    # Its objects, delete markers and hints are gone (the buckets are the test's own).
    assert _scratch_left(cloud_urls) == []
    assert _scratch_left(cloud_urls, HINT_PREFIX) == []


def test_drill_fleet_table(failover_cli: Invoke, memory_urls: list[str]) -> None:
    env = {**BRISK, "FAILOVER_BACKENDS": ",".join(memory_urls)}
    result = failover_cli("drill", "--fleet", "--objects", "2", "--outage", "error", env=env)
    assert result.exit_code == 0, result.output
    assert "failover drill --fleet: a host lost with its journal" in result.stdout
    assert result.stdout.count("PASS") == 6  # three outages, three lost hosts
    for name in ("aws", "azure", "gcp"):
        assert f"host A lost with its journal; {name} comes back" in result.stdout
        assert f"{name} missed 4 of host A's 4 actions; 8 hint(s)" in result.stdout
    assert "a host lost with its journal was covered by another instance" in result.stdout
    assert _scratch_left(memory_urls, "") == []


def test_drill_fleet_fails_when_writes_cannot_survive_a_loss(
    failover_cli: Invoke, memory_urls: list[str]
) -> None:
    env = {**BRISK, "FAILOVER_BACKENDS": ",".join(memory_urls), "FAILOVER_WRITE_POLICY": "all"}
    result = failover_cli(
        "drill", "--fleet", "--objects", "2", "--outage", "error", "--backend", "aws", env=env
    )
    assert result.exit_code == 1
    assert "aws (fleet): host A's write failover-drill/" in result.stdout
    assert "drill failed" in result.stdout
    assert _scratch_left(memory_urls, "") == []
    assert _scratch_left(memory_urls, HINT_PREFIX) == []


def test_drill_rejects_an_unknown_backend(failover_cli: Invoke, memory_urls: list[str]) -> None:
    env = {"FAILOVER_BACKENDS": ",".join(memory_urls)}
    result = failover_cli("drill", "--backend", "nowhere", env=env)
    assert result.exit_code == 2
    assert "unknown backend(s) nowhere" in result.output


# -- drill with shared breakers -------------------------------------------------------------


def test_drill_shows_a_shared_breaker(
    failover_cli: Invoke, memory_urls: list[str], redis_server: EmulatorProcess
) -> None:
    url = redis_url(redis_server, namespace="cli-drill")
    env = {**BRISK, "FAILOVER_BACKENDS": ",".join(memory_urls)}
    args = ("--backend", "aws", "--objects", "2", "--outage", "error")
    result = failover_cli("drill", *args, "--breaker-storage", url, env=env)
    assert result.exit_code == 0, result.output
    assert "✓ shared breaker: B saw aws open after A's failures: yes" in result.stdout
    assert "B's calls to aws since: 0" in result.stdout
    assert "namespace=cli-drill.drill-" in result.stdout
    assert _scratch_left(memory_urls, "") == []
    # From FAILOVER_BREAKER_STORAGE as well; without one, no such step.
    shared_env = {**env, "FAILOVER_BREAKER_STORAGE": url}
    assert "shared breaker: B saw aws" in failover_cli("drill", *args, env=shared_env).stdout
    assert "shared breaker" not in failover_cli("drill", *args, env=env).stdout


def test_drill_fails_when_the_breaker_storage_cannot_be_reached(
    failover_cli: Invoke, memory_urls: list[str]
) -> None:
    url = f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0"  # nobody listens
    env = {**BRISK, "FAILOVER_BACKENDS": ",".join(memory_urls), "FAILOVER_BREAKER_STORAGE": url}
    result = failover_cli(
        "drill", "--backend", "aws", "--objects", "2", "--outage", "error", env=env
    )
    assert result.exit_code == 1, result.output
    assert "✗ shared breaker: B saw aws open after A's failures: no" in result.stdout
    assert "aws (shared breaker): the breaker storage redis://***@127.0.0.1:" in result.stdout
    assert "failed: ConnectionError" in result.stdout
    assert "hunter2" not in result.output
    assert _scratch_left(memory_urls, "") == []
