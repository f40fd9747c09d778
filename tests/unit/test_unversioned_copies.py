"""A copy without failover metadata is served only when the other holders agree."""

from __future__ import annotations

import pytest

from failover import IntegrityError, Storage
from failover.backends.memory import MemoryBackend
from failover.config import Settings
from failover.payload import Payload


def _store() -> tuple[list[MemoryBackend], Storage]:
    backends = [MemoryBackend(name) for name in ("a", "b", "c")]
    settings = Settings.from_urls(
        ["a", "b", "c"], journal=":memory:", repair_interval_seconds=0, read_policy="ordered"
    )
    return backends, Storage(backends, settings=settings)


def _plain(backend: MemoryBackend, key: str, data: bytes) -> None:
    """Write as another tool would: bytes, no failover metadata."""
    with Payload.from_bytes(data) as payload:
        backend.put(key, payload, content_type="text/plain", metadata={})


def test_a_stripped_copy_that_disagrees_with_a_versioned_replica_is_not_served() -> None:
    backends, store = _store()
    with store:
        store.put("k", b"genuine")
        assert store.flush()
        _plain(backends[0], "k", b"EVIL!!!")  # first in order, metadata stripped
        assert store.get("k") == b"genuine"


def test_an_object_written_by_another_tool_is_served_when_every_holder_agrees() -> None:
    backends, store = _store()
    with store:
        for backend in backends:
            _plain(backend, "imported", b"same bytes")
        assert store.get("imported") == b"same bytes"


def test_unversioned_copies_that_disagree_are_an_integrity_error() -> None:
    backends, store = _store()
    with store:
        _plain(backends[0], "k", b"one story")
        _plain(backends[1], "k", b"another story")
        with pytest.raises(IntegrityError):
            store.get("k")


def test_a_stream_of_a_stripped_copy_ends_in_an_integrity_error() -> None:
    backends, store = _store()
    with store:
        store.put("k", b"genuine")
        assert store.flush()
        _plain(backends[0], "k", b"EVIL!!!")
        with store.open("k") as reader, pytest.raises(IntegrityError, match="other bytes"):
            reader.read()
