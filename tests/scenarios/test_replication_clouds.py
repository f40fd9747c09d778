"""Replicated writes that lose nothing, on the three real emulators.

Missed writes and deletes are repaired from the journal; a writer killed with SIGKILL
mid-write loses no acknowledged write; two processes racing on one key converge; a
replica restored from an old backup is found and fixed by reconcile.
"""

from __future__ import annotations

import contextlib
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from failover import NotFoundError, Storage
from failover.backends import from_url
from failover.backends.base import META_SHA256, META_VERSION
from failover.config import Settings
from failover.payload import Payload
from failover.replication.markers import is_marker
from failover.testing import FaultyBackend

from .conftest import ProxiedFactory
from .writer_process import content_for

pytestmark = [pytest.mark.integration, pytest.mark.scenario]

WRITER = Path(__file__).with_name("writer_process.py")


def _clouds(proxied_cloud: ProxiedFactory, healthy_cloud):
    flaky_url, proxy = proxied_cloud("s3", "aws")
    return [flaky_url, healthy_cloud("azure", "azure"), healthy_cloud("gcs", "gcp")], proxy


def _store(urls: list[str], journal: Path, **options: object) -> Storage:
    defaults: dict[str, object] = {
        "timeout_seconds": 0.5,
        "deadline_seconds": 5,
        "breaker_fail_max": 3,
        "breaker_reset_seconds": 0.5,
        "repair_interval_seconds": 0,
    }
    defaults.update(options)
    return Storage.from_urls(urls, journal=str(journal), **defaults)  # type: ignore[arg-type]


_INSPECT_TIMEOUT = 30.0


def _replica_states(store: Storage, key: str) -> dict[str, tuple[bytes, str, str] | None]:
    """Each replica's bytes, version and sha256 for ``key`` (None: absent or deleted).

    Read with clients of their own whose timeout is generous: the store's short one is
    the scenario's, and an inspection must not fail because a loaded machine answered
    slowly.
    """
    states: dict[str, tuple[bytes, str, str] | None] = {}
    for url in store.settings.backends:
        backend = from_url(url, timeout_seconds=_INSPECT_TIMEOUT)
        try:
            fetched = backend.get(key)
        except NotFoundError:
            states[backend.name] = None
            continue
        finally:
            backend.close()
        if is_marker(fetched.info):  # the delete, kept for the grace period
            states[backend.name] = None
            continue
        meta = fetched.info.metadata or {}
        states[backend.name] = (fetched.data, meta[META_VERSION], meta[META_SHA256])
    return states


def _repair_until_done(store: Storage, *, passes: int = 5) -> None:
    for _ in range(passes):
        if store.repair().pending == 0:
            return
        for name in store.backends:  # a heal may leave a breaker open: re-admit it
            store._dispatch.breakers.reset(name)
    assert store.repair().pending == 0


def _repair_until_settled(store: Storage, *, passes: int = 5) -> list:
    """Repair until a pass changes nothing; return the actions still pending."""
    for _ in range(passes):
        report = store.repair()
        if report.pending == 0:
            return []
        for name in store.backends:
            store._dispatch.breakers.reset(name)
        if report.repaired == 0 and report.dropped == 0 and not report.failed:
            break
    return store._journal.pending()  # type: ignore[union-attr]


def test_quorum_write_with_one_cloud_down_is_repaired(
    proxied_cloud, healthy_cloud, tmp_path
) -> None:
    urls, proxy = _clouds(proxied_cloud, healthy_cloud)
    with _store(urls, tmp_path / "j.sqlite") as store:
        proxy.refuse()
        info = store.put("doc", b"written during the outage")
        assert store.flush()  # the refused replica's attempts (and retries) are over
        pending = {n: h.pending_repairs for n, h in store.health().items()}
        assert pending == {"aws": 1, "azure": 0, "gcp": 0}
        proxy.pass_through()
        _repair_until_done(store)
        states = _replica_states(store, "doc")
    assert set(states.values()) == {(b"written during the outage", info.version, info.checksum)}


def test_delete_missed_by_a_cloud_does_not_come_back(
    proxied_cloud, healthy_cloud, tmp_path
) -> None:
    urls, proxy = _clouds(proxied_cloud, healthy_cloud)
    with _store(urls, tmp_path / "j.sqlite", read_policy="ordered") as store:
        store.put("gone", b"x")
        assert store.flush()  # aws has it too before it goes down (quorum returns at 2)
        proxy.refuse()
        store.delete("gone")
        assert store.flush()
        proxy.pass_through()
        assert store.backends["aws"].get("gone").data == b"x"  # the cloud still has it
        assert not store.exists("gone")
        with pytest.raises(NotFoundError):
            store.get("gone")
        with pytest.raises(NotFoundError):
            store.get("gone", consistency="latest")
        assert [i.key for i in store.list()] == []
        _repair_until_done(store)
        assert set(_replica_states(store, "gone").values()) == {None}


