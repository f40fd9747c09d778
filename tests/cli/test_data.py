"""``failover put``, ``get``, ``ls`` and ``rm`` over in-process backends."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from failover.backends import from_url

from ..conftest import deleted_on
from .conftest import Invoke


@pytest.fixture
def backends_arg(memory_urls: list[str]) -> list[str]:
    return ["--backends", ",".join(memory_urls)]


def test_put_from_a_file_then_get_to_stdout(
    failover_cli: Invoke, backends_arg: list[str], memory_urls: list[str], tmp_path: Path
) -> None:
    source = tmp_path / "q3.pdf"
    source.write_bytes(b"%PDF revenue: up")
    stored = failover_cli(*backends_arg, "put", "reports/q3.pdf", str(source), "--meta", "team=ops")
    assert stored.exit_code == 0, stored.output
    assert "stored reports/q3.pdf: 16 bytes" in stored.output
    assert hashlib.sha256(b"%PDF revenue: up").hexdigest()[:16] in stored.output
    for url in memory_urls:  # on every replica
        assert from_url(url).get("reports/q3.pdf").data == b"%PDF revenue: up"

    fetched = failover_cli(*backends_arg, "get", "reports/q3.pdf")
    assert fetched.exit_code == 0
    assert fetched.stdout_bytes == b"%PDF revenue: up"


def test_put_from_stdin_and_get_to_a_file(
    failover_cli: Invoke, backends_arg: list[str], tmp_path: Path
) -> None:
    assert failover_cli(*backends_arg, "put", "k.bin", input=b"\x00\x01binary").exit_code == 0
    target = tmp_path / "out.bin"
    fetched = failover_cli(*backends_arg, "get", "k.bin", "-o", str(target))
    assert fetched.exit_code == 0
    assert target.read_bytes() == b"\x00\x01binary"


def test_ls_lists_each_key_once_in_order(failover_cli: Invoke, backends_arg: list[str]) -> None:
    for key in ("b/2", "a/1", "b/1"):
        assert failover_cli(*backends_arg, "put", key, input=key.encode()).exit_code == 0
    listed = failover_cli(*backends_arg, "ls")
    assert listed.exit_code == 0
    assert listed.stdout.splitlines() == ["a/1", "b/1", "b/2"]
    under = failover_cli(*backends_arg, "ls", "b/", "--json")
    assert [item["key"] for item in json.loads(under.stdout)] == ["b/1", "b/2"]
    long = failover_cli(*backends_arg, "ls", "--long")
    assert "size" in long.stdout
    assert "a/1" in long.stdout


def test_rm_deletes_from_every_replica(
    failover_cli: Invoke, backends_arg: list[str], memory_urls: list[str]
) -> None:
    failover_cli(*backends_arg, "put", "gone", input=b"x")
    removed = failover_cli(*backends_arg, "rm", "gone", "never-existed")
    assert removed.exit_code == 0
    assert "deleted gone" in removed.stdout
    # Each replica keeps the delete as a marker for the grace period, never the object.
    assert all(deleted_on(from_url(url), "gone") for url in memory_urls)
    assert failover_cli(*backends_arg, "ls").stdout.splitlines() == []


def test_get_of_a_missing_key_fails(failover_cli: Invoke, backends_arg: list[str]) -> None:
    result = failover_cli(*backends_arg, "get", "nothing-here")
    assert result.exit_code == 1
    assert "not found: nothing-here" in result.output


def test_bad_metadata_and_bad_keys_are_usage_errors(
    failover_cli: Invoke, backends_arg: list[str], tmp_path: Path
) -> None:
    no_equals = failover_cli(*backends_arg, "put", "k", "--meta", "team", input=b"x")
    assert no_equals.exit_code == 2
    assert "NAME=VALUE" in no_equals.output
    bad_key = failover_cli(*backends_arg, "put", "a/../b", input=b"x")
    assert bad_key.exit_code == 2
    no_file = failover_cli(*backends_arg, "put", "k", str(tmp_path / "absent"))
    assert no_file.exit_code == 2
    assert "no such file" in no_file.output
