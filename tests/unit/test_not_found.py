"""NotFoundError means not found: proven by enough answers, never by an outage."""

from __future__ import annotations

from pathlib import Path

import pytest

from failover import AllBackendsFailed, NotFoundError, Storage
from failover.backends.memory import MemoryBackend
from failover.config import Settings
from failover.errors import BackendUnavailable, PermissionDeniedError
from failover.testing import FaultyBackend


def _three(tmp_path: Path, **options: object) -> tuple[Storage, list[FaultyBackend]]:
    backends = [FaultyBackend(MemoryBackend(name)) for name in ("a", "b", "c")]
    settings = Settings.from_urls(
        ["a", "b", "c"],
        journal=str(tmp_path / "j.sqlite"),
        read_policy="ordered",
        repair_interval_seconds=0,
        **options,  # type: ignore[arg-type]
    )
    return Storage(backends, settings=settings), backends


def _down(*backends: FaultyBackend) -> None:
    for backend in backends:
        backend.set(error_rate=1.0, error=BackendUnavailable)


@pytest.mark.parametrize("failure", [BackendUnavailable, PermissionDeniedError])
def test_an_acknowledged_object_whose_only_holder_fails_is_not_reported_missing(
    tmp_path: Path, failure: type[Exception]
) -> None:
    store, (a, b, c) = _three(tmp_path, write_policy="one", breaker_fail_max=1000)
    with store:
        _down(a, c)
        store.put("k", b"acknowledged")  # by b alone; a and c missed it (journaled)
        assert store.flush()
        a.heal()
        c.heal()
        # The only holder fails (down, or its credentials revoked); a and c answer
        # "not found", but the journal knows they missed the write.
        b.set(error_rate=1.0, error=failure)
        with pytest.raises(AllBackendsFailed) as info:
            store.get("k")
        assert set(info.value.errors) == {"a", "b", "c"}
        assert isinstance(info.value.errors["b"], failure)
        with pytest.raises(AllBackendsFailed):
            store.exists("k")
        b.heal()
        assert store.get("k") == b"acknowledged"


def test_a_quorum_of_answers_proves_absence_with_one_cloud_down(tmp_path: Path) -> None:
    store, (a, _, _) = _three(tmp_path)  # quorum: W = 2, so 2 answers of 3 suffice
    with store:
        _down(a)
        with pytest.raises(NotFoundError):
            store.get("never-written")
        assert store.exists("never-written") is False


def test_with_single_acknowledgements_every_replica_must_answer(tmp_path: Path) -> None:
    store, (a, _, _) = _three(tmp_path, write_policy="one")  # W = 1: all 3 must answer
    with store:
        assert store.exists("never-written") is False
        _down(a)
        with pytest.raises(AllBackendsFailed):
            store.exists("never-written")


def test_a_replica_that_missed_a_delete_counts_as_not_holding_the_key(tmp_path: Path) -> None:
    store, (a, b, _) = _three(tmp_path)
    with store:
        store.put("k", b"v")
        assert store.flush()
        _down(a)
        store.delete("k")  # a missed it: it still holds "k" but is not asked
        assert store.flush()
        a.heal()
        _down(b)  # answers: a (missed the delete: absent), c (absent); b down
        with pytest.raises(NotFoundError):
            store.get("k")