def test_stale_replica_from_an_old_backup_is_reconciled(healthy_cloud, tmp_path) -> None:
    urls = [healthy_cloud(kind, kind) for kind in ("s3", "azure", "gcs")]
    # write_policy="all": no write is still in flight when the test restores the backup.
    with _store(urls, tmp_path / "j.sqlite", write_policy="all") as store:
        store.put("ledger", b"v1")
        backup = store.backends["gcs"].get("ledger")
        current = store.put("ledger", b"v2")
        with Payload.from_bytes(backup.data) as payload:  # restore the old copy by hand
            store.backends["gcs"].put(
                "ledger",
                payload,
                content_type=backup.info.content_type,
                metadata=dict(backup.info.metadata or {}),
            )
        report = store.reconcile()
        assert report.stale["gcs"] == ("ledger",)
        assert not report.consistent
        fixed = store.reconcile(fix=True)
        assert fixed.fixed == 1
        assert store.reconcile().consistent
        assert _replica_states(store, "ledger")["gcs"] == (b"v2", current.version, current.checksum)


def test_one_policy_completes_replication_in_the_background(healthy_cloud, tmp_path) -> None:
    urls = [healthy_cloud(kind, name) for kind, name in (("s3", "aws"), ("azure", "azure"))]
    urls.append(healthy_cloud("gcs", "gcp"))
    # aws's write is held until the test lets it go: the put can only have returned
    # before it if the policy did not wait for that replica.
    held = FaultyBackend(from_url(urls[0], timeout_seconds=0.5), hang=True, operations={"put"})
    backends = [held, *(from_url(url, timeout_seconds=0.5) for url in urls[1:])]
    settings = Settings.from_urls(
        urls,
        journal=str(tmp_path / "j.sqlite"),
        write_policy="one",
        read_policy="ordered",
        repair_interval_seconds=0,
    )
    with Storage(backends, settings=settings) as store:
        info = store.put("quick", b"acknowledged by the first replica")
        assert info.backend in {"azure", "gcp"}
        assert held.wait_until_hanging(1)  # aws's write is still held back
        with pytest.raises(NotFoundError):
            held.inner.head("quick")
        held.heal()
        assert store.flush()  # the background write to aws completes by itself
        assert store.health()["aws"].pending_repairs == 0
        assert held.inner.get("quick").info.metadata[META_VERSION] == info.version  # type: ignore[index]
        assert held.faults == {"hang": 1}  # one attempt, held then released: no repair


def test_two_processes_racing_on_one_key_converge(healthy_cloud, tmp_path) -> None:
    urls = [healthy_cloud(kind, kind) for kind in ("s3", "azure", "gcs")]
    journal = tmp_path / "shared.sqlite"
    acks = [tmp_path / "acks-1", tmp_path / "acks-2"]
    writers = [
        subprocess.Popen(
            [
                sys.executable,
                str(WRITER),
                "--journal",
                str(journal),
                "--acks",
                str(ack),
                "--prefix",
                "shared/",
                "--count",
                "40",
                "--same-key",
                *urls,
            ]
        )
        for ack in acks
    ]
    for writer in writers:
        assert writer.wait(timeout=120) == 0
    acknowledged = [line.split("\t") for ack in acks for line in ack.read_text().splitlines()]
    lost = [
        line.split("\t")
        for ack in acks
        if ack.with_name(ack.name + ".superseded").exists()
        for line in ack.with_name(ack.name + ".superseded").read_text().splitlines()
    ]
    # Every write either won for a while (acknowledged) or was told it lost.
    assert len(acknowledged) + len(lost) == 80
    highest = max(version for _, version, _ in acknowledged)
    assert all(version < winner <= highest for _, version, winner in lost)
    with _store(urls, journal) as store:
        _repair_until_done(store)
        states = _replica_states(store, "shared/race")
    assert {state[1] for state in states.values() if state} == {highest}
    assert len(set(states.values())) == 1


RUNS = 4


def _acknowledged(ack_file: Path) -> int:
    """Complete lines in the writer's ack file (each one an acknowledged write)."""
    return ack_file.read_bytes().count(b"\n")


