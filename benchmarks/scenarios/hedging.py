"""Hedging: one backend stalls 5 % of its reads for 500 ms; ``health`` vs ``hedged`` reads.

Three backends on the emulators; the stalling one is fake-gcs-server (the fastest, so
the one health routing prefers), wrapped in a :class:`~failover.testing.FaultyBackend`
that adds 500 ms to a random 5 % of its reads. Read configurations, interleaved read by
read in one process, each with its own Storage and clients:

* ``healthy``: no stall, ``read_policy="health"`` (the reference tail);
* ``health``: the stall, ``read_policy="health"`` (routing alone);
* ``hedged``: the stall, ``read_policy="hedged"`` with the default adaptive delay;
* ``hedged, tuned``: the stall, ``read_policy="hedged"`` with ``hedge_delay_ms`` set to
  the healthy p95 measured in a warm-up (what "The Tail at Scale" recommends).

Health routing reacts to a single stall (peak-EWMA latency) and then avoids the
stalling backend for a while, so with the default routing few reads meet a stall at all.
To measure what hedging itself does, every configuration also runs ``pinned``: the
stalling backend is forced first in every read's order (``OrderedRouter``, as in
``tests/scenarios/test_degraded.py``), so that every read meets the stall candidate.
Targets are judged in both conditions.

Extra requests are backend reads beyond one per application read (hedges, and reads
that failed over).
"""

from __future__ import annotations

import math
import os
from typing import Any

from benchmarks import plots
from benchmarks.clouds import KINDS, Clouds
from benchmarks.context import RunContext
from benchmarks.report import Column, ScenarioResult, Table, Target, fmt_ms, fmt_pct, fmt_spread
from benchmarks.stats import interleave, quantile, spread, summarize
from benchmarks.traced import TracedBackend
from failover import Storage
from failover.backends import Backend, from_url
from failover.config import Settings
from failover.events import Event, HedgeFired
from failover.resilience import OrderedRouter
from failover.testing import FaultyBackend

NAME = "hedging"
STALLING = "gcs"
STALL_PROBABILITY = 0.05
STALL_SECONDS = 0.5
P99_LIMIT = 1.5
EXTRA_LIMIT = 0.10
KEYS = 20
VALUE_BYTES = 1024


class _Hedges:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, event: Event) -> None:
        if isinstance(event, HedgeFired):
            self.count += 1


class _Config:
    """One read configuration: its Storage, its traced backends, its hedge counter."""

    def __init__(
        self,
        ctx: RunContext,
        name: str,
        urls: list[str],
        *,
        stall: bool,
        seed: int,
        pinned: bool,
        **options: Any,
    ) -> None:
        self.name = name
        self.hedges = _Hedges()
        self.faulty: FaultyBackend | None = None
        self.traced: list[TracedBackend] = []
        for url in urls:
            backend: Backend = from_url(url, max_connections=32)
            if stall and backend.name == STALLING:
                backend = self.faulty = FaultyBackend(
                    backend,
                    seed=seed,
                    tail_probability=STALL_PROBABILITY,
                    tail_latency_seconds=STALL_SECONDS,
                    operations={"get", "open"},
                )
            self.traced.append(TracedBackend(backend))
        settings = Settings.from_urls(urls, journal=ctx.journal(f"hedging-{name}"), **options)
        self.store = Storage(self.traced, settings=settings, hooks=[self.hedges])
        if pinned:
            # The public read policies pair hedging with health routing; pin the order
            # the way the scenario tests do, so that the stalling backend is always first.
            self.store._dispatch.router = OrderedRouter()

    def reset(self) -> None:
        for backend in self.traced:
            backend.calls.clear()
        self.hedges.count = 0
        if self.faulty is not None:
            self.faulty.reset_counters()

    def backend_reads(self) -> int:
        return sum(b.count("get") for b in self.traced)

    def stalls(self) -> int:
        return 0 if self.faulty is None else self.faulty.faults.get("tail", 0)

    def share(self, name: str) -> float:
        total = self.backend_reads()
        mine = sum(b.count("get") for b in self.traced if b.name == name)
        return mine / total if total else math.nan


