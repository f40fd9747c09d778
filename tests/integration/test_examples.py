"""Every example in examples/ runs, as a user would run it."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from fastapi import FastAPI

import failover.aio
from failover import Settings, Storage
from failover.backends import from_url
from failover.errors import BackendUnavailable
from failover.testing import FaultyBackend

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=EXAMPLES.parent,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        check=False,
    )


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered first, as an import would: pydantic (fastapi_app.py) resolves its
    # models' annotations through sys.modules.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@asynccontextmanager
async def _asgi_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client calling ``app`` in process, with the app's lifespan (startup) run first."""
    transport = httpx.ASGITransport(app=app)  # which does not run the lifespan itself
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://uploads") as client,
    ):
        yield client


def test_quickstart_loses_a_cloud_and_nothing_else() -> None:
    proc = _run(str(EXAMPLES / "quickstart.py"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "read back with 'aws' gone: b'revenue: up'" in proc.stdout
    assert "all three replicas identical: True" in proc.stdout


def test_webapp_serves_uploads_through_an_outage(tmp_path: Path) -> None:
    webapp = _load("webapp")
    urls = [f"file://{tmp_path}/{name}?name={name}" for name in ("aws", "azure", "gcp")]
    faults = {
        name: FaultyBackend(from_url(url))
        for name, url in zip(("aws", "azure", "gcp"), urls, strict=True)
    }
    settings = Settings.from_urls(
        urls, journal=str(tmp_path / "journal.sqlite"), repair_interval_seconds=0
    )
    with Storage(list(faults.values()), settings=settings) as store:
        client = webapp.create_app(store).test_client()
        created = client.put("/files/docs/a.txt", data=b"alpha", content_type="text/plain")
        assert created.status_code == 201
        assert created.get_json()["size"] == 5

        faults["gcp"].set(error_rate=1.0, error=BackendUnavailable)
        download = client.get("/files/docs/a.txt")
        assert download.status_code == 200
        assert download.data == b"alpha"
        assert download.mimetype == "text/plain"
        assert client.put("/files/docs/b.txt", data=b"beta").status_code == 201
        assert client.get("/health").get_json()["gcp"]["pending"] >= 0
        faults["gcp"].heal()

        assert [f["key"] for f in client.get("/files?prefix=docs/").get_json()] == [
            "docs/a.txt",
            "docs/b.txt",
        ]
        assert client.delete("/files/docs/a.txt").status_code == 204
        assert client.get("/files/docs/a.txt").status_code == 404
        assert client.put("/files/..", data=b"x").status_code == 400


def test_fastapi_app_serves_uploads_through_an_outage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fastapi_app = _load("fastapi_app")
    urls = [f"file://{tmp_path}/{name}?name={name}" for name in ("aws", "azure", "gcp")]
    built: list[failover.aio.Storage] = []
    closed: list[failover.aio.Storage] = []

    class Recorded(failover.aio.Storage):
        async def aclose(self) -> None:
            await super().aclose()
            closed.append(self)

    def storage() -> failover.aio.Storage:
        settings = Settings.from_urls(
            urls, journal=str(tmp_path / "journal.sqlite"), repair_interval_seconds=0
        )
        faults = [FaultyBackend(from_url(url)) for url in urls]
        built.append(Recorded(Storage(faults, settings=settings)))
        return built[-1]

    async def body() -> AsyncIterator[bytes]:
        for piece in (b"al", b"ph", b"a"):
            yield piece

    async def main(app: FastAPI) -> None:
        async with _asgi_client(app) as client:
            created = await client.put(
                "/files/docs/a.txt",
                content=body(),
                headers={"content-type": "text/plain", "x-meta-team": "ops"},
            )
            assert created.status_code == 201, created.text
            assert created.json()["size"] == 5
            assert created.json()["metadata"] == {"team": "ops"}

            store: failover.aio.Storage = app.state.store
            gcp = store.backends["gcp"]
            assert isinstance(gcp, FaultyBackend)
            gcp.set(error_rate=1.0, error=BackendUnavailable)
            download = await client.get("/files/docs/a.txt")
            assert download.status_code == 200
            assert download.content == b"alpha"
            assert download.headers["content-type"] == "text/plain"
            described = await client.head("/files/docs/a.txt")
            assert described.headers["content-length"] == "5"
            assert described.headers["x-meta-team"] == "ops"
            assert described.headers["etag"] == f'"{created.json()["sha256"]}"'
            assert (await client.put("/files/docs/b.txt", content=b"beta")).status_code == 201
            assert (await client.get("/health")).json()["gcp"]["pending"] >= 0
            gcp.heal()

            listed = (await client.get("/files", params={"prefix": "docs/"})).json()
            assert [f["key"] for f in listed] == ["docs/a.txt", "docs/b.txt"]
            assert (await client.delete("/files/docs/a.txt")).status_code == 204
            assert (await client.get("/files/docs/a.txt")).status_code == 404
            assert (await client.put("/files/a//b", content=b"x")).status_code == 400

    app = fastapi_app.create_app(storage)
    assert built == []  # nothing is built before the app starts
    asyncio.run(main(app))
    assert len(built) == 1
    assert closed == built  # ...and the lifespan closed what it built

    # `uvicorn examples.fastapi_app:app` builds its Storage from FAILOVER_* at startup.
    monkeypatch.setenv("FAILOVER_BACKENDS", ",".join(urls))
    monkeypatch.setenv("FAILOVER_JOURNAL", str(tmp_path / "env-journal.sqlite"))
    monkeypatch.setenv("FAILOVER_REPAIR_INTERVAL_SECONDS", "0")

    async def from_env(app: FastAPI) -> None:
        async with _asgi_client(app) as client:
            assert (await client.get("/files/docs/b.txt")).content == b"beta"

    asyncio.run(from_env(fastapi_app.app))


@pytest.mark.integration
@pytest.mark.usefixtures("moto_server", "azurite_server", "fake_gcs_server")
@pytest.mark.parametrize(
    ("example", "passed"), [("test_webapp_outage.py", 2), ("test_fastapi_outage.py", 4)]
)
def test_the_pytest_examples_pass(example: str, passed: int) -> None:
    # The session fixtures prove the emulators are installed; the example's own pytest
    # session starts its own through the same plugin.
    proc = _run("-m", "pytest", str(EXAMPLES / example), "-q", "-p", "no:cacheprovider")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{passed} passed" in proc.stdout
