"""failover.obspec.Store over the three real emulators: every method, one cloud lost."""

from __future__ import annotations

import asyncio

import pytest
from obspec.exceptions import AlreadyExistsError, NotFoundError, PreconditionError

from failover import Settings, Storage
from failover.backends import from_url
from failover.errors import BackendUnavailable
from failover.obspec import Store
from failover.testing import FaultyBackend
from failover.testing.emulators import EmulatorProcess

from .test_storage_clouds import cloud_urls

pytestmark = pytest.mark.integration


def test_every_obspec_method_on_the_clouds(
    moto_server: EmulatorProcess, azurite_server: EmulatorProcess, fake_gcs_server: EmulatorProcess
) -> None:
    urls = cloud_urls(moto_server, azurite_server, fake_gcs_server)
    with Storage.from_urls(urls, timeout_seconds=5, repair_interval_seconds=0) as storage:
        store = Store(storage)
        put = store.put(
            "t/a.csv", b"x,y\n1,2\n", mode="create", attributes={"Content-Type": "text/csv"}
        )
        with pytest.raises(AlreadyExistsError):
            store.put("t/a.csv", b"again", mode="create")
        store.put("t/a.csv", b"x,y\n3,4\n", mode={"e_tag": put["e_tag"]})
        with pytest.raises(PreconditionError):
            store.put("t/a.csv", b"lost", mode={"e_tag": put["e_tag"]})
        store.put("t/sub/b", iter([b"str", b"eamed"]))

        result = store.get("t/a.csv")
        assert result.attributes["Content-Type"] == "text/csv"
        assert bytes(result.buffer()) == b"x,y\n3,4\n"
        head = store.head("t/a.csv")
        assert head["size"] == 8
        assert head["e_tag"] == head["version"] == storage.head("t/a.csv").version
        assert bytes(store.get_range("t/a.csv", start=4, end=7)) == b"3,4"
        assert [bytes(b) for b in store.get_ranges("t/sub/b", starts=[0, 3], lengths=[3, 5])] == [
            b"str",
            b"eamed",
        ]
        assert bytes(store.get("t/a.csv", options={"range": {"suffix": 4}}).buffer()) == b"3,4\n"

        assert [m["path"] for chunk in store.list("t") for m in chunk] == ["t/a.csv", "t/sub/b"]
        level = store.list_with_delimiter("t")
        assert level["common_prefixes"] == ["t/sub"]
        assert [m["path"] for m in level["objects"]] == ["t/a.csv"]

        store.copy("t/a.csv", "t/copy.csv")
        store.rename("t/copy.csv", "t/moved.csv", overwrite=False)
        assert bytes(store.get("t/moved.csv").buffer()) == b"x,y\n3,4\n"
        with pytest.raises(NotFoundError):
            store.head("t/copy.csv")

        async def read_async() -> bytes:
            return bytes(await (await store.get_async("t/moved.csv")).buffer_async())

        assert asyncio.run(read_async()) == b"x,y\n3,4\n"

        store.delete(["t/a.csv", "t/sub/b", "t/moved.csv"])
        assert list(store.list("t")) == []


def test_losing_a_cloud_is_invisible_to_obspec_callers(
    moto_server: EmulatorProcess, azurite_server: EmulatorProcess, fake_gcs_server: EmulatorProcess
) -> None:
    urls = cloud_urls(moto_server, azurite_server, fake_gcs_server)
    backends = [FaultyBackend(from_url(u, timeout_seconds=2)) for u in urls]
    settings = Settings.from_urls(urls, write_policy="quorum", repair_interval_seconds=0)
    with Storage(backends, settings=settings) as storage:
        store = Store(storage)
        store.put("k", b"before")
        backends[1].set(error_rate=1.0, error=BackendUnavailable)  # azure is gone
        store.put("k", b"during", mode="overwrite")
        assert bytes(store.get("k").buffer()) == b"during"
        assert store.head("k")["size"] == 6
        assert bytes(store.get_range("k", start=1, end=3)) == b"ur"
        assert [m["path"] for chunk in store.list() for m in chunk] == ["k"]
        store.copy("k", "k2")
        store.delete(["k", "k2"])
        backends[1].heal()
        storage.repair()
        assert [m["path"] for chunk in store.list() for m in chunk] == []