def _wait_for_acks(ack_file: Path, count: int, child: subprocess.Popen, *, seconds: float) -> None:
    """Wait until ``count`` writes are acknowledged, the child ends, or ``seconds`` pass."""
    give_up = time.monotonic() + seconds
    while _acknowledged(ack_file) < count and child.poll() is None:
        if time.monotonic() >= give_up:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=0.01)  # a bounded poll of the ack file, not a fixed delay


def test_writer_killed_mid_write_loses_no_acknowledged_write(
    proxied_cloud, healthy_cloud, tmp_path
) -> None:
    urls, proxy = _clouds(proxied_cloud, healthy_cloud)
    journal = tmp_path / "journal.sqlite"
    checked = 0
    for seed in range(RUNS):
        rng = random.Random(seed)
        prefix = f"crash-{seed}/"
        ack_file = tmp_path / f"acks-{seed}"
        ack_file.touch()
        stderr_file = tmp_path / f"stderr-{seed}"
        with stderr_file.open("wb") as stderr:
            child = subprocess.Popen(
                [
                    sys.executable,
                    str(WRITER),
                    "--journal",
                    str(journal),
                    "--acks",
                    str(ack_file),
                    "--prefix",
                    prefix,
                    "--count",
                    "500",
                    *urls,
                ],
                stderr=stderr,
            )
        # Killed once it has acknowledged kill_after writes, while it is writing the next.
        kill_after = rng.randint(10, 60)
        give_up = time.monotonic() + 120  # the loop ends by itself even if writes stall
        while _acknowledged(ack_file) < kill_after:
            if time.monotonic() > give_up:
                child.kill()
                pytest.fail(f"run {seed}: {_acknowledged(ack_file)} writes in 120 s")
            if child.poll() is not None:
                pytest.fail(
                    f"run {seed}: the writer ended by itself (exit code {child.returncode}) "
                    f"after {_acknowledged(ack_file)} of {kill_after} acknowledged writes, "
                    f"before it could be killed; its stderr: {stderr_file.read_text()[-2000:]}"
                )
            # The flaky cloud goes dark and comes back while the child writes.
            proxy.blackhole() if rng.random() < 0.5 else proxy.pass_through()
            _wait_for_acks(ack_file, kill_after, child, seconds=rng.uniform(0.2, 0.6))
        child.kill()  # not yet reaped (no poll since it was alive): its pid is still ours
        assert child.wait(timeout=30) == -signal.SIGKILL, (
            f"run {seed}: the writer ended by itself (exit code {child.returncode}) "
            "instead of being killed mid-write"
        )
        proxy.pass_through()

        acknowledged = [line.split("\t") for line in ack_file.read_text().splitlines()]
        with _store(urls, journal) as store:
            leftover = _repair_until_settled(store)
            # What repair leaves is the write in flight when the child died that reached
            # no replica yet (its rows are kept until the grace period ends): it must be
            # unacknowledged and absent everywhere, never half-present.
            acked_keys = {key for key, _, _ in acknowledged}
            for action in leftover:
                assert action.key not in acked_keys, action
                assert set(_replica_states(store, action.key).values()) == {None}, action
            report = store.reconcile(prefix)
            assert report.consistent, report  # nothing half-present
            for key, version, checksum in acknowledged:
                expected = (content_for(key), version, checksum)
                assert set(_replica_states(store, key).values()) == {expected}, key
        checked += len(acknowledged)
        print(
            f"\n[crash] run {seed}: killed after {len(acknowledged)} acknowledged writes; "
            f"{report.scanned} keys on the replicas; all acknowledged writes on all 3 replicas"
        )
    assert checked > 0
    print(f"[crash] {RUNS} runs, {checked} acknowledged writes checked, 0 lost")


def test_repair_throughput_after_an_outage(proxied_cloud, healthy_cloud, tmp_path) -> None:
    urls, proxy = _clouds(proxied_cloud, healthy_cloud)
    count = 200
    with _store(urls, tmp_path / "j.sqlite") as store:
        proxy.refuse()
        for i in range(count):
            store.put(f"bulk/{i:04d}", content_for(f"bulk/{i:04d}"))
        assert store.flush()
        assert store.health()["aws"].pending_repairs == count
        proxy.pass_through()
        store._dispatch.breakers.reset("aws")
        started = time.monotonic()
        report = store.repair()
        elapsed = time.monotonic() - started
        assert (report.repaired, report.pending) == (count, 0)
        assert store.reconcile("bulk/").consistent
    print(f"\n[repair] {count} objects in {elapsed:.2f} s: {count / elapsed:.0f} objects/s")