CONDITIONS = ("routed", "pinned")
NAMES = {
    "routed": ("healthy", "health", "hedged", "hedged, tuned"),
    "pinned": ("healthy", "no hedging", "hedged", "hedged, tuned"),
}


def _reads(ctx: RunContext, condition: str) -> int:
    return ctx.pick(1500, 100) if condition == "routed" else ctx.pick(800, 60)


def _one_run(ctx: RunContext, clouds: Clouds, rep: int, condition: str) -> dict[str, Any]:
    reads = _reads(ctx, condition)
    pinned = condition == "pinned"
    healthy_name, plain_name, hedged_name, tuned_name = NAMES[condition]
    urls = [clouds.bucket(kind, "hedging") for kind in KINDS]
    if pinned:
        urls.sort(key=lambda u: not u.startswith("gs://"))  # the staller first
    with Storage.from_urls(urls, write_policy="all", journal=ctx.journal("hedging-load")) as loader:
        keys = [f"hedge/{i}" for i in range(KEYS)]
        for key in keys:
            loader.put(key, os.urandom(VALUE_BYTES))
    healthy = _Config(ctx, healthy_name, urls, stall=False, seed=rep, pinned=pinned)
    configs = [healthy]
    try:
        # The tuned hedge delay: the healthy p95, from a warm-up of healthy reads.
        warm = interleave(
            {"healthy": lambda i: healthy.store.get(keys[i % KEYS])},
            iterations=ctx.pick(300, 40),
            warmup=20,
        )["healthy"]
        tuned_ms = quantile(warm, 0.95) * 1000
        stalled = {"stall": True, "seed": rep + 1000, "pinned": pinned}
        configs += [
            _Config(ctx, plain_name, urls, **stalled),
            _Config(ctx, hedged_name, urls, read_policy="hedged", **stalled),
            _Config(
                ctx,
                tuned_name,
                urls,
                read_policy="hedged",
                hedge_delay_ms=round(tuned_ms, 3),
                **stalled,
            ),
        ]
        variants = {c.name: (lambda i, s=c.store: s.get(keys[i % KEYS])) for c in configs}
        interleave(variants, iterations=ctx.pick(50, 10))  # warm-up: routing learns
        for config in configs:
            config.reset()
        ctx.log(f"hedging {condition} run {rep + 1}: {reads} reads per configuration")
        samples = interleave(variants, iterations=reads)
        result: dict[str, Any] = {
            "rep": rep,
            "condition": condition,
            "reads": reads,
            "tuned_delay_ms": tuned_ms,
        }
        for config in configs:
            backend_reads = config.backend_reads()
            result[config.name] = {
                **summarize(samples[config.name]),
                "backend_reads": backend_reads,
                "extra_requests": backend_reads / reads - 1,
                "hedges": config.hedges.count,
                "stalls": config.stalls(),
                "stalling_share": config.share(STALLING),
                "latencies_ms": [round(s * 1000, 3) for s in samples[config.name]],
            }
    finally:
        for config in configs:
            config.store.close()
    return result


