"""A streaming upload service on asyncio that keeps working when a cloud is down (FastAPI).

The service of ``webapp.py`` on :mod:`failover.aio`. An upload streams from the request
body into ``store.put`` (spooled to a temporary file while its sha256 is computed, never
held in memory); a download streams from any healthy replica, verified against that
sha256. The Storage lives as long as the app: built at startup, closed at shutdown with
``aclose()``, which waits for replica writes still in flight. Run it with::

    pip install "failover[all,examples]" uvicorn
    export FAILOVER_BACKENDS="s3://acme-uploads,az://acme-uploads,gs://acme-uploads"
    uvicorn examples.fastapi_app:app --port 8000

Every ``FAILOVER_*`` variable applies (``FAILOVER_WRITE_POLICY``, ``FAILOVER_JOURNAL``,
...) and each cloud's SDK finds its credentials as usual. On one machine, three
directories stand in for the clouds::

    export FAILOVER_BACKENDS="file:///tmp/up/aws?name=aws,file:///tmp/up/az?name=az,\\
    file:///tmp/up/gcp?name=gcp"

Then::

    curl -T q3.pdf -H "x-meta-team: finance" http://127.0.0.1:8000/files/reports/q3.pdf
    curl http://127.0.0.1:8000/files/reports/q3.pdf -o q3.pdf
    curl -I http://127.0.0.1:8000/files/reports/q3.pdf       # size, sha256, metadata
    curl "http://127.0.0.1:8000/files?prefix=reports/"
    curl -X DELETE http://127.0.0.1:8000/files/reports/q3.pdf
    curl http://127.0.0.1:8000/health

``create_app(storage_factory)`` builds the application around any async Storage, which
is how ``test_fastapi_outage.py`` tests it through an outage.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from email.utils import format_datetime
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from starlette.requests import ClientDisconnect

import failover.aio
from failover import (
    AllBackendsFailed,
    InvalidKeyError,
    InvalidMetadataError,
    NotFoundError,
    QuorumNotReached,
    Superseded,
)
from failover.types import ObjectInfo

log = logging.getLogger(__name__)

#: Request headers ``x-meta-<name>`` become the object's metadata ``<name>`` (as on S3).
META = "x-meta-"


class Stored(BaseModel):
    """One stored object, as the service describes it."""

    key: str
    size: int
    sha256: str
    version: str
    content_type: str
    last_modified: datetime
    metadata: dict[str, str]

    @classmethod
    def of(cls, info: ObjectInfo) -> Stored:
        return cls(
            key=info.key,
            size=info.size,
            sha256=info.checksum,
            version=info.version,
            content_type=info.content_type,
            last_modified=info.last_modified,
            metadata=dict(info.metadata),
        )


def _store(request: Request) -> failover.aio.Storage:
    store: failover.aio.Storage = request.app.state.store
    return store


Store = Annotated[failover.aio.Storage, Depends(_store)]
router = APIRouter()


@router.put("/files/{key:path}", status_code=201)
async def upload(key: str, request: Request, store: Store) -> Stored:
    metadata = {
        name.removeprefix(META): value
        for name, value in request.headers.items()
        if name.startswith(META)
    }
    info = await store.put(
        key,
        request.stream(),  # chunks as they arrive: the body is never read into memory
        content_type=request.headers.get("content-type"),
        metadata=metadata,
    )
    return Stored.of(info)


@router.get("/files/{key:path}")
async def download(key: str, store: Store) -> StreamingResponse:
    reader = await store.open(key)  # NotFoundError here, before any byte is sent: a 404

    async def chunks() -> AsyncIterator[bytes]:
        async with reader:
            async for chunk in reader:
                yield chunk

    return StreamingResponse(chunks(), headers=_headers(reader.info))


@router.head("/files/{key:path}")
async def describe(key: str, store: Store) -> Response:
    info = await store.head(key)
    return Response(headers=_headers(info))


@router.delete("/files/{key:path}", status_code=204)
async def remove(key: str, store: Store) -> Response:
    await store.delete(key)
    return Response(status_code=204)


@router.get("/files")
async def listing(store: Store, prefix: str = "") -> list[Stored]:
    return [Stored.of(info) async for info in store.list(prefix)]


@router.get("/health")
async def health(store: Store) -> dict[str, dict[str, object]]:
    return {
        name: {"breaker": h.state, "score": round(h.score, 2), "pending": h.pending_repairs}
        for name, h in store.health().items()
    }


def _headers(info: ObjectInfo) -> dict[str, str]:
    # The stored content type as given (no charset added), and the length up front: a
    # download that fails after its first byte can only stop short, which it shows.
    return {
        "content-type": info.content_type,
        "content-length": str(info.size),
        "etag": f'"{info.checksum}"',  # the sha256 of the content: a strong validator
        "last-modified": format_datetime(info.last_modified, usegmt=True),
        **{META + name: value for name, value in info.metadata.items()},
    }


# failover's errors map onto HTTP: the caller's mistake, absence, or "try again later".
# Bodies carry no backend detail (endpoints, buckets): that goes to the server's log.


async def _bad_request(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"error": str(exc)}, status_code=400)


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"error": "not found"}, status_code=404)


async def _superseded(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"error": "a newer write of this key won"}, status_code=409)


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("%s %s: %s", request.method, request.url.path, exc)
    return JSONResponse(
        {"error": "storage unavailable; try again"}, status_code=503, headers={"retry-after": "1"}
    )


async def _client_gone(request: Request, exc: Exception) -> Response:
    # The upload stopped half way: put() raised before writing any replica.
    log.info("%s %s: client disconnected, nothing stored", request.method, request.url.path)
    return Response(status_code=499)  # nginx's "client closed request"; nobody reads it


def create_app(
    storage_factory: Callable[[], failover.aio.Storage] = failover.aio.Storage.from_env,
) -> FastAPI:
    """The upload service; ``storage_factory`` builds its Storage when the app starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with storage_factory() as store:
            app.state.store = store
            yield

    app = FastAPI(
        title="failover uploads",
        lifespan=lifespan,
        exception_handlers={
            InvalidKeyError: _bad_request,
            InvalidMetadataError: _bad_request,
            NotFoundError: _not_found,
            Superseded: _superseded,
            QuorumNotReached: _unavailable,
            AllBackendsFailed: _unavailable,
            ClientDisconnect: _client_gone,
        },
    )
    app.include_router(router)
    return app


#: For ``uvicorn examples.fastapi_app:app``; the Storage is built from the environment
#: when the server starts, not on import.
app = create_app()
