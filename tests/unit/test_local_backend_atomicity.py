"""file:// writes change an object's bytes and metadata together, never one without the other."""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

import pytest

from failover.backends import from_url
from failover.backends.base import META_SHA256
from failover.backends.local import LocalBackend
from failover.payload import Payload


def _put(backend: LocalBackend, key: str, data: bytes) -> None:
    with Payload.from_bytes(data) as payload:
        backend.put(key, payload, content_type="text/plain", metadata={META_SHA256: data.hex()})


def _lock_is_held(root: Path) -> bool:
    with open(root / ".failover" / "lock", "a+b") as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
        return False


def test_a_plain_put_renames_bytes_and_sidecar_under_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = from_url(f"file://{tmp_path}")
    assert isinstance(backend, LocalBackend)
    _put(backend, "k", b"first")
    seen: list[bool] = []
    real_replace = os.replace

    def replace(src: str, dst: str) -> None:
        real_replace(src, dst)
        if not str(dst).endswith(".json"):  # between the bytes and the sidecar
            seen.append(_lock_is_held(tmp_path))

    monkeypatch.setattr("failover.backends.local.os.replace", replace)
    _put(backend, "k", b"second")  # unconditional: no if_absent, no if_match
    # Another writer (or a reader) could not have slipped in between the two renames.
    assert seen == [True]


def test_a_reader_waits_for_a_write_in_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = from_url(f"file://{tmp_path}")
    assert isinstance(backend, LocalBackend)
    _put(backend, "k", b"old")
    between = threading.Event()
    release = threading.Event()
    real_replace = os.replace

    def replace(src: str, dst: str) -> None:
        real_replace(src, dst)
        if not str(dst).endswith(".json"):
            between.set()
            assert release.wait(30)

    monkeypatch.setattr("failover.backends.local.os.replace", replace)
    writer = threading.Thread(target=_put, args=(backend, "k", b"new!"))
    writer.start()
    assert between.wait(30)  # the new bytes are in place, the sidecar is not yet
    reads: list[tuple[bytes, str]] = []

    def read() -> None:
        fetched = backend.get("k")
        reads.append((fetched.data, (fetched.info.metadata or {})[META_SHA256]))

    reader = threading.Thread(target=read)
    reader.start()
    reader.join(timeout=0.5)  # it cannot finish: the write holds the lock
    blocked = reader.is_alive()
    release.set()
    writer.join(timeout=30)
    reader.join(timeout=30)
    assert blocked
    assert reads == [(b"new!", b"new!".hex())]  # bytes and metadata of one write
