"""Overhead: Storage over one backend vs the raw SDK client on the same emulator.

For each provider, operation (put, get) and size (1 KiB, 1 MiB) three variants run
interleaved in one process:

* ``raw``: the SDK client called directly (see :mod:`benchmarks.raw`);
* ``backend``: failover's Backend adapter for that provider called directly, with a
  prepared payload (the adapter's own cost: metadata, error mapping, reader objects);
* ``failover``: ``Storage.put`` / ``Storage.get`` over that single backend (everything:
  key checks, sha256 and version stamp on put, sha256 check on get, dispatch to the
  backend's worker thread, breaker, health, retry policy).

The target compares ``failover`` with ``raw``; ``backend`` splits the difference into
what the adapter adds and what the facade adds. A second table measures the facade
without any I/O (memory backend) and two of its unavoidable parts in isolation.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import os
import time
from typing import Any

from benchmarks import plots
from benchmarks.clouds import KINDS, Clouds
from benchmarks.context import RunContext
from benchmarks.raw import raw_client
from benchmarks.report import (
    Column,
    ScenarioResult,
    Table,
    Target,
    fmt_ms,
    fmt_ratio,
    fmt_spread,
)
from benchmarks.stats import interleave, quantile, spread, summarize
from failover import Storage
from failover.backends.base import META_SHA256, META_VERSION
from failover.backends.memory import MemoryBackend
from failover.config import Settings
from failover.payload import Payload

NAME = "overhead"
TARGET_RATIO = 1.05
SIZES = {"1KiB": 1024, "1MiB": 1024 * 1024}
KEYS = 8
CONTENT_TYPE = "application/octet-stream"


def _iterations(ctx: RunContext, size: int) -> tuple[int, int]:
    """(timed iterations, warm-up iterations) for one block."""
    if size <= 64 * 1024:
        return ctx.pick(300, 20), ctx.pick(20, 3)
    return ctx.pick(60, 5), ctx.pick(5, 1)


def _variants(op: str, size: int, raw: Any, backend: Any, store: Storage) -> dict[str, Any]:
    data = os.urandom(size)
    if op == "put":
        payload = Payload.from_bytes(data)
        meta = {META_VERSION: "0" * 16 + ".000000.bench", META_SHA256: payload.sha256}
        return {
            "raw": lambda i: raw.put(f"ovh/raw/{i % KEYS}", data),
            "backend": lambda i: backend.put(
                f"ovh/backend/{i % KEYS}", payload, content_type=CONTENT_TYPE, metadata=meta
            ),
            "failover": lambda i: store.put(f"ovh/failover/{i % KEYS}", data),
        }
    keys = [f"ovh/get-{size}/{j}" for j in range(KEYS)]
    for key in keys:
        store.put(key, data)
    # Same bytes from every path, checked once outside the timing.
    assert raw.get(keys[0]) == backend.get(keys[0]).data == store.get(keys[0]) == data
    return {
        "raw": lambda i: raw.get(keys[i % KEYS]),
        "backend": lambda i: backend.get(keys[i % KEYS]),
        "failover": lambda i: store.get(keys[i % KEYS]),
    }


def _measure_clouds(ctx: RunContext) -> list[dict[str, Any]]:
    """One row per (provider, op, size, repetition) with the three variants' latencies."""
    rows: list[dict[str, Any]] = []
    with Clouds(KINDS) as clouds:
        setups = []
        for kind in KINDS:
            url = clouds.bucket(kind, "overhead")
            store = Storage.from_urls([url], journal=ctx.journal(f"overhead-{kind}"))
            setups.append((kind, url, store, raw_client(url, timeout_seconds=10.0)))
        try:
            for rep in range(ctx.repeats):
                for kind, _url, store, raw in setups:
                    backend = store.backends[kind]
                    for size_name, size in SIZES.items():
                        for op in ("put", "get"):
                            iterations, warmup = _iterations(ctx, size)
                            variants = _variants(op, size, raw, backend, store)
                            samples = interleave(variants, iterations=iterations, warmup=warmup)
                            row = {
                                "provider": kind,
                                "op": op,
                                "size": size_name,
                                "rep": rep,
                                **{name: summarize(s) for name, s in samples.items()},
                            }
                            rows.append(row)
                            ctx.log(
                                f"overhead rep {rep + 1}/{ctx.repeats} {kind} {op} {size_name}: "
                                f"raw p50 {row['raw']['p50_ms']:.2f} ms, failover p50 "
                                f"{row['failover']['p50_ms']:.2f} ms, ratio "
                                f"{row['failover']['p50_ms'] / row['raw']['p50_ms']:.3f}"
                            )
        finally:
            for _kind, _url, store, raw in setups:
                store.close()
                raw.close()
    return rows


