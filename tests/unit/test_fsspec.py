"""failover.fsspec: the failover:// filesystem over three memory:// replicas.

The second half runs fsspec's own abstract test suite (``fsspec.tests.abstract``: copy,
get, put, pipe, open) the way s3fs wires it: a fixtures class deriving from
``AbstractFixtures`` and one test class per mixin, over three memory:// replicas and
again over three file:// replicas.
"""

from __future__ import annotations

import os
import pickle
import posixpath
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from hashlib import sha256
from pathlib import Path
from typing import Any

import fsspec
import pytest
from fsspec.tests.abstract import AbstractFixtures
from fsspec.tests.abstract.copy import AbstractCopyTests
from fsspec.tests.abstract.get import AbstractGetTests
from fsspec.tests.abstract.open import AbstractOpenTests
from fsspec.tests.abstract.pipe import AbstractPipeTests
from fsspec.tests.abstract.put import AbstractPutTests

from failover import fsspec as failover_fsspec
from failover.backends.memory import MemoryBackend
from failover.errors import NotFoundError
from failover.fsspec import FailoverFileSystem


def _open_fs(urls: list[str]) -> FailoverFileSystem:
    fs = fsspec.filesystem("failover", backends=urls, journal=":memory:", repair_interval_seconds=0)
    assert isinstance(fs, FailoverFileSystem)
    return fs


def _close_fs(fs: FailoverFileSystem) -> None:
    fs.storage.close()
    with failover_fsspec._storages_lock:
        failover_fsspec._storages.pop((os.getpid(), fs.storage.settings), None)
    FailoverFileSystem.clear_instance_cache()


@pytest.fixture(autouse=True)
def _no_storage_left_open() -> Iterator[None]:
    # A Storage left open keeps worker threads named after its backends (a, b, c).
    yield
    assert not failover_fsspec._storages


@pytest.fixture
def fs(urls: list[str]) -> Iterator[FailoverFileSystem]:
    filesystem = _open_fs(urls)
    yield filesystem
    _close_fs(filesystem)


# -- configuration ---------------------------------------------------------------------


