"""Storage over the three real emulators at once, including losing one mid-test."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import pytest

from failover import QuorumNotReached, Storage
from failover.backends import from_url
from failover.backends.base import META_SHA256, META_VERSION
from failover.errors import TransientError
from failover.testing import emulators
from failover.testing.emulators import EmulatorProcess

from ..conftest import unique_bucket

pytestmark = pytest.mark.integration


def cloud_urls(moto: EmulatorProcess, azurite: EmulatorProcess, gcs: EmulatorProcess) -> list[str]:
    return [
        emulators.create_bucket(moto, unique_bucket("s3"), name="aws"),
        emulators.create_bucket(azurite, unique_bucket("az"), name="azure"),
        emulators.create_bucket(gcs, unique_bucket("gs"), name="gcp"),
    ]


@pytest.fixture
def clouds(
    moto_server: EmulatorProcess, azurite_server: EmulatorProcess, fake_gcs_server: EmulatorProcess
) -> list[str]:
    return cloud_urls(moto_server, azurite_server, fake_gcs_server)


def test_replicated_round_trip_in_native_layout(clouds: list[str]) -> None:
    data = os.urandom(50_000)
    with Storage.from_urls(clouds, timeout_seconds=5) as store:
        info = store.put(
            "reports/q3.pdf", data, content_type="application/pdf", metadata={"team": "ops"}
        )
        assert store.get("reports/q3.pdf") == data
        head = store.head("reports/q3.pdf")
        assert (head.size, head.checksum, head.version) == (len(data), info.checksum, info.version)
        assert head.metadata == {"team": "ops"}
        assert head.content_type == "application/pdf"
        assert [i.key for i in store.list("reports/")] == ["reports/q3.pdf"]
        # Each cloud holds the plain object under its own key, with our metadata.
        for name, backend in store.backends.items():
            fetched = backend.get("reports/q3.pdf")
            assert fetched.data == data, name
            assert fetched.info.content_type == "application/pdf"
            assert fetched.info.metadata[META_SHA256] == hashlib.sha256(data).hexdigest()  # type: ignore[index]
            assert fetched.info.metadata[META_VERSION] == info.version  # type: ignore[index]
        store.delete("reports/q3.pdf")
        assert not store.exists("reports/q3.pdf")
        assert list(store.list("reports/")) == []


def test_large_object_streams_through_all_three(clouds: list[str]) -> None:
    data = os.urandom(20 * 1024 * 1024)
    with Storage.from_urls(clouds, write_policy="all", timeout_seconds=30) as store:
        store.put("big.bin", (data[i : i + (1 << 20)] for i in range(0, len(data), 1 << 20)))
        digest = hashlib.sha256()
        with store.open("big.bin") as reader:
            for chunk in reader:
                digest.update(chunk)
        assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
        for backend in store.backends.values():
            assert backend.head("big.bin").size == len(data)


@pytest.fixture
def private_clouds() -> Iterator[tuple[list[EmulatorProcess], list[str]]]:
    """A private set of emulators that a test may kill."""
    started: list[EmulatorProcess] = []
    try:
        for kind in emulators.KINDS:
            emu = emulators.start(kind)
            emulators.apply_env(emu)
            started.append(emu)
        yield started, cloud_urls(*started)
    finally:
        for emu in started:
            emu.stop()


def test_one_emulator_killed_mid_test(
    private_clouds: tuple[list[EmulatorProcess], list[str]],
) -> None:
    procs, urls = private_clouds
    keys = [f"k/{i}" for i in range(10)]
    # Generous timeouts: the live emulators must answer within them however loaded the
    # machine is, and the killed one refuses at once, so they cost no waiting.
    with (
        Storage.from_urls(urls, timeout_seconds=10, deadline_seconds=30) as store,
        Storage.from_urls(urls, write_policy="all", timeout_seconds=10) as strict,
    ):
        for key in keys:
            store.put(key, key.encode())
        assert procs[1].running, "azurite ended on its own before the test killed it"
        procs[1].kill()  # azurite dies: connections are refused from now on
        assert not procs[1].running

        for key in keys:
            assert store.get(key) == key.encode()
        assert [i.key for i in store.list("k/")] == sorted(keys)

        info = store.put("after/quorum", b"still writable")
        assert info.backend == "aws"
        assert store.get("after/quorum") == b"still writable"

        with pytest.raises(QuorumNotReached) as err:
            strict.put("after/all", b"needs three")
        assert set(err.value.succeeded) == {"aws", "gcp"}
        assert list(err.value.failed) == ["azure"]
        assert isinstance(err.value.failed["azure"], TransientError)


def test_backend_urls_round_trip_through_from_url(clouds: list[str]) -> None:
    for url in clouds:
        backend = from_url(url)
        try:
            assert list(backend.list()) == []
        finally:
            backend.close()
