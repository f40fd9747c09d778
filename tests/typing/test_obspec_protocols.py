"""failover.obspec.Store satisfies obspec's protocols, checked as obspec checks them.

obspec has no runtime conformance suite: its protocols are structural, so conformance is
a type-checking question. ``nox -s types`` runs ``mypy --strict`` on this module; each
assignment below fails type checking if ``Store`` drifts from the protocol. Run by
pytest, it also checks that the assignments hold at runtime on a real store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import obspec
import pytest

from failover import Storage
from failover.backends.memory import MemoryBackend
from failover.obspec import Store


@pytest.fixture
def store() -> Iterator[Store]:
    names = ["typing-obspec-a", "typing-obspec-b", "typing-obspec-c"]
    storage = Storage.from_urls([f"memory://{n}" for n in names], repair_interval_seconds=0)
    try:
        yield Store(storage)
    finally:
        storage.close()
        for name in names:
            MemoryBackend.forget(name)


def _all_are(store: Store, *views: object) -> None:
    assert all(view is store for view in views)


def test_store_satisfies_every_sync_protocol(store: Store) -> None:
    get: obspec.Get = store
    get_range: obspec.GetRange = store
    get_ranges: obspec.GetRanges = store
    put: obspec.Put = store
    head: obspec.Head = store
    listing: obspec.List = store
    listing_with_delimiter: obspec.ListWithDelimiter = store
    delete: obspec.Delete = store
    copy: obspec.Copy = store
    rename: obspec.Rename = store
    _all_are(store, get, get_range, get_ranges, put, head, listing, listing_with_delimiter)
    _all_are(store, delete, copy, rename)


def test_store_satisfies_every_async_protocol(store: Store) -> None:
    get: obspec.GetAsync = store
    get_range: obspec.GetRangeAsync = store
    get_ranges: obspec.GetRangesAsync = store
    put: obspec.PutAsync = store
    head: obspec.HeadAsync = store
    listing: obspec.ListAsync = store
    listing_with_delimiter: obspec.ListWithDelimiterAsync = store
    delete: obspec.DeleteAsync = store
    copy: obspec.CopyAsync = store
    rename: obspec.RenameAsync = store
    _all_are(store, get, get_range, get_ranges, put, head, listing, listing_with_delimiter)
    _all_are(store, delete, copy, rename)


def test_get_results_satisfy_obspecs_result_protocols(store: Store) -> None:
    store.put("k", b"data")
    result: obspec.GetResult = store.get("k")
    assert bytes(result.buffer()) == b"data"

    async def read() -> bytes:
        answer: obspec.GetResultAsync = await store.get_async("k")
        return bytes(await answer.buffer_async())

    assert asyncio.run(read()) == b"data"
