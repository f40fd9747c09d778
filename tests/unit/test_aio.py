"""The asyncio API: the same operations and errors, off the event loop, safe to cancel."""

from __future__ import annotations

import asyncio
import inspect
import json
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import failover
import failover.aio
from failover import InvalidKeyError, NotFoundError
from failover.backends import from_url
from failover.config import Settings
from failover.errors import BackendUnavailable
from failover.invoke.testing import FunctionServer
from failover.testing import FaultyBackend

from .conftest import faulty


def aio_host(urls: list[str], journal: Path, **options: object) -> failover.aio.Storage:
    """An async instance over fault-injecting wrappers of the shared memory replicas."""
    backends = [FaultyBackend(from_url(u)) for u in urls]
    concurrency = int(options.pop("concurrency", 8))  # type: ignore[call-overload]
    options.setdefault("repair_interval_seconds", 0)
    settings = Settings.from_urls(urls, journal=str(journal), **options)  # type: ignore[arg-type]
    return failover.aio.Storage(
        failover.Storage(backends, settings=settings), concurrency=concurrency
    )


def test_the_async_api_mirrors_the_sync_one() -> None:
    public = {n for n in dir(failover.Storage) if not n.startswith("_")} - {"close"}
    assert public <= {n for n in dir(failover.aio.Storage) if not n.startswith("_")}
    for name in ("put", "get", "head", "exists", "delete", "open", "repair", "reconcile"):
        assert inspect.iscoroutinefunction(getattr(failover.aio.Storage, name)), name
    assert inspect.isasyncgenfunction(failover.aio.Storage.list)
    assert inspect.iscoroutinefunction(failover.aio.Invoker.invoke)


def test_every_operation_round_trips(urls: list[str], tmp_path: Path) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(3):
            await asyncio.sleep(0)
            yield b"part%d|" % i

    async def main() -> None:
        async with aio_host(urls, tmp_path / "j") as store:
            info = await store.put("docs/a.txt", b"hello", metadata={"team": "ops"})
            streamed = await store.put("docs/b.bin", chunks())
            assert (await store.head("docs/a.txt")).version == info.version
            assert await store.get("docs/a.txt") == b"hello"
            assert await store.get("docs/a.txt", byte_range=(1, 3)) == b"el"
            assert await store.get("docs/b.bin") == b"part0|part1|part2|"
            assert streamed.size == len(b"part0|part1|part2|")
            assert [i.key async for i in store.list("docs/")] == ["docs/a.txt", "docs/b.bin"]
            async with await store.open("docs/b.bin") as reader:
                assert reader.info.key == "docs/b.bin"
                assert await reader.read(6) == b"part0|"
                assert b"".join([c async for c in reader]) == b"part1|part2|"
            await store.delete("docs/a.txt")
            assert not await store.exists("docs/a.txt")
            assert await store.flush()
            assert (await store.reconcile()).consistent
            assert (await store.repair()).failed == ()
            assert set(store.health()) == {"a", "b", "c"}

    asyncio.run(main())


def test_errors_are_the_sync_api_s(urls: list[str], tmp_path: Path) -> None:
    async def main() -> None:
        async with aio_host(urls, tmp_path / "j") as store:
            with pytest.raises(NotFoundError):
                await store.get("missing")
            with pytest.raises(InvalidKeyError):
                await store.put("/bad", b"x")
            with pytest.raises(InvalidKeyError):
                [i async for i in store.list("/")]

    asyncio.run(main())


def test_no_backend_call_runs_on_the_event_loop_thread(urls: list[str], tmp_path: Path) -> None:
    threads: set[int] = set()

    class Recording(FaultyBackend):
        def _before(self, operation: str, key: str):  # type: ignore[no-untyped-def]
            threads.add(threading.get_ident())
            return super()._before(operation, key)

    backends = [Recording(from_url(u)) for u in urls]
    settings = Settings.from_urls(urls, journal=str(tmp_path / "j"), repair_interval_seconds=0)

    async def main() -> int:
        async with failover.aio.Storage(failover.Storage(backends, settings=settings)) as store:
            await asyncio.gather(*(store.put(f"k{i}", b"v") for i in range(20)))
            await asyncio.gather(*(store.get(f"k{i}") for i in range(20)))
            [i async for i in store.list()]
            return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert threads  # the recorder saw the calls...
    assert loop_thread not in threads  # ...and none of them on the loop's thread