def test_protocol_is_registered_by_entry_point() -> None:
    # A fresh interpreter: fsspec finds failover:// without failover being imported.
    code = (
        "import sys, fsspec; "
        "cls = fsspec.get_filesystem_class('failover'); "
        "print(cls.__module__, cls.__name__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["failover.fsspec", "FailoverFileSystem"]


def test_importing_failover_does_not_import_fsspec() -> None:
    code = "import sys, failover; print('fsspec' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


def test_same_options_share_one_storage(fs: FailoverFileSystem, urls: list[str]) -> None:
    again = FailoverFileSystem(
        backends=urls, journal=":memory:", repair_interval_seconds=0, skip_instance_cache=True
    )
    assert again is not fs
    assert again.storage is fs.storage
    assert list(fs.storage.backends) == ["a", "b", "c"]


def test_pickled_filesystem_shares_the_storage(fs: FailoverFileSystem) -> None:
    # dask ships filesystems to workers by pickle: the options travel, not the Storage.
    fs.pipe_file("p.txt", b"p")
    clone = pickle.loads(pickle.dumps(fs))
    assert clone.storage is fs.storage
    assert clone.cat_file("p.txt") == b"p"


def test_environment_configures_it_by_default(
    urls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAILOVER_BACKENDS", ",".join(urls))
    monkeypatch.setenv("FAILOVER_JOURNAL", ":memory:")
    monkeypatch.setenv("FAILOVER_REPAIR_INTERVAL_SECONDS", "0")
    filesystem = FailoverFileSystem(write_policy="all", skip_instance_cache=True)
    try:
        assert filesystem.storage.settings.write_policy == "all"
        assert list(filesystem.storage.backends) == ["a", "b", "c"]
        # the same options (none but these) reach the same filesystem and Storage
        with fsspec.open("failover://reports/q3.csv", "w", write_policy="all") as f:
            f.write("a,b\n1,2\n")
        assert filesystem.storage.get("reports/q3.csv") == b"a,b\n1,2\n"
    finally:
        _close_fs(filesystem)


# -- files -----------------------------------------------------------------------------


def test_round_trip_through_fsspec_open(fs: FailoverFileSystem, urls: list[str]) -> None:
    options = {"backends": urls, "journal": ":memory:", "repair_interval_seconds": 0}
    with fsspec.open("failover://reports/q3.csv", "wt", **options) as f:
        f.write("region,total\nnorth,3\n")
    with fsspec.open("failover://reports/q3.csv", "rt", **options) as f:
        assert f.read() == "region,total\nnorth,3\n"
    # Every replica holds it: the write went through the replicated put.
    for backend in fs.storage.backends.values():
        assert backend.get("reports/q3.csv").data == b"region,total\nnorth,3\n"


def test_large_write_is_spooled_and_stored_once(fs: FailoverFileSystem) -> None:
    data = bytes(range(256)) * (4 * 1024 * 8)  # 8 MiB, written in 1 MiB blocks
    with fs.open("big.bin", "wb", block_size=1024 * 1024) as f:
        for start in range(0, len(data), 1024 * 1024):
            f.write(data[start : start + 1024 * 1024])
        assert not fs.exists("big.bin")  # nothing is visible before close
    info = fs.info("big.bin")
    assert info["size"] == len(data)
    assert info["sha256"] == sha256(data).hexdigest()


def test_failed_with_block_stores_nothing(fs: FailoverFileSystem) -> None:
    def write_then_fail() -> None:
        with fs.open("partial.bin", "wb") as f:
            f.write(b"half")
            raise RuntimeError

    with pytest.raises(RuntimeError):
        write_then_fail()
    assert not fs.exists("partial.bin")


def test_ranged_reads(fs: FailoverFileSystem) -> None:
    data = bytes(range(256)) * 64
    fs.pipe_file("r.bin", data)
    assert fs.cat_file("r.bin", start=10, end=20) == data[10:20]
    assert fs.cat_file("r.bin", start=-5) == data[-5:]
    assert fs.cat_file("r.bin", start=100) == data[100:]
    assert fs.cat_file("r.bin", end=-100) == data[:-100]
    assert fs.cat_file("r.bin", start=30, end=10) == b""
    with fs.open("r.bin", "rb", block_size=1000) as f:
        f.seek(5000)
        assert f.read(300) == data[5000:5300]
        f.seek(-10, 2)
        assert f.read() == data[-10:]


def test_reads_are_range_requests(fs: FailoverFileSystem, monkeypatch: pytest.MonkeyPatch) -> None:
    data = b"x" * 10_000
    fs.pipe_file("ranged.bin", data)
    ranges: list[object] = []
    get = fs.storage.get

    def recording_get(key: str, **kwargs: Any) -> bytes:
        ranges.append(kwargs.get("byte_range"))
        return get(key, **kwargs)

    monkeypatch.setattr(fs.storage, "get", recording_get)
    with fs.open("ranged.bin", "rb", block_size=1000, cache_type="none") as f:
        f.seek(2000)
        assert f.read(10) == data[2000:2010]
    assert ranges == [(2000, 2010)]


def test_exclusive_create(fs: FailoverFileSystem) -> None:
    with fs.open("x.txt", "xb") as f:
        f.write(b"first")
    with pytest.raises(FileExistsError):
        fs.open("x.txt", "xb")
    with pytest.raises(FileExistsError):
        fs.pipe_file("x.txt", b"second", mode="create")
    fs.pipe_file("y.txt", b"new", mode="create")
    assert fs.cat("x.txt") == b"first"
    assert fs.cat("y.txt") == b"new"


def test_exclusive_create_rechecks_on_close(fs: FailoverFileSystem) -> None:
    f = fs.open("race.txt", "xb")
    f.write(b"mine")
    fs.pipe_file("race.txt", b"theirs")
    with pytest.raises(FileExistsError):
        f.close()
    assert fs.cat("race.txt") == b"theirs"


def test_append_is_refused(fs: FailoverFileSystem) -> None:
    fs.pipe_file("log.txt", b"a")
    with pytest.raises(NotImplementedError, match="no append"):
        fs.open("log.txt", "ab")


def test_missing_objects_raise_file_not_found(fs: FailoverFileSystem) -> None:
    for call in (
        lambda: fs.cat_file("missing.txt"),
        lambda: fs.open("missing.txt", "rb"),
        lambda: fs.info("missing.txt"),
        lambda: fs.ls("missing"),
        lambda: fs.rm_file("missing.txt"),
        lambda: fs.modified("missing.txt"),
        lambda: fs.cp_file("missing.txt", "other.txt"),
    ):
        with pytest.raises(FileNotFoundError) as caught:
            call()
        assert not isinstance(caught.value, NotFoundError)
        assert isinstance(caught.value.__cause__, NotFoundError)
        assert caught.value.filename == "missing.txt" or caught.value.filename == "missing"


def test_directories_raise_is_a_directory(fs: FailoverFileSystem) -> None:
    fs.pipe_file("dir/file.txt", b"x")
    for call in (
        lambda: fs.open("dir", "rb"),
        lambda: fs.cat_file("dir"),
        lambda: fs.rm_file("dir"),
    ):
        with pytest.raises(IsADirectoryError):
            call()
    with pytest.raises(IsADirectoryError):
        fs.rm("dir")


# -- directories -----------------------------------------------------------------------


@pytest.fixture
def tree(fs: FailoverFileSystem) -> FailoverFileSystem:
    for path in ("top.txt", "data/a.csv", "data/b.csv", "data/sub/c.csv", "data.csv"):
        fs.pipe_file(path, path.encode())
    return fs


def test_ls_derives_directories(tree: FailoverFileSystem) -> None:
    assert tree.ls("", detail=False) == ["data", "data.csv", "top.txt"]
    assert tree.ls("failover://data/", detail=False) == ["data/a.csv", "data/b.csv", "data/sub"]
    detail = {entry["name"]: entry for entry in tree.ls("data")}
    assert detail["data/sub"] == {"name": "data/sub", "size": 0, "type": "directory"}
    assert detail["data/a.csv"]["type"] == "file"
    assert detail["data/a.csv"]["size"] == len(b"data/a.csv")
    # ls of a file lists that file
    assert tree.ls("top.txt", detail=False) == ["top.txt"]


def test_info(tree: FailoverFileSystem) -> None:
    info = tree.info("failover://data/a.csv")
    assert info["type"] == "file"
    assert info["sha256"] == sha256(b"data/a.csv").hexdigest()
    assert info["content_type"] == "text/csv"
    assert tree.info("data") == {"name": "data", "size": 0, "type": "directory"}
    assert tree.info("")["type"] == "directory"
    assert tree.isdir("data/sub")
    assert tree.isfile("data.csv")
    assert not tree.exists("dat")


def test_find_glob_walk(tree: FailoverFileSystem) -> None:
    assert tree.find("data") == ["data/a.csv", "data/b.csv", "data/sub/c.csv"]
    assert tree.find("", withdirs=True) == [
        "data",
        "data.csv",
        "data/a.csv",
        "data/b.csv",
        "data/sub",
        "data/sub/c.csv",
        "top.txt",
    ]
    assert tree.find("data", maxdepth=1) == ["data/a.csv", "data/b.csv"]
    assert tree.find("top.txt") == ["top.txt"]
    assert tree.find("nothing") == []
    assert tree.glob("data/*.csv") == ["data/a.csv", "data/b.csv"]
    assert tree.glob("**/c.csv") == ["data/sub/c.csv"]
    walked = list(tree.walk("data"))
    assert walked == [("data", ["sub"], ["a.csv", "b.csv"]), ("data/sub", [], ["c.csv"])]
    assert tree.du("data") == sum(
        len(p.encode()) for p in ("data/a.csv", "data/b.csv", "data/sub/c.csv")
    )


def test_no_empty_directories(fs: FailoverFileSystem) -> None:
    fs.mkdir("empty")
    fs.makedirs("empty/deeper", exist_ok=True)
    assert not fs.exists("empty")
    fs.pipe_file("only/file", b"x")
    fs.rm("only/file")
    assert not fs.exists("only")
    fs.rmdir("only")


def test_rm(tree: FailoverFileSystem) -> None:
    tree.rm("data", recursive=True)
    assert tree.find("") == ["data.csv", "top.txt"]
    tree.rm(["data.csv", "top.txt"])
    assert tree.find("") == []


def test_cp_keeps_bytes_type_and_metadata(fs: FailoverFileSystem) -> None:
    fs.storage.put("src/a.json", b"{}", metadata={"owner": "team"})
    fs.cp_file("src/a.json", "dst/copy")
    info = fs.storage.head("dst/copy")
    assert fs.cat("dst/copy") == b"{}"
    assert info.content_type == "application/json"
    assert dict(info.metadata) == {"owner": "team"}
    fs.pipe_file("src/sub/b", b"b")
    fs.cp("src", "tree", recursive=True)
    assert fs.find("tree") == ["tree/a.json", "tree/sub/b"]


def test_checksum_ukey_modified(fs: FailoverFileSystem) -> None:
    fs.pipe_file("c.bin", b"abc")
    digest = sha256(b"abc").hexdigest()
    assert fs.ukey("c.bin") == digest
    assert fs.checksum("c.bin") == int(digest, 16)
    modified = fs.modified("c.bin")
    assert isinstance(modified, datetime)
    assert modified.tzinfo is not None
    fs.pipe_file("c.bin", b"abcd")
    assert fs.ukey("c.bin") != digest


def test_put_and_get_files(fs: FailoverFileSystem, tmp_path: Path) -> None:
    local = tmp_path / "in"
    (local / "sub").mkdir(parents=True)
    (local / "one.txt").write_bytes(b"1")
    (local / "sub" / "two.txt").write_bytes(b"2")
    fs.put(str(local), "up", recursive=True)
    assert fs.find("up") == ["up/one.txt", "up/sub/two.txt"]
    fs.get("up", str(tmp_path / "out"), recursive=True)
    assert (tmp_path / "out" / "sub" / "two.txt").read_bytes() == b"2"


def test_permission_denied_maps_to_permission_error(
    fs: FailoverFileSystem, monkeypatch: pytest.MonkeyPatch
) -> None:
    from failover.errors import AllBackendsFailed, PermissionDeniedError

    def denied(key: str, **kwargs: Any) -> bytes:
        raise AllBackendsFailed(
            "get", {name: PermissionDeniedError("403") for name in ("a", "b", "c")}
        )

    monkeypatch.setattr(fs.storage, "get", denied)
    with pytest.raises(PermissionError) as caught:
        fs.cat_file("k")
    assert isinstance(caught.value.__cause__, AllBackendsFailed)


# -- fsspec's abstract test suite ------------------------------------------------------


class FailoverFixtures(AbstractFixtures):  # type: ignore[misc]
    """fsspec's abstract fixtures over three memory:// replicas (a fresh set per test)."""

    @pytest.fixture
    def fs(self, urls: list[str]) -> Iterator[FailoverFileSystem]:  # type: ignore[override]
        filesystem = _open_fs(urls)
        yield filesystem
        _close_fs(filesystem)

    @pytest.fixture
    def fs_join(self) -> Callable[..., str]:
        return posixpath.join

    @pytest.fixture
    def fs_path(self) -> str:
        return "abstract"

    @pytest.fixture
    def supports_empty_directories(self) -> bool:
        return False


class FileFixtures(FailoverFixtures):
    """The same over three file:// replicas (directories outside the local test tree)."""

    @pytest.fixture
    def fs(  # type: ignore[override]
        self, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[FailoverFileSystem]:
        root = tmp_path_factory.mktemp("replicas")
        filesystem = _open_fs([f"file://{root / n}?name={n}" for n in "abc"])
        yield filesystem
        _close_fs(filesystem)


class TestMemoryCopy(AbstractCopyTests, FailoverFixtures):  # type: ignore[misc]
    pass


class TestMemoryGet(AbstractGetTests, FailoverFixtures):  # type: ignore[misc]
    pass


class TestMemoryPut(AbstractPutTests, FailoverFixtures):  # type: ignore[misc]
    pass


class TestMemoryPipe(AbstractPipeTests, FailoverFixtures):  # type: ignore[misc]
    pass


class TestMemoryOpen(AbstractOpenTests, FailoverFixtures):  # type: ignore[misc]
    pass


class TestFileCopy(AbstractCopyTests, FileFixtures):  # type: ignore[misc]
    pass


class TestFileGet(AbstractGetTests, FileFixtures):  # type: ignore[misc]
    pass


class TestFilePut(AbstractPutTests, FileFixtures):  # type: ignore[misc]
    pass


class TestFilePipe(AbstractPipeTests, FileFixtures):  # type: ignore[misc]
    pass


class TestFileOpen(AbstractOpenTests, FileFixtures):  # type: ignore[misc]
    pass


def test_the_fsspec_example_in_the_docs_runs() -> None:
    page = Path(__file__).resolve().parents[2] / "docs" / "dataframes.md"
    section = page.read_text(encoding="utf-8").split("## fsspec: `failover://` URLs", 1)[1]
    blocks = re.findall(r"```python\n(.*?)```", section.split("\n## ", 1)[0], re.DOTALL)
    assert blocks
    try:
        for block in blocks:
            exec(compile(block, str(page), "exec"), {"__name__": "docs_example"})
    finally:
        failover_fsspec._close_storages()
        FailoverFileSystem.clear_instance_cache()
        for name in ("frames-a", "frames-b", "frames-c"):
            MemoryBackend.forget(name)
