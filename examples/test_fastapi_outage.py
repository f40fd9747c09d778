"""Testing an asyncio application through a cloud outage, with the fixtures failover installs.

Installing failover registers pytest fixtures that start the real emulators:
``moto_server`` (S3), ``azurite_server`` (Azure Blob) and ``fake_gcs_server`` (Cloud
Storage). This test runs the FastAPI service of ``fastapi_app.py`` over all three, with
every backend wrapped in a :class:`~failover.testing.FaultyBackend`; it streams many
uploads and downloads at once while "aws" is down, checks that not one request fails,
and that every replica holds every object once "aws" is back and repaired. Run it with::

    pip install "failover[all,emulators,examples]" pytest && npm install azurite
    pytest examples/test_fastapi_outage.py

The requests go straight to the ASGI app through ``httpx.ASGITransport``, which does not
run the app's lifespan: ``serving()`` runs it, so the Storage is built and closed exactly
as under uvicorn.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi_app import create_app

import failover
import failover.aio
from failover import NotFoundError, Settings
from failover.backends import from_url
from failover.drill import settle_repairs
from failover.errors import BackendUnavailable
from failover.testing import FaultyBackend
from failover.testing.emulators import EmulatorProcess, create_bucket

OBJECTS = 40  # uploaded, and as many downloaded, all at once while aws is down
SIZE = 200_000  # bytes per object, sent in CHUNK-sized pieces
CHUNK = 64 * 1024


@pytest.fixture
def service(
    tmp_path,
    moto_server: EmulatorProcess,
    azurite_server: EmulatorProcess,
    fake_gcs_server: EmulatorProcess,
) -> tuple[FastAPI, dict[str, FaultyBackend]]:
    """The app over a fresh bucket on each emulator, every backend wrapped for faults."""
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

    def storage() -> failover.aio.Storage:
        return failover.aio.Storage(failover.Storage(list(faults.values()), settings=settings))

    return create_app(storage), faults


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Start the app (its lifespan builds the Storage), yield a client, then stop it."""
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://uploads") as client,
    ):
        yield client


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    """An upload body arriving in pieces, as from a socket."""
    for start in range(0, len(data), CHUNK):
        yield data[start : start + CHUNK]


def held_everywhere(faults: dict[str, FaultyBackend], objects: dict[str, bytes]) -> list[str]:
    """Every (replica, key) whose bytes differ from what was uploaded."""
    return [
        f"{name}:{key}"
        for name, backend in faults.items()
        for key, data in objects.items()
        if backend.get(key).data != data
    ]


def test_concurrent_uploads_and_downloads_survive_losing_one_cloud(service) -> None:
    app, faults = service
    before = {f"reports/before-{i}": os.urandom(SIZE) for i in range(OBJECTS)}
    during = {f"reports/during-{i}": os.urandom(SIZE) for i in range(OBJECTS)}

    async def upload(client: httpx.AsyncClient, key: str, data: bytes) -> str | None:
        response = await client.put(f"/files/{key}", content=chunks(data))
        if response.status_code != 201:
            return f"PUT {key}: {response.status_code} {response.text}"
        if response.json()["sha256"] != hashlib.sha256(data).hexdigest():
            return f"PUT {key}: stored a different sha256"
        return None

    async def download(client: httpx.AsyncClient, key: str, data: bytes) -> str | None:
        response = await client.get(f"/files/{key}")
        if response.status_code != 200:
            return f"GET {key}: {response.status_code} {response.text}"
        return None if response.content == data else f"GET {key}: wrong bytes"

    async def main() -> None:
        async with serving(app) as client:
            store: failover.aio.Storage = app.state.store
            seeded = await asyncio.gather(*(upload(client, k, v) for k, v in before.items()))
            assert [problem for problem in seeded if problem] == []
            assert await store.flush()  # every replica has them before aws goes down

            faults["aws"].set(error_rate=1.0, error=BackendUnavailable)  # refuses connections
            outcomes = await asyncio.gather(
                *(upload(client, k, v) for k, v in during.items()),
                *(download(client, k, v) for k, v in before.items()),
                return_exceptions=True,
            )
            assert [o for o in outcomes if o is not None] == []  # not one request failed
            outcomes = await asyncio.gather(*(download(client, k, v) for k, v in during.items()))
            assert [o for o in outcomes if o is not None] == []
            listed = (await client.get("/files", params={"prefix": "reports/"})).json()
            assert [item["key"] for item in listed] == sorted(before | during)

            assert await store.flush()  # aws's own attempts (retries included) are over
            assert store.health()["aws"].pending_repairs == OBJECTS  # it missed every one
            faults["aws"].heal()
            # Replay the writes aws missed; they wait until its breaker admits a trial.
            settled = await asyncio.to_thread(settle_repairs, store.sync, timeout_seconds=30)
            assert settled == (OBJECTS, 0)
            assert await asyncio.to_thread(held_everywhere, faults, before | during) == []

    asyncio.run(main())


