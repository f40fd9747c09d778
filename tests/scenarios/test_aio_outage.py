"""The asyncio API through an outage: 200 concurrent requests on one event loop.

Three emulators, each behind a FaultProxy. 200 tasks read and write at once on one
loop; half way through, one cloud is blackholed (it accepts connections and never
answers). A ticker coroutine measures how late the loop wakes it up; every backend call
records the thread it ran on.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

import failover
import failover.aio
from failover.backends import from_url
from failover.config import Settings
from failover.testing import FaultyBackend

from .conftest import ProxiedFactory

pytestmark = [pytest.mark.integration, pytest.mark.scenario]

TASKS = 200
ROUNDS = 4  # operations per task, two before the blackhole and two during it
TIMEOUT = 1.0


class _ThreadRecorder(FaultyBackend):
    """Records the thread of every backend call (no fault injected)."""

    threads: set[int]

    def _before(self, operation: str, key: str):  # type: ignore[no-untyped-def]
        self.threads.add(threading.get_ident())
        return super()._before(operation, key)


def test_two_hundred_requests_ride_out_an_outage_on_one_loop(
    proxied_cloud: ProxiedFactory,
) -> None:
    clouds = [proxied_cloud(kind, name) for kind, name in (("s3", "aws"), ("azure", "az"))]
    clouds.append(proxied_cloud("gcs", "gcp"))
    urls = [url for url, _ in clouds]
    victim = clouds[2][1]
    threads: set[int] = set()
    backends = []
    for url in urls:
        backend = _ThreadRecorder(from_url(url, timeout_seconds=TIMEOUT, max_connections=64))
        backend.threads = threads
        backends.append(backend)
    settings = Settings.from_urls(
        urls,
        timeout_seconds=TIMEOUT,
        deadline_seconds=10,
        breaker_fail_max=3,
        breaker_reset_seconds=60,  # stays open for the rest of the run
        repair_interval_seconds=0,
    )
    errors: list[BaseException] = []
    lags: list[float] = []

    async def main() -> int:
        async with failover.aio.Storage(failover.Storage(backends, settings=settings)) as store:
            await asyncio.gather(*(store.put(f"k{i}", b"seed %d" % i) for i in range(20)))
            assert await store.flush()
            stop = asyncio.Event()
            halfway = asyncio.Barrier(TASKS + 1)

            async def ticker() -> None:
                while not stop.is_set():
                    before = time.monotonic()
                    await asyncio.sleep(0.01)
                    lags.append(time.monotonic() - before - 0.01)

            async def client(n: int) -> None:
                for round_number in range(ROUNDS):
                    if round_number == ROUNDS // 2:
                        await halfway.wait()
                    try:
                        if (n + round_number) % 3 == 0:
                            # Each client writes its own key: two concurrent writes of
                            # one key are a last-writer-wins race (Superseded), not an
                            # availability question.
                            await store.put(f"client/{n}", b"round %d" % round_number)
                        else:
                            await store.get(f"k{(n + round_number) % 20}")
                    except Exception as exc:  # every error the application would see
                        errors.append(exc)

            tick = asyncio.create_task(ticker())
            clients = [asyncio.create_task(client(n)) for n in range(TASKS)]
            await halfway.wait()  # every client is half way: the cloud goes now
            victim.blackhole()
            await asyncio.gather(*clients)
            stop.set()
            await tick
            victim.pass_through()
            return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert errors == [], errors[:3]
    assert threads
    assert loop_thread not in threads  # no backend call on the loop thread
    # A loop blocked by a call into the blackholed cloud would stall for a whole attempt
    # timeout; the worst lag seen must stay below that (reported for the record).
    print(f"[aio] {TASKS} tasks x {ROUNDS} ops, worst loop lag {max(lags) * 1000:.1f} ms")
    assert max(lags) < TIMEOUT


def test_every_async_operation_on_the_three_emulators(healthy_cloud, tmp_path) -> None:  # type: ignore[no-untyped-def]
    urls = [healthy_cloud(kind, name) for kind, name in (("s3", "aws"), ("azure", "az"))]
    urls.append(healthy_cloud("gcs", "gcp"))

    async def main() -> None:
        async with failover.aio.Storage.from_urls(
            urls, journal=str(tmp_path / "j"), repair_interval_seconds=0
        ) as store:
            await asyncio.gather(*(store.put(f"docs/{i}", b"%d" % i * 1000) for i in range(10)))
            assert [i.key async for i in store.list("docs/")] == [f"docs/{i}" for i in range(10)]
            assert await store.get("docs/3", consistency="latest") == b"3" * 1000
            async with await store.open("docs/4") as reader:
                assert b"".join([chunk async for chunk in reader]) == b"4" * 1000
            assert (await store.head("docs/5")).size == 1000
            await store.delete("docs/0")
            assert not await store.exists("docs/0")
            assert await store.flush()
            assert (await store.reconcile("docs/")).consistent

    asyncio.run(main())