def run(ctx: RunContext) -> ScenarioResult:
    with Clouds(KINDS) as clouds:
        runs = [
            _one_run(ctx, clouds, rep, condition)
            for condition in CONDITIONS
            for rep in range(ctx.repeats)
        ]
    ms = lambda s: fmt_spread(s, fmt_ms)  # noqa: E731 - a table formatter
    table = Table(
        "Read latency and extra requests (median and min-max over runs)",
        [
            Column("condition", "routing"),
            Column("config", "configuration"),
            Column("p50", "p50 ms", ms),
            Column("p99", "p99 ms", ms),
            Column("p999", "p99.9 ms", ms),
            Column("max", "max ms", ms),
            Column("p99_vs_healthy", "p99 / healthy p99", fmt_spread),
            Column("extra", "extra requests", lambda s: fmt_spread(s, fmt_pct)),
            Column("hedges", "hedges fired", lambda s: f"{s['median']:.0f}"),
            Column("stalls", "stalls hit", lambda s: f"{s['median']:.0f}"),
            Column("share", f"reads sent to {STALLING}", lambda s: fmt_pct(s["median"])),
        ],
        note=(
            f"Reads of {VALUE_BYTES // 1024} KiB objects per configuration and run: "
            f"{_reads(ctx, 'routed')} routed, {_reads(ctx, 'pinned')} pinned. `{STALLING}` "
            f"adds {STALL_SECONDS * 1000:g} ms to {STALL_PROBABILITY:.0%} of the reads it "
            'serves ("stalls hit" counts them). `routed`: the default health routing; '
            f"`pinned`: {STALLING} forced first in every read. The tuned delay (healthy p95 "
            "of a warm-up) was "
            + ", ".join(f"{r['tuned_delay_ms']:.1f} ms ({r['condition']})" for r in runs)
            + "."
        ),
    )
    targets = []
    plotted: dict[str, list[float]] = {}
    for condition in CONDITIONS:
        chosen = [r for r in runs if r["condition"] == condition]
        healthy_name, plain_name, hedged_name, tuned_name = NAMES[condition]
        ratios: dict[str, dict[str, float]] = {}
        for name in NAMES[condition]:
            per_run = [r[name] for r in chosen]
            ratios[name] = spread([r[name]["p99_ms"] / r[healthy_name]["p99_ms"] for r in chosen])
            table.rows.append(
                {
                    "condition": condition,
                    "config": name,
                    "p50": spread([p["p50_ms"] for p in per_run]),
                    "p99": spread([p["p99_ms"] for p in per_run]),
                    "p999": spread([p["p999_ms"] for p in per_run]),
                    "max": spread([p["max_ms"] for p in per_run]),
                    "p99_vs_healthy": ratios[name],
                    "extra": spread([p["extra_requests"] for p in per_run]),
                    "hedges": spread([p["hedges"] for p in per_run]),
                    "stalls": spread([p["stalls"] for p in per_run]),
                    "share": spread([p["stalling_share"] for p in per_run]),
                }
            )
            plotted[f"{condition}: {name}"] = chosen[0][name]["latencies_ms"]
        for name in (hedged_name, tuned_name):
            extra = spread([r[name]["extra_requests"] for r in chosen])
            label = "adaptive delay (default)" if name == hedged_name else "tuned delay"
            targets += [
                Target(
                    name=f"{condition}, {label}: p99",
                    requirement=f"<= {P99_LIMIT}x the healthy p99",
                    value=ratios[name]["median"],
                    spread=ratios[name],
                    met=ratios[name]["median"] <= P99_LIMIT,
                    detail=f"without hedging: {fmt_spread(ratios[plain_name])}x",
                ),
                Target(
                    name=f"{condition}, {label}: extra requests",
                    requirement=f"<= {EXTRA_LIMIT:.0%}",
                    value=extra["median"],
                    spread=extra,
                    met=extra["median"] <= EXTRA_LIMIT,
                    unit="%",
                ),
            ]
    result = ScenarioResult(
        name=NAME,
        title=f"Hedging: {STALLING} stalls {STALL_PROBABILITY:.0%} of reads for "
        f"{STALL_SECONDS * 1000:g} ms",
        parameters={
            "reads_per_config": f"{_reads(ctx, 'routed')} routed, {_reads(ctx, 'pinned')} pinned",
            "stalling_backend": STALLING,
            "stall": f"{STALL_PROBABILITY:.0%} x {STALL_SECONDS * 1000:g} ms",
            "repeats": ctx.repeats,
            "settings": "defaults (read_policy health / hedged)",
        },
        tables=[table],
        targets=targets,
        data={"runs": runs},
    )
    plot = plots.hedging(plotted, ctx.out_dir / f"{NAME}.png")
    if plot:
        result.plots.append(plot)
    return result
