"""Journal rows belong to one configuration: scoped by replica identity, never by name."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from failover import ConfigError, Storage
from failover.backends import from_url
from failover.backends.base import replica_identity
from failover.backends.memory import MemoryBackend
from failover.config import Settings
from failover.errors import BackendUnavailable
from failover.replication.journal import RepairJournal
from failover.testing import FaultyBackend

from ..conftest import deleted_on


@pytest.fixture
def buckets() -> Iterator[tuple[str, str]]:
    """Two in-process memory buckets, forgotten after the test."""
    names = (f"s3-{uuid.uuid4().hex[:8]}", f"az-{uuid.uuid4().hex[:8]}")
    yield names
    for name in names:
        MemoryBackend.forget(name)


def _app(buckets: tuple[str, str], prefix: str, journal: Path) -> tuple[Storage, FaultyBackend]:
    """An application storing under ``prefix`` in both buckets, naming them aws and azure."""
    first = from_url(f"memory://{buckets[0]}/{prefix}?name=aws")
    second = FaultyBackend(from_url(f"memory://{buckets[1]}/{prefix}?name=azure"))
    settings = Settings.from_urls(
        ["aws", "azure"], journal=str(journal), write_policy="one", repair_interval_seconds=0
    )
    return Storage([first, second], settings=settings), second


def test_two_configurations_sharing_a_journal_never_act_on_each_others_rows(
    buckets: tuple[str, str], tmp_path: Path
) -> None:
    journal = tmp_path / "journal.sqlite"  # one file, as with the default path
    app1, app1_azure = _app(buckets, "app1", journal)
    app2, _ = _app(buckets, "app2", journal)
    with app1, app2:
        app2.put("report", b"app2 data")
        app1.put("report", b"app1 data")
        assert app1.flush()
        assert app2.flush()
        # app1's delete misses its azure replica: a pending delete for app1's azure.
        app1_azure.set(error_rate=1.0, error=BackendUnavailable)
        app1.delete("report")
        assert app1.flush()
        app1_azure.heal()
        assert app1.health()["azure"].pending_repairs == 1
        assert app2.health()["azure"].pending_repairs == 0  # same name, other place

        report = app2.repair()
        assert (report.repaired, report.pending) == (0, 0)
        assert app2.get("report") == b"app2 data"  # its own object is untouched
        assert app2.backends["azure"].get("report").data == b"app2 data"

        assert app1.repair().repaired == 1  # app1's own row, applied to app1's object
        assert deleted_on(app1.backends["azure"], "report")
        assert app2.get("report") == b"app2 data"


def test_configurations_over_the_same_places_share_their_rows(
    buckets: tuple[str, str], tmp_path: Path
) -> None:
    journal = tmp_path / "journal.sqlite"
    writer, azure = _app(buckets, "shared", journal)
    with writer:
        azure.set(error_rate=1.0, error=BackendUnavailable)
        writer.put("k", b"v")
        assert writer.flush()
    # Another configuration over the same buckets and prefix, naming them differently.
    other = Storage.from_urls(
        [f"memory://{buckets[0]}/shared?name=a", f"memory://{buckets[1]}/shared?name=b"],
        journal=str(journal),
        repair_interval_seconds=0,
    )
    with other:
        assert other.health()["b"].pending_repairs == 1
        assert other.repair().repaired == 1
        assert other.backends["b"].get("k").data == b"v"


def test_one_place_configured_twice_is_refused(buckets: tuple[str, str], tmp_path: Path) -> None:
    urls = [f"memory://{buckets[0]}/p?name=one", f"memory://{buckets[0]}/p?name=two"]
    with pytest.raises(ConfigError, match="one storage location"):
        Storage.from_urls(urls, journal=str(tmp_path / "j.sqlite"))


def test_rows_of_an_unscoped_file_are_adopted_once_by_the_first_configuration(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.sqlite"
    RepairJournal(str(path)).close()  # the schema, rows keyed by name (version 0)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 0")
        conn.execute(
            "INSERT INTO actions (backend, key, version, op, created, updated) "
            "VALUES ('aws', 'k', 'v1', 'put', 0, 0)"
        )
    first = RepairJournal(str(path), replicas={"aws": "s3|here|b|", "azure": "az|here|c|"})
    assert [(a.backend, a.key) for a in first.pending()] == [("aws", "k")]
    first.close()
    # A second configuration naming a backend aws elsewhere does not see that row.
    second = RepairJournal(str(path), replicas={"aws": "s3|here|b|other/"})
    assert second.pending() == []
    assert second.counts() == {}
    second.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        assert conn.execute("SELECT backend FROM actions").fetchall() == [("s3|here|b|",)]


def test_a_journal_refuses_a_backend_outside_its_scope(tmp_path: Path) -> None:
    journal = RepairJournal(str(tmp_path / "j.sqlite"), replicas={"aws": "s3|x|b|"})
    with pytest.raises(ValueError, match="not one of this journal's replicas"):
        journal.record(["gcp"], "k", "v1", "put")
    journal.close()


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("s3://b/p1?endpoint_url=http://127.0.0.1:1", "s3://b/p2?endpoint_url=http://127.0.0.1:1"),
        ("s3://b/p?endpoint_url=http://127.0.0.1:1", "s3://b/p?endpoint_url=http://127.0.0.1:2"),
        ("s3://b1/p?endpoint_url=http://127.0.0.1:1", "s3://b2/p?endpoint_url=http://127.0.0.1:1"),
        (
            "az://c/p1?account_url=http://127.0.0.1:1/acct",
            "az://c/p2?account_url=http://127.0.0.1:1/acct",
        ),
        (
            "az://c/p?account_url=http://127.0.0.1:1/acct1",
            "az://c/p?account_url=http://127.0.0.1:1/acct2",
        ),
        ("gs://b/p1?endpoint=http://127.0.0.1:1", "gs://b/p2?endpoint=http://127.0.0.1:1"),
        ("gs://b/p?endpoint=http://127.0.0.1:1", "gs://b/p?endpoint=http://127.0.0.1:2"),
    ],
)
def test_identities_tell_places_apart_whatever_their_names(
    one: str, other: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AZURE_STORAGE_KEY", "dGVzdGluZw==")
    built = [from_url(f"{url}&name=same") for url in (one, other)]
    try:
        assert replica_identity(built[0]) != replica_identity(built[1])
        renamed = from_url(one.replace("name=same", "") + "&name=renamed")
        try:
            assert replica_identity(renamed) == replica_identity(built[0])
        finally:
            renamed.close()
    finally:
        for backend in built:
            backend.close()


def test_file_identity_resolves_the_directory(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    direct = from_url(f"file://{tmp_path / 'real'}?name=a")
    linked = from_url(f"file://{tmp_path / 'link'}?name=b")
    assert replica_identity(direct) == replica_identity(linked)
    assert replica_identity(FaultyBackend(direct)) == replica_identity(direct)