def test_errors_map_to_http_statuses_and_say_nothing_of_the_backends(service) -> None:
    app, faults = service

    async def main() -> None:
        async with serving(app) as client:
            assert (await client.get("/files/never-written")).status_code == 404
            assert (await client.head("/files/never-written")).status_code == 404
            assert (await client.put("/files/a//b", content=b"x")).status_code == 400
            metadata = {"x-meta-cost-center": "42"}  # '-' is not portable: use '_'
            assert (await client.put("/files/a", content=b"x", headers=metadata)).status_code == 400
            for backend in faults.values():
                backend.set(error_rate=1.0, error=BackendUnavailable)
            for response in (
                await client.get("/files/anything"),
                await client.put("/files/anything", content=b"x"),
            ):
                assert response.status_code == 503
                assert response.headers["retry-after"] == "1"
                # No endpoint, bucket or backend error reaches the client.
                assert response.json() == {"error": "storage unavailable; try again"}

    asyncio.run(main())


@pytest.mark.parametrize("ending", ["disconnect", "cancel"])
def test_an_upload_abandoned_half_way_stores_nothing(service, ending: str) -> None:
    """A client gone mid-body (``http.disconnect``) or a cancelled request task."""
    app, faults = service
    key = f"half/{ending}"

    async def main() -> None:
        async with serving(app):
            store: failover.aio.Storage = app.state.store
            pulls = 0
            waiting, gone = asyncio.Event(), asyncio.Event()
            sent: list[dict[str, Any]] = []

            async def receive() -> dict[str, Any]:
                # What a server passes on: one piece of the body, then nothing until
                # the client is gone.
                nonlocal pulls
                pulls += 1
                if pulls == 1:
                    return {"type": "http.request", "body": b"first half", "more_body": True}
                waiting.set()
                await gone.wait()
                return {"type": "http.disconnect"}

            async def send(message: dict[str, Any]) -> None:
                sent.append(message)

            scope = {
                "type": "http",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "method": "PUT",
                "scheme": "http",
                "path": f"/files/{key}",
                "raw_path": f"/files/{key}".encode(),
                "query_string": b"",
                "headers": [(b"host", b"uploads")],
                "client": ("127.0.0.1", 50000),
                "server": ("uploads", 80),
                "root_path": "",
            }
            request = asyncio.create_task(app(scope, receive, send))
            await waiting.wait()  # put() has the first piece and waits for the next
            if ending == "cancel":
                request.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await request
                gone.set()  # the body's pending read ends; the abandoned put() gives up
            else:
                gone.set()
                await request
                assert sent[0]["status"] == 499  # nobody reads it; the log says why
            assert await store.flush()
            assert not await store.exists(key)
            assert all(h.pending_repairs == 0 for h in store.health().values())
            for backend in faults.values():
                with pytest.raises(NotFoundError):
                    await asyncio.to_thread(backend.head, key)

    asyncio.run(main())