def test_a_cancelled_put_stays_accounted_for(urls: list[str], tmp_path: Path) -> None:
    async def main() -> None:
        async with aio_host(urls, tmp_path / "j", write_policy="all") as store:
            c = faulty(store.sync, "c")
            c.set(hang=True, operations={"put"}, keys={"k"})
            task = asyncio.create_task(store.put("k", b"v"))
            while not c.hanging:  # the put is under way, stuck on c
                await asyncio.sleep(0.001)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # The write went on without its caller: a and b hold it, c is pending.
            assert store.health()["c"].pending_repairs == 1
            c.heal()
            assert await store.flush()
            await store.repair()
            assert await store.get("k", consistency="latest") == b"v"

    asyncio.run(main())
    assert all(from_url(u).get("k").data == b"v" for u in urls)


def test_a_cancelled_call_that_had_not_started_never_starts(
    urls: list[str], tmp_path: Path
) -> None:
    async def main() -> None:
        store = aio_host(urls, tmp_path / "j", concurrency=1)
        replicas = [faulty(store.sync, name) for name in "abc"]
        await store.put("slow", b"1")
        for replica in replicas:
            replica.set(hang=True, operations={"get"}, keys={"slow"})
        first = asyncio.create_task(store.get("slow"))  # holds the only coordinator
        while not any(r.hanging for r in replicas):
            await asyncio.sleep(0.001)
        queued = asyncio.create_task(store.put("never", b"2"))
        await asyncio.sleep(0)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        for replica in replicas:
            replica.heal()
        assert await first == b"1"
        assert not await store.exists("never")
        await store.aclose()

    asyncio.run(main())
    assert all(deleted_on_nothing(u, "never") for u in urls)


def deleted_on_nothing(url: str, key: str) -> bool:
    try:
        from_url(url).head(key)
    except NotFoundError:
        return True
    return False


def test_a_put_cancelled_while_reading_its_data_writes_nothing(
    urls: list[str], tmp_path: Path
) -> None:
    async def main() -> None:
        gate, reading = asyncio.Event(), asyncio.Event()

        async def slow_source() -> AsyncIterator[bytes]:
            yield b"first"
            reading.set()
            await gate.wait()  # never set: the caller gives up first
            yield b"second"

        async with aio_host(urls, tmp_path / "j") as store:
            task = asyncio.create_task(store.put("half", slow_source()))
            await reading.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            gate.set()  # let the coordinator's pending pull finish
            assert await store.flush()
            assert not await store.exists("half")

    asyncio.run(main())


def test_a_replica_down_is_invisible_to_async_callers(urls: list[str], tmp_path: Path) -> None:
    async def main() -> None:
        async with aio_host(urls, tmp_path / "j") as store:
            faulty(store.sync, "b").set(error_rate=1.0, error=BackendUnavailable)
            await asyncio.gather(*(store.put(f"k{i}", b"v%d" % i) for i in range(30)))
            got = await asyncio.gather(*(store.get(f"k{i}") for i in range(30)))
            assert got == [b"v%d" % i for i in range(30)]

    asyncio.run(main())


def test_the_async_invoker_fails_over() -> None:
    with FunctionServer() as good:
        urls = ["http://127.0.0.1:9/down", f"http://127.0.0.1:{good.port}/api/fn"]

        async def main() -> None:
            async with failover.aio.Invoker.from_urls(
                urls, timeout_seconds=1, deadline_seconds=5
            ) as invoker:
                results = await asyncio.gather(
                    *(invoker.invoke({"n": i}, idempotency_key=f"call-{i}") for i in range(10))
                )
                assert [json.loads(r.payload)["n"] for r in results] == list(range(10))
                assert {r.target for r in results} == {list(invoker.sync.targets)[1]}

        asyncio.run(main())


def test_importing_failover_does_no_event_loop_work() -> None:
    code = (
        "import sys, failover; "
        "print(sorted(m for m in ('asyncio', 'failover.aio') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
