"""failover.obspec.Store: every obspec method and mode, over three memory replicas."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from obspec.exceptions import (
    AlreadyExistsError,
    InvalidPathError,
    NotFoundError,
    NotModifiedError,
    NotSupportedError,
    PreconditionError,
    map_exception,
)

import failover
import failover.aio
from failover.backends.memory import MemoryBackend
from failover.errors import BackendUnavailable
from failover.obspec import LIST_CHUNK_SIZE, Store

from .conftest import faulty, host


@pytest.fixture
def storage(urls: list[str], tmp_path: Path) -> Iterator[failover.Storage]:
    with host(urls, tmp_path / "journal", write_policy="quorum") as storage:
        yield storage


@pytest.fixture
def store(storage: failover.Storage) -> Store:
    return Store(storage)


# -- get, get_range, get_ranges ---------------------------------------------------------


def test_get_returns_meta_attributes_and_streamed_bytes(store: Store) -> None:
    put = store.put("a/b.csv", b"x,y\n1,2\n", attributes={"Content-Type": "text/csv", "team": "q"})
    result = store.get("a/b.csv")
    meta = result.meta
    assert meta["path"] == "a/b.csv"
    assert meta["size"] == 8
    assert meta["e_tag"] == meta["version"] == put["version"] == put["e_tag"]
    assert meta["last_modified"].tzinfo is not None
    assert result.attributes == {"Content-Type": "text/csv", "team": "q"}
    assert result.range == (0, 8)
    assert b"".join(result) == b"x,y\n1,2\n"


def test_get_buffer_reads_everything(store: Store) -> None:
    store.put("k", b"0123456789")
    assert bytes(store.get("k").buffer()) == b"0123456789"


@pytest.mark.parametrize(
    ("byte_range", "expected", "span"),
    [
        ((2, 5), b"234", (2, 5)),
        ((8, 100), b"89", (8, 10)),
        ({"offset": 7}, b"789", (7, 10)),
        ({"suffix": 3}, b"789", (7, 10)),
        ({"suffix": 30}, b"0123456789", (0, 10)),
    ],
)
def test_get_with_a_range(
    store: Store, byte_range: object, expected: bytes, span: tuple[int, int]
) -> None:
    store.put("k", b"0123456789")
    result = store.get("k", options={"range": byte_range})  # type: ignore[typeddict-item]
    assert bytes(result.buffer()) == expected
    assert result.range == span


@pytest.mark.parametrize("byte_range", [(3, 3), (10, 12), {"offset": 10}])
def test_get_rejects_empty_ranges_and_ranges_past_the_end(store: Store, byte_range: object) -> None:
    store.put("k", b"0123456789")
    with pytest.raises(ValueError, match="range"):
        store.get("k", options={"range": byte_range})  # type: ignore[typeddict-item]


def test_get_head_option_transfers_no_bytes(store: Store) -> None:
    store.put("k", b"abc")
    result = store.get("k", options={"head": True})
    assert result.meta["size"] == 3
    assert bytes(result.buffer()) == b""


def test_get_conditions(store: Store) -> None:
    version = store.put("k", b"abc")["e_tag"]
    assert version is not None
    modified = store.head("k")["last_modified"]
    assert bytes(store.get("k", options={"if_match": version}).buffer()) == b"abc"
    assert bytes(store.get("k", options={"if_match": f'"{version}"'}).buffer()) == b"abc"
    assert bytes(store.get("k", options={"if_match": "*"}).buffer()) == b"abc"
    assert bytes(store.get("k", options={"if_none_match": "other"}).buffer()) == b"abc"
    assert bytes(store.get("k", options={"version": version}).buffer()) == b"abc"
    with pytest.raises(PreconditionError):
        store.get("k", options={"if_match": "other"})
    with pytest.raises(NotModifiedError):
        store.get("k", options={"if_none_match": version})
    # Replicas stamp their own times (microseconds apart): compare an hour away.
    with pytest.raises(NotModifiedError):
        store.get("k", options={"if_modified_since": modified + timedelta(hours=1)})
    assert store.get("k", options={"if_modified_since": modified - timedelta(hours=1)})
    assert store.get("k", options={"if_unmodified_since": modified + timedelta(hours=1)})
    with pytest.raises(PreconditionError):
        store.get("k", options={"if_unmodified_since": modified - timedelta(hours=1)})
    with pytest.raises(NotFoundError):
        store.get("k", options={"version": "0000000000000001.000000.old"})


def test_get_range_and_get_ranges(store: Store) -> None:
    store.put("k", b"0123456789")
    assert bytes(store.get_range("k", start=2, end=4)) == b"23"
    assert bytes(store.get_range("k", start=2, length=3)) == b"234"
    assert bytes(store.get_range("k", start=8, end=50)) == b"89"
    assert [bytes(b) for b in store.get_ranges("k", starts=[0, 5], ends=[2, 7])] == [
        b"01",
        b"56",
    ]
    assert [bytes(b) for b in store.get_ranges("k", starts=[1, 9], lengths=[2, 1])] == [
        b"12",
        b"9",
    ]


def test_get_range_argument_errors(store: Store) -> None:
    store.put("k", b"0123456789")
    with pytest.raises(ValueError, match="exactly one"):
        store.get_range("k", start=0)
    with pytest.raises(ValueError, match="exactly one"):
        store.get_range("k", start=0, end=1, length=1)
    with pytest.raises(ValueError, match="empty range"):
        store.get_range("k", start=3, end=3)
    with pytest.raises(ValueError, match="exactly one"):
        store.get_ranges("k", starts=[0])
    with pytest.raises(ValueError, match="starts"):
        store.get_ranges("k", starts=[0, 1], ends=[1])


# -- head and errors --------------------------------------------------------------------


def test_head_describes_the_object(store: Store, storage: failover.Storage) -> None:
    store.put("k", b"abc")
    meta = store.head("k")
    info = storage.head("k")
    assert meta == {
        "path": "k",
        "last_modified": meta["last_modified"],
        "size": 3,
        "e_tag": info.version,
        "version": info.version,
    }


def test_missing_objects_raise_obspecs_not_found_with_failovers_cause(store: Store) -> None:
    for call in (
        lambda: store.head("missing"),
        lambda: store.get("missing"),
        lambda: store.get_range("missing", start=0, end=1),
        lambda: store.copy("missing", "other"),
        lambda: store.rename("missing", "other"),
    ):
        with pytest.raises(NotFoundError) as caught:
            call()
        assert isinstance(caught.value, FileNotFoundError)
        assert isinstance(caught.value.__cause__, failover.NotFoundError)
        assert isinstance(map_exception(caught.value), NotFoundError)


def test_invalid_paths_raise_invalid_path_error(store: Store) -> None:
    with pytest.raises(InvalidPathError):
        store.head("/leading-slash")
    with pytest.raises(InvalidPathError):
        store.put("a//b", b"x")


# -- put modes --------------------------------------------------------------------------


def test_put_accepts_every_obspec_input(store: Store, tmp_path: Path) -> None:
    local = tmp_path / "local.bin"
    local.write_bytes(b"from a path")
    inputs: dict[str, object] = {
        "bytes": b"plain bytes",
        "memoryview": memoryview(b"a memoryview"),
        "bytearray": bytearray(b"a bytearray"),
        "path": local,
        "file": local.open("rb"),
        "iterator": iter([b"it", memoryview(b"er"), bytearray(b"ator")]),
        "iterable": [b"iter", b"able"],
    }
    expected = {
        "bytes": b"plain bytes",
        "memoryview": b"a memoryview",
        "bytearray": b"a bytearray",
        "path": b"from a path",
        "file": b"from a path",
        "iterator": b"iterator",
        "iterable": b"iterable",
    }
    for name, data in inputs.items():
        store.put(name, data)  # type: ignore[arg-type]
    inputs["file"].close()  # type: ignore[attr-defined]
    for name, content in expected.items():
        assert bytes(store.get(name).buffer()) == content, name


def test_put_overwrite_is_the_default(store: Store) -> None:
    first = store.put("k", b"one")
    second = store.put("k", b"two", mode="overwrite")
    assert first["version"] != second["version"]
    assert bytes(store.get("k").buffer()) == b"two"


def test_put_create_refuses_an_existing_object(store: Store) -> None:
    store.put("k", b"one", mode="create")
    with pytest.raises(AlreadyExistsError):
        store.put("k", b"two", mode="create")
    assert bytes(store.get("k").buffer()) == b"one"


def test_put_update_version_is_a_checked_write(store: Store) -> None:
    first = store.put("k", b"one")
    second = store.put("k", b"two", mode={"e_tag": first["e_tag"]})
    third = store.put("k", b"three", mode={"version": second["version"]})
    store.put("k", b"four", mode={"e_tag": third["e_tag"], "version": third["version"]})
    assert bytes(store.get("k").buffer()) == b"four"
    with pytest.raises(PreconditionError):  # a stale version
        store.put("k", b"five", mode={"e_tag": first["e_tag"]})
    with pytest.raises(PreconditionError):  # nothing to update
        store.put("missing", b"x", mode={"e_tag": first["e_tag"]})
    with pytest.raises(ValueError, match="e_tag or a version"):
        store.put("k", b"x", mode={})
    with pytest.raises(TypeError):
        store.put("k", b"x", mode="append")  # type: ignore[arg-type]
    assert bytes(store.get("k").buffer()) == b"four"


def test_put_attributes_and_tags(store: Store) -> None:
    store.put("k.json", b"{}")
    assert store.get("k.json").attributes == {"Content-Type": "application/json"}
    with pytest.raises(NotSupportedError):
        store.put("k", b"x", tags={"a": "b"})
    with pytest.raises(NotSupportedError):
        store.put("k", b"x", attributes={"Cache-Control": "no-cache"})
    with pytest.raises(failover.InvalidMetadataError):
        store.put("k", b"x", attributes={"Not-An-Identifier": "v"})


# -- list, list_with_delimiter ----------------------------------------------------------


def _paths(chunks: Iterator[object]) -> list[str]:
    return [meta["path"] for chunk in chunks for meta in chunk]  # type: ignore[attr-defined,index]


def test_list_is_recursive_segment_prefixed_and_chunked(store: Store) -> None:
    for key in ("foo/bar/x", "foo/bar/more/y", "foo/bar_baz/z", "other"):
        store.put(key, b"v")
    assert _paths(store.list()) == ["foo/bar/more/y", "foo/bar/x", "foo/bar_baz/z", "other"]
    assert _paths(store.list("foo/bar")) == ["foo/bar/more/y", "foo/bar/x"]
    assert _paths(store.list("foo/bar/")) == ["foo/bar/more/y", "foo/bar/x"]
    assert _paths(store.list("foo", offset="foo/bar/x")) == ["foo/bar_baz/z"]
    assert _paths(store.list("nothing")) == []
    first = next(store.list())
    assert first[0]["size"] == 1


def test_list_chunks_hold_at_most_the_chunk_size(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("failover.obspec.LIST_CHUNK_SIZE", 2)
    for n in range(5):
        store.put(f"p/{n}", b"v")
    assert [len(c) for c in store.list("p")] == [2, 2, 1]
    assert LIST_CHUNK_SIZE == 1000


def test_list_with_delimiter_gives_one_level(store: Store) -> None:
    for key in ("top", "foo/a", "foo/bar/x", "foo/bar/y", "foo/baz/z", "foo/bar_baz"):
        store.put(key, b"v")
    root = store.list_with_delimiter()
    assert root["common_prefixes"] == ["foo"]
    assert [m["path"] for m in root["objects"]] == ["top"]
    level = store.list_with_delimiter("foo")
    assert level["common_prefixes"] == ["foo/bar", "foo/baz"]
    assert [m["path"] for m in level["objects"]] == ["foo/a", "foo/bar_baz"]
    leaf = store.list_with_delimiter("foo/bar/")
    assert leaf["common_prefixes"] == []
    assert [m["path"] for m in leaf["objects"]] == ["foo/bar/x", "foo/bar/y"]
    assert [m["version"] for m in leaf["objects"]] == [
        store.head("foo/bar/x")["version"],
        store.head("foo/bar/y")["version"],
    ]


# -- delete, copy, rename ---------------------------------------------------------------


def test_delete_one_or_many_and_missing_is_fine(store: Store) -> None:
    for key in ("a", "b", "c"):
        store.put(key, b"v")
    store.delete("a")
    store.delete(["b", "c", "never-existed"])
    assert _paths(store.list()) == []


def test_copy_keeps_bytes_type_and_metadata(store: Store) -> None:
    store.put("src.csv", b"data", attributes={"owner": "me"})
    store.copy("src.csv", "dst.csv")
    copied = store.get("dst.csv")
    assert bytes(copied.buffer()) == b"data"
    assert copied.attributes == {"Content-Type": "text/csv", "owner": "me"}
    assert bytes(store.get("src.csv").buffer()) == b"data"


def test_copy_and_rename_honour_overwrite(store: Store) -> None:
    store.put("src", b"new")
    store.put("dst", b"old")
    with pytest.raises(AlreadyExistsError):
        store.copy("src", "dst", overwrite=False)
    with pytest.raises(AlreadyExistsError):
        store.rename("src", "dst", overwrite=False)
    assert bytes(store.get("dst").buffer()) == b"old"
    store.copy("src", "fresh", overwrite=False)
    store.rename("src", "dst")
    assert bytes(store.get("dst").buffer()) == b"new"
    with pytest.raises(NotFoundError):
        store.head("src")


# -- a replica down ---------------------------------------------------------------------


def test_a_replica_down_is_invisible(store: Store, storage: failover.Storage) -> None:
    store.put("keep", b"0123456789")
    faulty(storage, "a").set(error_rate=1.0, error=BackendUnavailable)
    put = store.put("k", b"written while a is down", mode="create")
    store.put("k", b"updated while a is down", mode={"e_tag": put["e_tag"]})
    assert bytes(store.get("k").buffer()) == b"updated while a is down"
    assert bytes(store.get_range("keep", start=2, end=5)) == b"234"
    assert store.head("keep")["size"] == 10
    assert _paths(store.list()) == ["k", "keep"]
    assert store.list_with_delimiter()["objects"][0]["path"] == "k"
    store.copy("keep", "copy")
    store.rename("copy", "moved")
    store.delete("keep")
    assert _paths(store.list()) == ["k", "moved"]
    faulty(storage, "a").heal()
    storage.repair()
    assert bytes(store.get("moved").buffer()) == b"0123456789"


# -- async twins ------------------------------------------------------------------------


async def _upload(parts: list[bytes]) -> AsyncIterator[memoryview]:
    for part in parts:
        yield memoryview(part)


def test_every_async_twin_over_an_aio_storage(storage: failover.Storage) -> None:
    async def main() -> None:
        async with failover.aio.Storage(storage) as aio_storage:
            store = Store(aio_storage)
            put = await store.put_async("a/k", b"0123456789", mode="create")
            with pytest.raises(AlreadyExistsError):
                await store.put_async("a/k", b"x", mode="create")
            await store.put_async("a/s", _upload([b"str", b"eam"]), mode="create")
            await store.put_async("a/k", b"0123456789!", mode={"e_tag": put["e_tag"]})
            with pytest.raises(PreconditionError):
                await store.put_async("a/k", b"lost", mode={"e_tag": put["e_tag"]})
            result = await store.get_async("a/k", options={"range": (1, 4)})
            assert result.range == (1, 4)
            assert result.meta["size"] == 11
            assert result.attributes == {"Content-Type": "application/octet-stream"}
            assert [bytes(c) async for c in result] == [b"123"]
            assert bytes(await (await store.get_async("a/s")).buffer_async()) == b"stream"
            assert (await store.head_async("a/k"))["size"] == 11
            assert bytes(await store.get_range_async("a/k", start=9, length=2)) == b"9!"
            ranges = await store.get_ranges_async("a/k", starts=[0, 2], ends=[1, 3])
            assert [bytes(r) for r in ranges] == [b"0", b"2"]
            await store.copy_async("a/k", "b/copy")
            await store.rename_async("b/copy", "b/moved", overwrite=False)
            listed = [m["path"] async for chunk in store.list_async() for m in chunk]
            assert listed == ["a/k", "a/s", "b/moved"]
            assert [
                m["path"] async for chunk in store.list_async("a", offset="a/k") for m in chunk
            ] == ["a/s"]
            level = await store.list_with_delimiter_async()
            assert level["common_prefixes"] == ["a", "b"]
            await store.delete_async(["a/k", "a/s"])
            await store.delete_async("b/moved")
            with pytest.raises(NotFoundError):
                await store.head_async("a/k")
            with pytest.raises(NotFoundError):
                await store.get_async("a/k")

    asyncio.run(main())


def test_async_twins_over_a_sync_storage_with_a_replica_down(storage: failover.Storage) -> None:
    store = Store(storage)
    faulty(storage, "b").set(error_rate=1.0, error=BackendUnavailable)

    async def main() -> bytes:
        await store.put_async("k", b"async while b is down")
        result = await store.get_async("k")
        return bytes(await result.buffer_async())

    assert asyncio.run(main()) == b"async while b is down"
    assert bytes(store.get("k").buffer()) == b"async while b is down"


def test_an_unread_get_result_can_be_closed(store: Store) -> None:
    store.put("k", b"abc")
    result = store.get("k")
    result.close()
    assert bytes(result.buffer()) == b""


# -- import cost ------------------------------------------------------------------------


def test_importing_failover_does_not_import_obspec() -> None:
    code = "import sys, failover; print('obspec' in sys.modules, 'failover.obspec' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["False", "False"]


# -- the documented example -------------------------------------------------------------


def _section_code(page: Path, heading: str) -> list[str]:
    text = page.read_text(encoding="utf-8")
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)


def test_the_obspec_example_in_the_docs_runs() -> None:
    page = Path(__file__).resolve().parents[2] / "docs" / "dataframes.md"
    blocks = _section_code(page, "## obspec and obstore-style code")
    assert blocks
    try:
        for block in blocks:
            exec(compile(block, str(page), "exec"), {"__name__": "docs_example"})
    finally:
        for name in ("docs-a", "docs-b", "docs-c"):
            MemoryBackend.forget(name)