def _measure_in_memory(ctx: RunContext) -> list[dict[str, Any]]:
    """The facade's own cost without I/O: Storage(memory) vs the memory backend alone."""
    rows = []
    for rep in range(ctx.repeats):
        for size_name, size in SIZES.items():
            data = os.urandom(size)
            direct = MemoryBackend("direct")
            settings = Settings(backends=("memory",), journal=ctx.journal("overhead-memory"))
            with Storage([MemoryBackend("memory")], settings=settings) as store:
                payload = Payload.from_bytes(data)
                meta = {META_VERSION: "v", META_SHA256: payload.sha256}
                direct.put("k", payload, content_type=CONTENT_TYPE, metadata=meta)
                store.put("k", data)
                iterations = ctx.pick(2000, 100) if size <= 64 * 1024 else ctx.pick(300, 10)
                for op, variants in (
                    (
                        "put",
                        {
                            "backend": lambda i, b=direct, p=payload, m=meta: b.put(
                                "k", p, content_type=CONTENT_TYPE, metadata=m
                            ),
                            "failover": lambda i, d=data, s=store: s.put("k", d),
                        },
                    ),
                    (
                        "get",
                        {
                            "backend": lambda i, b=direct: b.get("k"),
                            "failover": lambda i, s=store: s.get("k"),
                        },
                    ),
                ):
                    samples = interleave(variants, iterations=iterations, warmup=ctx.pick(50, 5))
                    rows.append(
                        {
                            "op": op,
                            "size": size_name,
                            "rep": rep,
                            **{name: summarize(s) for name, s in samples.items()},
                        }
                    )
    return rows


def _micro(ctx: RunContext) -> dict[str, float]:
    """Two parts of the facade's cost that no implementation can avoid entirely."""
    n = ctx.pick(3000, 300)
    pool = cf.ThreadPoolExecutor(max_workers=16)
    try:
        hops = []
        for _ in range(n):
            started = time.perf_counter()
            pool.submit(int).result()
            hops.append(time.perf_counter() - started)
    finally:
        pool.shutdown()
    block = os.urandom(1024 * 1024)
    hashes = []
    for _ in range(ctx.pick(100, 10)):
        started = time.perf_counter()
        hashlib.sha256(block).hexdigest()
        hashes.append(time.perf_counter() - started)
    return {
        "thread_handoff_us_p50": quantile(hops, 0.5) * 1e6,
        "sha256_1MiB_ms_p50": quantile(hashes, 0.5) * 1e3,
    }


def _ratio(rows: list[dict[str, Any]], variant: str, stat: str) -> list[float]:
    return [r[variant][stat] / r["raw"][stat] for r in rows]


