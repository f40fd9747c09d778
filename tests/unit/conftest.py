"""Fixtures of the unit tests: application instances over shared memory replicas."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from failover import Storage
from failover.backends import from_url
from failover.backends.memory import MemoryBackend
from failover.config import Settings
from failover.testing import FaultyBackend


@pytest.fixture
def urls() -> Iterator[list[str]]:
    stores = [f"replica-{uuid.uuid4().hex[:8]}-{n}" for n in "abc"]
    yield [f"memory://{s}?name={n}" for s, n in zip(stores, "abc", strict=True)]
    for store in stores:
        MemoryBackend.forget(store)


def host(urls: Sequence[str], journal: Path | str, **options: object) -> Storage:
    """One application instance: its own backends (with fault injectors) and journal."""
    backends = [FaultyBackend(from_url(u)) for u in urls]
    options.setdefault("repair_interval_seconds", 0)
    settings = Settings.from_urls(urls, journal=str(journal), **options)  # type: ignore[arg-type]
    return Storage(backends, settings=settings)


def faulty(store: Storage, name: str) -> FaultyBackend:
    backend = store.backends[name]
    assert isinstance(backend, FaultyBackend)
    return backend
