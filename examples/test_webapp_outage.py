"""Testing an application through a cloud outage, with the fixtures failover installs.

Installing failover registers pytest fixtures that start the real emulators:
``moto_server`` (S3), ``azurite_server`` (Azure Blob) and ``fake_gcs_server`` (Cloud
Storage). This test runs the upload service of ``webapp.py`` over all three, takes
"aws" down with a :class:`~failover.testing.FaultyBackend`, and checks that uploads and
downloads keep working and that the replicas converge once it is back. Run it with::

    pip install "failover[all,emulators,examples]" pytest && npm install azurite
    pytest examples/test_webapp_outage.py
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from webapp import create_app

from failover import Settings, Storage
from failover.backends import from_url
from failover.drill import settle_repairs
from failover.errors import BackendUnavailable
from failover.testing import FaultyBackend
from failover.testing.emulators import EmulatorProcess, create_bucket


@pytest.fixture
def clouds(
    tmp_path,
    moto_server: EmulatorProcess,
    azurite_server: EmulatorProcess,
    fake_gcs_server: EmulatorProcess,
) -> Iterator[tuple[Storage, dict[str, FaultyBackend]]]:
    """A Storage over a fresh bucket on each emulator, every backend wrapped for faults."""
    bucket = f"uploads-{uuid.uuid4().hex[:12]}"
    urls = [
        create_bucket(moto_server, bucket, name="aws"),
        create_bucket(azurite_server, bucket, name="azure"),
        create_bucket(fake_gcs_server, bucket, name="gcp"),
    ]
    faults = {}
    for url in urls:
        backend = FaultyBackend(from_url(url, timeout_seconds=2))
        faults[backend.name] = backend
    settings = Settings.from_urls(
        urls,
        write_policy="quorum",
        timeout_seconds=2,
        breaker_fail_max=2,
        breaker_reset_seconds=0.2,
        repair_interval_seconds=0,
        journal=str(tmp_path / "journal.sqlite"),
    )
    with Storage(list(faults.values()), settings=settings) as store:
        yield store, faults


def test_uploads_and_downloads_survive_losing_one_cloud(clouds) -> None:
    store, faults = clouds
    client = create_app(store).test_client()
    assert client.put("/files/reports/q3.txt", data=b"revenue: up").status_code == 201
    assert store.flush()  # every replica has q3 before aws goes down (quorum returns at 2)

    faults["aws"].set(error_rate=1.0, error=BackendUnavailable)  # aws refuses connections

    assert client.get("/files/reports/q3.txt").data == b"revenue: up"
    response = client.put("/files/reports/q4.txt", data=b"written while aws is down")
    assert response.status_code == 201
    assert client.get("/files/reports/q4.txt").data == b"written while aws is down"
    assert [f["key"] for f in client.get("/files?prefix=reports/").get_json()] == [
        "reports/q3.txt",
        "reports/q4.txt",
    ]

    assert store.flush()  # aws's own attempts at the write (retries included) are over
    faults["aws"].heal()
    # Replay the write aws missed; its repairs wait until its breaker admits a trial.
    repaired, pending = settle_repairs(store, timeout_seconds=10)
    assert (repaired, pending) == (1, 0)
    assert store.reconcile().consistent
    assert faults["aws"].get("reports/q4.txt").data == b"written while aws is down"


def test_errors_map_to_http_statuses(clouds) -> None:
    store, faults = clouds
    client = create_app(store).test_client()
    assert client.get("/files/never-written").status_code == 404
    assert client.put("/files/a/../b", data=b"x").status_code == 400
    for backend in faults.values():
        backend.set(error_rate=1.0, error=BackendUnavailable)
    assert client.get("/files/anything").status_code == 503
    assert client.put("/files/anything", data=b"x").status_code == 503