def run(ctx: RunContext) -> ScenarioResult:
    cloud_rows = _measure_clouds(ctx)
    memory_rows = _measure_in_memory(ctx)
    micro = _micro(ctx)

    table = Table(
        "Latency per call: failover vs the raw SDK (median over runs; ratios min-max)",
        [
            Column("provider", "provider"),
            Column("op", "op"),
            Column("size", "size"),
            Column("raw_p50", "raw p50 ms", fmt_ms),
            Column("backend_p50", "adapter p50 ms", fmt_ms),
            Column("failover_p50", "failover p50 ms", fmt_ms),
            Column("extra_us", "failover - raw µs", lambda v: f"{v:.0f}"),
            Column("ratio_p50", "p50 ratio", fmt_spread),
            Column("ratio_p99", "p99 ratio", fmt_spread),
            Column("adapter_ratio", "adapter/raw p50", fmt_ratio),
            Column("met", "≤ 1.05?", lambda v: "yes" if v else "**no**"),
        ],
        note=(
            "`raw` calls the SDK client directly; `adapter` calls failover's Backend for the "
            "provider directly; `failover` is `Storage.put`/`get` over that one backend "
            "(sha256 and version stamp on put, sha256 check on get, worker thread, breaker, "
            "health, retry policy). Ratios are failover/raw, per run, interleaved."
        ),
    )
    targets = []
    for kind in KINDS:
        worst_per_run: list[float] = []
        for op in ("put", "get"):
            for size_name in SIZES:
                rows = [
                    r
                    for r in cloud_rows
                    if (r["provider"], r["op"], r["size"]) == (kind, op, size_name)
                ]
                p50 = spread(_ratio(rows, "failover", "p50_ms"))
                p99 = spread(_ratio(rows, "failover", "p99_ms"))
                med = {
                    v: spread([r[v]["p50_ms"] for r in rows])["median"]
                    for v in ("raw", "backend", "failover")
                }
                table.rows.append(
                    {
                        "provider": kind,
                        "op": op,
                        "size": size_name,
                        "raw_p50": med["raw"],
                        "backend_p50": med["backend"],
                        "failover_p50": med["failover"],
                        "extra_us": (med["failover"] - med["raw"]) * 1000,
                        "ratio_p50": p50,
                        "ratio_p99": p99,
                        "adapter_ratio": spread(_ratio(rows, "backend", "p50_ms"))["median"],
                        "met": p50["median"] <= TARGET_RATIO,
                    }
                )
        for rep in range(ctx.repeats):
            rows = [r for r in cloud_rows if r["provider"] == kind and r["rep"] == rep]
            worst_per_run.append(max(_ratio(rows, "failover", "p50_ms")))
        worst = spread(worst_per_run)
        worst_row = max(
            (r for r in table.rows if r["provider"] == kind),
            key=lambda r: r["ratio_p50"]["median"],
        )
        targets.append(
            Target(
                name=f"overhead {kind}",
                requirement=f"median ratio ≤ {TARGET_RATIO} (worst of put/get x 1 KiB/1 MiB)",
                value=worst["median"],
                spread=worst,
                met=worst["median"] <= TARGET_RATIO,
                detail=f"worst: {worst_row['op']} {worst_row['size']}",
            )
        )

    memory = Table(
        "The facade without I/O: Storage over a memory backend vs that backend alone",
        [
            Column("op", "op"),
            Column("size", "size"),
            Column("backend_us", "backend p50 µs", lambda v: f"{v:.0f}"),
            Column("failover_us", "Storage p50 µs", lambda v: f"{v:.0f}"),
            Column("extra_us", "added µs", lambda v: f"{v:.0f}"),
        ],
        note=(
            f"For scale: handing a call to a worker thread and waiting for it costs "
            f"{micro['thread_handoff_us_p50']:.0f} µs here (p50), sha256 of 1 MiB "
            f"{micro['sha256_1MiB_ms_p50']:.2f} ms."
        ),
    )
    for op in ("put", "get"):
        for size_name in SIZES:
            rows = [r for r in memory_rows if (r["op"], r["size"]) == (op, size_name)]
            backend_us = spread([r["backend"]["p50_ms"] * 1000 for r in rows])["median"]
            failover_us = spread([r["failover"]["p50_ms"] * 1000 for r in rows])["median"]
            memory.rows.append(
                {
                    "op": op,
                    "size": size_name,
                    "backend_us": backend_us,
                    "failover_us": failover_us,
                    "extra_us": failover_us - backend_us,
                }
            )

    result = ScenarioResult(
        name=NAME,
        title="Overhead: failover (one backend) vs the raw SDK",
        parameters={
            "sizes": list(SIZES),
            "iterations_1KiB": _iterations(ctx, 1024)[0],
            "iterations_1MiB": _iterations(ctx, 1 << 20)[0],
            "repeats": ctx.repeats,
            "settings": "defaults (one backend: write quorum 1, read_policy health)",
        },
        tables=[table, memory],
        targets=targets,
        data={"clouds": cloud_rows, "memory": memory_rows, "micro": micro},
    )
    plot = plots.overhead(table.rows, ctx.out_dir / f"{NAME}.png", limit=TARGET_RATIO)
    if plot:
        result.plots.append(plot)
    return result
