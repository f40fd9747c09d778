"""What a caller learns when a write cannot be confirmed, and what it leaves behind."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from failover import FailoverError, NotFoundError, QuorumNotReached, Storage
from failover.backends.memory import MemoryBackend
from failover.config import Settings
from failover.errors import BackendUnavailable
from failover.replication.journal import RepairJournal
from failover.testing import FaultyBackend


def _three(tmp_path: Path, **options: object) -> tuple[Storage, list[FaultyBackend]]:
    backends = [FaultyBackend(MemoryBackend(name)) for name in ("a", "b", "c")]
    settings = Settings.from_urls(
        ["a", "b", "c"],
        journal=str(tmp_path / "j.sqlite"),
        repair_interval_seconds=0,
        breaker_fail_max=1000,
        **options,  # type: ignore[arg-type]
    )
    return Storage(backends, settings=settings), backends


def test_quorum_not_reached_is_an_unknown_outcome_naming_the_holders(tmp_path: Path) -> None:
    store, (a, b, c) = _three(tmp_path)
    with store:
        store.put("balance", b"100")
        assert store.flush()
        for backend in (b, c):
            backend.set(error_rate=1.0, error=BackendUnavailable)
        with pytest.raises(QuorumNotReached) as info:
            store.put("balance", b"0")
        short = info.value
        assert (short.operation, short.succeeded, short.required) == ("put", ("a",), 2)
        assert set(short.failed) == {"b", "c"}
        assert short.version is not None
        assert "outcome unknown" in str(short)
        assert "held by: a" in str(short)
        # As documented: the write is on a, may be read, and repair completes it.
        assert store.flush()
        assert a.inner.get("balance").data == b"0"
        for backend in (b, c):
            backend.heal()
        assert store.repair().pending == 0
        for backend in (a, b, c):
            fetched = backend.inner.get("balance")
            assert fetched.data == b"0"
            assert fetched.info.metadata["failover_version"] == short.version  # type: ignore[index]


def test_a_journal_that_cannot_record_stops_the_write_and_leaks_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(spool))
    store, backends = _three(tmp_path)

    def disk_full(*_args: object, **_kwargs: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    with store:
        monkeypatch.setattr(RepairJournal, "record", disk_full)
        big = (b"x" * (1 << 20) for _ in range(12))  # a stream: spooled to a file
        with pytest.raises(FailoverError, match=r"repair journal .* cannot record it") as info:
            store.put("k", big)
        assert "nothing was written" in str(info.value)
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
        assert list(spool.iterdir()) == []  # the spooled copy is gone
        assert store.flush(timeout_seconds=0)  # nothing left marked in flight
        for backend in backends:
            assert backend.calls == {}  # no replica was written


def test_reconcile_skips_a_key_deleted_while_it_runs(tmp_path: Path) -> None:
    store, (a, b, c) = _three(tmp_path, write_policy="all")
    with store:
        store.put("gone", b"v")
        store.put("kept", b"v")
        for key in ("gone", "kept"):
            c.inner.delete(key)  # c lost both: reconcile will copy them back
        # "gone" is deleted everywhere else once the listing is taken: reading it to
        # copy finds nothing. (The wrappers answer "not found" for it from now on.)
        for backend in (a, b):
            backend.set(error_rate=1.0, error=NotFoundError, operations={"get", "open", "head"})
            backend.set(keys={"gone"})
        report = store.reconcile(fix=True)
        assert report.missing["c"] == ("kept",)  # "gone" is not reported: it changed
        assert report.fixed == 1
        assert c.inner.get("kept").data == b"v"
        with pytest.raises(NotFoundError):
            c.inner.get("gone")
