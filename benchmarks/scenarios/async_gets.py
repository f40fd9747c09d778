"""Async vs sync: 1 KiB gets at 1, 10, 100 and 500 concurrent callers.

Three emulators, one Storage over them (quorum writes, health-routed reads). The same
gets run two ways, interleaved per concurrency level:

* ``async``: N tasks on one event loop, each awaiting ``failover.aio.Storage.get``
  in a loop (the loop's coordinators run the sync facade; see ``failover.aio``);
* ``sync``: N threads of a ``ThreadPoolExecutor`` each calling ``Storage.get``.

Reported per level and variant: throughput (gets per second over the timed window),
p50/p99 latency, and for ``async`` the worst event-loop lag seen by a ticker coroutine
(how late a 10 ms sleep woke up): how long the loop was kept from other work.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import threading
import time
from typing import Any

import failover.aio
from benchmarks.clouds import KINDS, Clouds
from benchmarks.context import RunContext
from benchmarks.report import Column, ScenarioResult, Table, Target, fmt_ms
from benchmarks.stats import spread, summarize
from failover import Storage
from failover.config import Settings

NAME = "async_gets"
LEVELS = (1, 10, 100, 500)
KEYS = 32
VALUE = b"x" * 1024
TICK_SECONDS = 0.01


def _seconds(ctx: RunContext) -> float:
    return float(ctx.pick(4, 1))


def _run_sync(store: Storage, level: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def worker(n: int) -> None:
        i = n
        mine: list[float] = []
        while time.monotonic() < stop_at:
            began = time.perf_counter()
            store.get(f"k{i % KEYS}")
            mine.append(time.perf_counter() - began)
            i += 1
        with lock:
            latencies.extend(mine)

    began = time.monotonic()
    with cf.ThreadPoolExecutor(max_workers=level, thread_name_prefix="bench-sync") as pool:
        list(pool.map(worker, range(level)))
    elapsed = time.monotonic() - began
    return {"latency": summarize(latencies), "throughput": len(latencies) / elapsed}


def _run_async(store: failover.aio.Storage, level: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    lags: list[float] = []

    async def main() -> float:
        stop_at = time.monotonic() + seconds
        done = asyncio.Event()

        async def ticker() -> None:
            while not done.is_set():
                before = time.monotonic()
                await asyncio.sleep(TICK_SECONDS)
                lags.append(max(0.0, time.monotonic() - before - TICK_SECONDS))

        async def caller(n: int) -> None:
            i = n
            while time.monotonic() < stop_at:
                began = time.perf_counter()
                await store.get(f"k{i % KEYS}")
                latencies.append(time.perf_counter() - began)
                i += 1

        tick = asyncio.create_task(ticker())
        began = time.monotonic()
        await asyncio.gather(*(caller(n) for n in range(level)))
        elapsed = time.monotonic() - began
        done.set()
        await tick
        return elapsed

    elapsed = asyncio.run(main())
    return {
        "latency": summarize(latencies),
        "throughput": len(latencies) / elapsed,
        "worst_loop_lag_ms": max(lags, default=0.0) * 1000,
        "p99_loop_lag_ms": summarize(lags).get("p99_ms", 0.0) if lags else 0.0,
    }


def run(ctx: RunContext) -> ScenarioResult:
    seconds = _seconds(ctx)
    levels = LEVELS if not ctx.quick else (1, 10, 100)
    rows: list[dict[str, Any]] = []
    with Clouds(KINDS) as clouds:
        urls = [clouds.bucket(kind, "aio") for kind in KINDS]
        settings = Settings.from_urls(urls, journal=ctx.journal("aio"), repair_interval_seconds=0)
        store = Storage.from_settings(settings)
        for i in range(KEYS):
            store.put(f"k{i}", VALUE)
        store.flush()
        async_store = failover.aio.Storage(store)
        try:
            for rep in range(ctx.repeats):
                for level in levels:
                    sync = _run_sync(store, level, seconds)
                    aio = _run_async(async_store, level, seconds)
                    for variant, measured in (("sync threads", sync), ("async tasks", aio)):
                        rows.append({"rep": rep, "level": level, "variant": variant, **measured})
                    ctx.log(
                        f"async_gets rep {rep + 1}/{ctx.repeats} x{level}: "
                        f"sync {sync['throughput']:.0f}/s, async {aio['throughput']:.0f}/s, "
                        f"worst loop lag {aio['worst_loop_lag_ms']:.1f} ms"
                    )
        finally:
            asyncio.run(async_store.aclose())  # closes the sync Storage too
    table = Table(
        "1 KiB gets, N concurrent callers (median and min-max over runs)",
        [
            Column("level", "callers"),
            Column("variant", "variant"),
            Column("throughput", "gets/s", lambda v: f"{v:.0f}"),
            Column("p50", "p50 ms", fmt_ms),
            Column("p99", "p99 ms", fmt_ms),
            Column("lag", "worst loop lag ms", lambda v: "" if v is None else fmt_ms(v)),
        ],
    )
    lag_by_level: dict[int, float] = {}
    for level in levels:
        for variant in ("sync threads", "async tasks"):
            chosen = [r for r in rows if (r["level"], r["variant"]) == (level, variant)]
            lag = (
                spread([r["worst_loop_lag_ms"] for r in chosen])["max"]
                if variant == "async tasks"
                else None
            )
            if lag is not None:
                lag_by_level[level] = lag
            table.rows.append(
                {
                    "level": level,
                    "variant": variant,
                    "throughput": spread([r["throughput"] for r in chosen])["median"],
                    "p50": spread([r["latency"]["p50_ms"] for r in chosen])["median"],
                    "p99": spread([r["latency"]["p99_ms"] for r in chosen])["median"],
                    "lag": lag,
                }
            )
    top = max(levels)
    sync_top = [
        r["throughput"] for r in rows if (r["level"], r["variant"]) == (top, "sync threads")
    ]
    aio_top = [r["throughput"] for r in rows if (r["level"], r["variant"]) == (top, "async tasks")]
    ratio = spread([a / s for a, s in zip(aio_top, sync_top, strict=True)])
    targets = [
        Target(
            name=f"async: throughput at {top} callers / sync threads",
            requirement="report",
            value=ratio["median"],
            spread=ratio,
            met=None,
            unit="x",
        ),
        Target(
            name=f"async: worst event-loop lag at {top} callers",
            requirement="report",
            value=lag_by_level[top],
            spread=spread([lag_by_level[top]]),
            met=None,
            unit="ms",
        ),
    ]
    return ScenarioResult(
        name=NAME,
        title="Async vs sync API: 1 KiB gets at rising concurrency",
        parameters={
            "levels": list(levels),
            "seconds_per_measurement": seconds,
            "keys": KEYS,
            "coordinators": failover.aio.DEFAULT_CONCURRENCY,
            "repeats": ctx.repeats,
        },
        tables=[table],
        targets=targets,
        data={"runs": rows},
        notes=[
            "Each level runs the sync variant, then the async one, for the same time on "
            "the same Storage (three emulators, read_policy health). Async calls run on "
            f"{failover.aio.DEFAULT_CONCURRENCY} coordinator threads; calls beyond that "
            "queue. Loop lag: how late a 10 ms sleep on the loop woke up (worst over runs)."
        ],
    )
