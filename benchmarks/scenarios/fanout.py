"""Fan-out: three-way ``all`` and ``quorum`` writes vs each single backend.

Storage instances write interleaved in one process: one over each single backend
(``single s3``, ``single azure``, ``single gcs``) and two over all three (``all``:
3 acknowledgements, ``quorum``: 2). If fan-out is parallel, ``all`` costs about the
slowest single backend and ``quorum`` about the second fastest, never the sum.

Two more variants explain the result rather than judge it:

* ``threads (reference)``: the three backend adapters' plain puts on three bare
  threads, no failover logic at all: the fastest any parallel fan-out can be on this
  machine, where the three emulators and the client share the same cores;
* ``all, overwrite``: ``all`` rewriting existing keys (last-writer-wins makes every
  replica write conditional; the other variants write new keys).

Everything runs twice: against the emulators as they are (``local``), and with every
backend call delayed 20 ms by a :class:`~failover.testing.FaultyBackend` (``rtt``), closer
to a real cloud, whose round trip is mostly waiting rather than work on the client's
CPU. (A FaultProxy's latency mode is not used here: on keep-alive connections its
per-chunk delay interacts with Nagle's algorithm and adds a variable multiple of it.)

Every backend is wrapped in a :class:`~benchmarks.traced.TracedBackend` (the same small
cost for every variant) so that, untimed, the harness waits for a quorum write's last
replica to finish before the next measurement starts.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import time
from typing import Any

from benchmarks import plots
from benchmarks.clouds import KINDS, Clouds
from benchmarks.context import RunContext
from benchmarks.report import Column, ScenarioResult, Table, Target, fmt_ratio, fmt_spread
from benchmarks.stats import interleave, quantile, spread, summarize
from benchmarks.traced import TracedBackend
from failover import Storage
from failover.backends import Backend, from_url
from failover.backends.base import META_SHA256, META_VERSION
from failover.config import Settings
from failover.payload import Payload
from failover.replication.journal import RepairJournal
from failover.testing import FaultyBackend

NAME = "fanout"
ALL_LIMIT = 1.15
#: "quorum close to the second-fastest": judged with the same tolerance as ``all``.
QUORUM_LIMIT = 1.15
SIZES = {"1KiB": 1024, "1MiB": 1024 * 1024}
KEYS = 8
RTT_SECONDS = 0.020
OVERWRITE = "all, overwrite"
THREADS = "threads (reference)"
CONDITIONS = ("local", "rtt")


def _iterations(ctx: RunContext, condition: str, size: int) -> int:
    small = size <= 64 * 1024
    if condition == "local":
        return ctx.pick(150, 10) if small else ctx.pick(40, 4)
    return ctx.pick(80, 6) if small else ctx.pick(30, 3)


def _backend(url: str, condition: str) -> Backend:
    backend = from_url(url, max_connections=32)
    if condition == "rtt":
        return FaultyBackend(backend, latency_seconds=RTT_SECONDS)
    return backend


def _store(
    ctx: RunContext, urls: list[str], policy: str, traced: list[TracedBackend], condition: str
) -> Storage:
    backends = [TracedBackend(_backend(u, condition), record=False) for u in urls]
    traced.extend(backends)
    settings = Settings.from_urls(
        urls, write_policy=policy, journal=ctx.journal(f"fanout-{policy}")
    )
    return Storage(backends, settings=settings)


def _measure(ctx: RunContext, clouds: Clouds, condition: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    urls = {kind: clouds.bucket(kind, "fanout") for kind in KINDS}
    traced: list[TracedBackend] = []
    stores = {f"single {k}": _store(ctx, [urls[k]], "all", traced, condition) for k in KINDS}
    stores["all"] = _store(ctx, list(urls.values()), "all", traced, condition)
    stores["quorum"] = _store(ctx, list(urls.values()), "quorum", traced, condition)
    plain = [_backend(u, condition) for u in urls.values()]
    pool = cf.ThreadPoolExecutor(max_workers=len(plain))

    def settle() -> None:
        for backend in traced:
            backend.wait_idle()

    try:
        for rep in range(ctx.repeats):
            for size_name, size in SIZES.items():
                data = os.urandom(size)
                payload = Payload.from_bytes(data)
                meta = {META_VERSION: "0" * 16 + ".000000.bench", META_SHA256: payload.sha256}

                def threads(i: int, p: Payload = payload, m: dict[str, str] = meta) -> None:
                    key = f"fan/threads/{condition}/{i}-{time.monotonic_ns()}"
                    futures = [
                        pool.submit(b.put, key, p, content_type="a/b", metadata=m) for b in plain
                    ]
                    for future in futures:
                        future.result()

                # New keys: a replicated put of a new key is one create-only request
                # per replica, like a single backend's put.
                variants: dict[str, Any] = {
                    name: (
                        lambda i, s=store, n=name, r=rep, z=size_name, d=data: s.put(
                            f"fan/{condition}/{n}/{z}/{r}/{i}", d
                        )
                    )
                    for name, store in stores.items()
                }
                variants[OVERWRITE] = lambda i, d=data: stores["all"].put(
                    f"fan/{condition}/overwrite/{i % KEYS}", d
                )
                variants[THREADS] = threads
                small = size <= 64 * 1024
                samples = interleave(
                    variants,
                    iterations=_iterations(ctx, condition, size),
                    warmup=ctx.pick(5, 2) if small else 2,
                    settle=settle,
                )
                row = {"rep": rep, "size": size_name, "condition": condition}
                row.update({name: summarize(s) for name, s in samples.items()})
                rows.append(row)
                ctx.log(
                    f"fanout {condition} rep {rep + 1}/{ctx.repeats} {size_name}: "
                    + ", ".join(f"{n} {row[n]['p50_ms']:.1f}" for n in variants)
                    + " ms p50"
                )
    finally:
        pool.shutdown()
        for backend in plain:
            backend.close()
        for store in stores.values():
            store.close()
    return rows


def _journal_cost(ctx: RunContext) -> dict[str, float]:
    """What the durable intent of one replicated write costs (SQLite, fsynced WAL)."""
    journal = RepairJournal(ctx.journal("fanout-cost"))
    try:
        record, complete = [], []
        for i in range(ctx.pick(300, 30)):
            started = time.perf_counter()
            journal.record(list(KINDS), f"k{i}", f"v{i}", "put")
            record.append(time.perf_counter() - started)
            for kind in KINDS:
                started = time.perf_counter()
                journal.complete(kind, f"k{i}", f"v{i}")
                complete.append(time.perf_counter() - started)
    finally:
        journal.close()
    return {
        "record_ms_p50": quantile(record, 0.5) * 1000,
        "record_ms_p99": quantile(record, 0.99) * 1000,
        "complete_ms_p50": quantile(complete, 0.5) * 1000,
    }


def run(ctx: RunContext) -> ScenarioResult:
    with Clouds(KINDS) as clouds:
        per_run = [row for condition in CONDITIONS for row in _measure(ctx, clouds, condition)]
    journal = _journal_cost(ctx)
    singles = [f"single {k}" for k in KINDS]
    ms = lambda s: fmt_spread(s, lambda v: f"{v:.1f}")  # noqa: E731 - a table formatter
    table = Table(
        "Write latency in ms (median and min-max over runs)",
        [
            Column("condition", "network"),
            Column("size", "size"),
            Column("variant", "variant"),
            Column("p50", "p50 ms", ms),
            Column("p99", "p99 ms", ms),
            Column("vs", "compared with"),
            Column("ratio", "p50 ratio", fmt_spread),
        ],
        note=(
            "`local`: the emulators as they are; `rtt`: every backend call delayed "
            f"{RTT_SECONDS * 1000:g} ms (FaultyBackend latency). `all` is compared with the "
            "slowest single backend of the same run, `quorum` with the second fastest (ratios of "
            "p50s, per run); the sum of the singles is what a sequential fan-out would "
            "cost. `threads (reference)` is the three adapters' plain puts on three bare "
            "threads. Every variant writes a new key each time except `all, overwrite`, "
            "which rewrites 8 existing keys. Journal: recording one write's intent for 3 "
            f"replicas takes {journal['record_ms_p50']:.2f} ms p50 "
            f"({journal['record_ms_p99']:.2f} ms p99, fsynced), clearing one replica's "
            f"row {journal['complete_ms_p50']:.2f} ms."
        ),
    )
    targets: list[Target] = []
    for condition in CONDITIONS:
        for size_name in SIZES:
            runs = [r for r in per_run if (r["condition"], r["size"]) == (condition, size_name)]
            ratios: dict[str, list[float]] = {
                k: [] for k in ("all", "quorum", "sum", "overwrite", "threads")
            }
            for r in runs:
                p50s = sorted(r[s]["p50_ms"] for s in singles)
                ratios["all"].append(r["all"]["p50_ms"] / p50s[-1])
                ratios["quorum"].append(r["quorum"]["p50_ms"] / p50s[1])
                ratios["sum"].append(r["all"]["p50_ms"] / sum(p50s))
                ratios["overwrite"].append(r[OVERWRITE]["p50_ms"] / r["all"]["p50_ms"])
                ratios["threads"].append(r[THREADS]["p50_ms"] / p50s[-1])
            compared = {
                "all": ("slowest single", "all"),
                "quorum": ("2nd-fastest single", "quorum"),
                OVERWRITE: ("all (new keys)", "overwrite"),
                THREADS: ("slowest single", "threads"),
            }
            for variant in [*singles, "all", "quorum", OVERWRITE, THREADS]:
                row: dict[str, Any] = {
                    "condition": condition,
                    "size": size_name,
                    "variant": variant,
                    "p50": spread([r[variant]["p50_ms"] for r in runs]),
                    "p99": spread([r[variant]["p99_ms"] for r in runs]),
                }
                if variant in compared:
                    vs, key = compared[variant]
                    row |= {"vs": vs, "ratio": spread(ratios[key])}
                table.rows.append(row)
            table.rows.append(
                {
                    "condition": condition,
                    "size": size_name,
                    "variant": "all",
                    "vs": "sum of singles",
                    "ratio": spread(ratios["sum"]),
                }
            )
            a, q, t = spread(ratios["all"]), spread(ratios["quorum"]), spread(ratios["threads"])
            targets += [
                Target(
                    name=f"fan-out all, {size_name}, {condition}",
                    requirement=f"p50 ≤ {ALL_LIMIT}x the slowest single backend",
                    value=a["median"],
                    spread=a,
                    met=a["median"] <= ALL_LIMIT,
                    detail=(
                        f"{fmt_ratio(spread(ratios['sum'])['median'])}x the sum of singles; "
                        f"bare threads {fmt_ratio(t['median'])}x"
                    ),
                ),
                Target(
                    name=f"fan-out quorum, {size_name}, {condition}",
                    requirement=f"p50 close to the 2nd-fastest single (≤ {QUORUM_LIMIT}x)",
                    value=q["median"],
                    spread=q,
                    met=q["median"] <= QUORUM_LIMIT,
                ),
            ]
    result = ScenarioResult(
        name=NAME,
        title="Fan-out: replicated writes vs single backends",
        parameters={
            "sizes": list(SIZES),
            "conditions": f"local, rtt ({RTT_SECONDS * 1000:g} ms added to each backend call)",
            "iterations_local": f"{_iterations(ctx, 'local', 1024)} (1 KiB), "
            f"{_iterations(ctx, 'local', 1 << 20)} (1 MiB)",
            "iterations_rtt": f"{_iterations(ctx, 'rtt', 1024)} (1 KiB), "
            f"{_iterations(ctx, 'rtt', 1 << 20)} (1 MiB)",
            "repeats": ctx.repeats,
            "settings": "defaults; write_policy all / quorum (2 of 3)",
        },
        tables=[table],
        targets=targets,
        data={"runs": per_run, "journal": journal},
    )
    plot = plots.fanout([r for r in table.rows if "p50" in r], ctx.out_dir / f"{NAME}.png")
    if plot:
        result.plots.append(plot)
    return result
