"""Outage timeline: steady mixed load while one backend is blackholed, then healed.

Three backends (moto, azurite, fake-gcs-server), each behind a FaultProxy in pass-through
mode. An open-loop load generator issues operations at a fixed rate (70 % reads, 30 %
writes of 4 KiB objects over a pool of keys), each on a worker thread so that a slow call
never delays the next one. At one third of the run the victim's proxy blackholes (it
accepts and never answers, on open connections too); at two thirds it passes traffic
again. After the load ends the harness watches, without load, until the replicas agree.

The victim is fake-gcs-server: the fastest backend, so health routing sends it the most
reads before the outage (the worst case for reads).

Reported: application-visible errors, time until the victim's breaker opened (and closed
again after healing), latency per phase, and convergence after healing: when every write
the victim missed had reached it, and when the repair journal had nothing pending.

**Catch-up** is the stretch after healing while the repairer brings the victim up to date
(until every write it missed has reached it): the application's p99 over that stretch
is compared with its p99 before the outage (target: at most 2x).
"""

from __future__ import annotations

import concurrent.futures as cf
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

from benchmarks import plots
from benchmarks.clouds import KINDS, Clouds
from benchmarks.context import RunContext
from benchmarks.report import Column, ScenarioResult, Table, Target, fmt_ms
from benchmarks.stats import spread, summarize
from benchmarks.traced import TracedBackend
from failover import Storage
from failover.backends import from_url
from failover.backends.base import META_VERSION
from failover.config import Settings
from failover.errors import NotFoundError
from failover.events import BreakerStateChanged, Event

NAME = "outage"
VICTIM = "gcs"
RATE_PER_SECOND = 20
READ_SHARE = 0.7
VALUE_BYTES = 4096
KEY_COUNT = 100
QUICK_KEY_COUNT = 30
BUCKET_SECONDS = 0.5


#: Library settings for this scenario; everything else is the default.
SETTINGS = {
    "timeout_seconds": 1.0,
    "deadline_seconds": 5.0,
    "breaker_reset_seconds": 3.0,
    "repair_interval_seconds": 1.0,
}


@dataclass(frozen=True, slots=True)
class Op:
    """One application call: scheduled/started/ended are seconds since the load began."""

    kind: str
    key: str
    scheduled: float
    started: float
    ended: float
    ok: bool
    error: str = ""
    version: str = ""

    @property
    def latency(self) -> float:
        # From the scheduled time: what a request arriving then would have waited.
        return self.ended - self.scheduled


class EventLog:
    """Event hook keeping (monotonic time, event) pairs."""

    def __init__(self) -> None:
        self.events: list[tuple[float, Event]] = []

    def __call__(self, event: Event) -> None:
        self.events.append((time.monotonic(), event))


def _value(key: str, seq: int) -> bytes:
    return f"{key}#{seq}".encode().ljust(VALUE_BYTES, b".")


def _run_load(
    store: Storage, *, duration: float, t0: float, seed: int, key_count: int
) -> tuple[list[Op], float]:
    rng = random.Random(seed)
    keys = [f"outage/{i:03d}" for i in range(key_count)]
    ops: list[Op] = []
    lock = threading.Lock()

    def one(i: int, kind: str, key: str, scheduled: float) -> None:
        started = time.monotonic() - t0
        ok, error, version = True, "", ""
        try:
            if kind == "read":
                store.get(key)
            else:
                version = store.put(key, _value(key, i)).version
        except Exception as exc:  # every failure the application would see
            ok, error = False, f"{type(exc).__name__}: {exc}"[:300]
        ended = time.monotonic() - t0
        with lock:
            ops.append(Op(kind, key, scheduled, started, ended, ok, error, version))

    total = int(duration * RATE_PER_SECOND)
    lag = 0.0
    with cf.ThreadPoolExecutor(max_workers=64, thread_name_prefix="bench-load") as pool:
        for i in range(total):
            scheduled = i / RATE_PER_SECOND
            wait = t0 + scheduled - time.monotonic()
            if wait > 0:
                time.sleep(wait)  # pacing the open-loop load generator
            else:
                lag = max(lag, -wait)
            kind = "read" if rng.random() < READ_SHARE else "write"
            pool.submit(one, i, kind, rng.choice(keys), scheduled)
    return sorted(ops, key=lambda o: o.scheduled), lag


def _phase(op: Op, fault_at: float, heal_at: float) -> str:
    if op.scheduled < fault_at:
        return "before"
    return "outage" if op.scheduled < heal_at else "healed"


def _convergence(
    ops: list[Op], victim: TracedBackend, *, heal_at: float, t0: float
) -> dict[str, Any]:
    """Which writes the victim missed by the heal, and when each reached it."""
    newest: dict[str, str] = {}
    for op in ops:
        if op.kind == "write" and op.ok and op.ended <= heal_at:
            newest[op.key] = max(newest.get(op.key, ""), op.version)
    puts = [c for c in victim.calls if c.operation == "put" and c.ok]
    held: dict[str, str] = {}
    for call in puts:
        if call.ended - t0 <= heal_at:
            held[call.key] = max(held.get(call.key, ""), call.version)
    missed = {k: v for k, v in newest.items() if held.get(k, "") < v}
    reached: dict[str, tuple[float, str]] = {}
    for call in sorted(puts, key=lambda c: c.ended):
        at = call.ended - t0
        want = missed.get(call.key)
        if want is None or call.key in reached or at <= heal_at or call.version < want:
            continue
        reached[call.key] = (at, "repaired" if call.version == want else "overwritten")
    done = len(reached) == len(missed)
    return {
        "missed_writes": len(missed),
        "repaired": sum(1 for _, how in reached.values() if how == "repaired"),
        "overwritten": sum(1 for _, how in reached.values() if how == "overwritten"),
        "outstanding": len(missed) - len(reached),
        "all_reached_after_heal_s": (
            max((at for at, _ in reached.values()), default=heal_at) - heal_at if done else None
        ),
    }


def _pending_monitor(
    store: Storage, t0: float, stop: threading.Event, samples: list[tuple[float, int]]
) -> None:
    while not stop.is_set():
        try:
            pending = sum(h.pending_repairs for h in store.health().values())
        except Exception:  # a closing store: stop sampling
            return
        samples.append((time.monotonic() - t0, pending))
        stop.wait(0.1)


def _final_check(store: Storage, ops: list[Op]) -> dict[str, Any]:
    """Ground truth: ask every replica (directly) for every key's version."""
    newest: dict[str, str] = {}
    for op in ops:
        if op.kind == "write" and op.ok:
            newest[op.key] = max(newest.get(op.key, ""), op.version)
    differing = 0
    stale: list[str] = []
    for key, version in newest.items():
        for backend in store.backends.values():
            inner = getattr(backend, "inner", backend)
            try:
                held = (inner.head(key).metadata or {}).get(META_VERSION, "")
            except NotFoundError:
                held = ""
            if held < version:
                differing += 1
                stale.append(f"{backend.name}:{key} holds {held or 'nothing'} < {version}")
    return {"keys_checked": len(newest), "stale_replicas": differing, "stale": stale[:20]}


def _diagnose(store: Storage, final: dict[str, Any]) -> None:
    """Why replicas still differ: journal rows left, and what the writer marks in flight.

    Private attributes, read only when present: diagnostics, not measurements.
    """
    journal = getattr(store, "_journal", None)
    if journal is not None:
        final["journal_pending"] = [repr(a) for a in journal.pending()][:20]
    marks = getattr(getattr(store, "_in_flight", None), "_items", None)
    if marks is not None:
        final["marked_in_flight"] = sorted(f"{name}:{key}" for name, key in set(marks))[:20]


def _one_run(ctx: RunContext, rep: int) -> dict[str, Any]:
    duration = float(ctx.pick(30, 6))
    fault_at, heal_at = duration / 3, 2 * duration / 3
    key_count = ctx.pick(KEY_COUNT, QUICK_KEY_COUNT)
    # Long enough for the repairer, which leaves a put alone while it is younger than its
    # grace period (2 x deadline); a quick run only checks that the plumbing works.
    observe = float(ctx.pick(10 + 2 * SETTINGS["deadline_seconds"], 3))
    with Clouds(KINDS, proxied=KINDS) as clouds:
        urls = [clouds.bucket(kind, "outage") for kind in KINDS]
        traced = [
            TracedBackend(
                from_url(u, timeout_seconds=SETTINGS["timeout_seconds"], max_connections=32)
            )
            for u in urls
        ]
        events = EventLog()
        settings = Settings.from_urls(urls, journal=ctx.journal("outage"), **SETTINGS)
        store = Storage(traced, settings=settings, hooks=[events])
        victim = next(b for b in traced if b.name == VICTIM)
        try:
            for i in range(key_count):
                key = f"outage/{i:03d}"
                store.put(key, _value(key, -1))
            for backend in traced:
                backend.wait_idle()
                backend.calls.clear()
            events.events.clear()
            proxy = clouds.proxy(VICTIM)
            t0 = time.monotonic() + 0.2
            marks: dict[str, float] = {}

            def faults() -> None:
                time.sleep(max(0.0, t0 + fault_at - time.monotonic()))
                marks["blackhole_called"] = time.monotonic() - t0
                proxy.blackhole()
                marks["blackhole_active"] = time.monotonic() - t0
                time.sleep(max(0.0, t0 + heal_at - time.monotonic()))
                marks["heal_called"] = time.monotonic() - t0
                proxy.pass_through()
                marks["heal_active"] = time.monotonic() - t0

            fault_thread = threading.Thread(target=faults, name="bench-faults")
            stop = threading.Event()
            pending: list[tuple[float, int]] = []
            monitor = threading.Thread(
                target=_pending_monitor, args=(store, t0, stop, pending), name="bench-monitor"
            )
            fault_thread.start()
            monitor.start()
            ctx.log(
                f"outage run {rep + 1}: {duration:g} s of load, {VICTIM} down "
                f"{fault_at:g}-{heal_at:g} s"
            )
            try:
                ops, lag = _run_load(store, duration=duration, t0=t0, seed=rep, key_count=key_count)
            finally:
                fault_thread.join()
            # Watch (no load) until the replicas agree, at most ``observe`` seconds.
            give_up = time.monotonic() + observe
            while time.monotonic() < give_up:
                conv = _convergence(ops, victim, heal_at=heal_at, t0=t0)
                if conv["outstanding"] == 0 and pending and pending[-1][1] == 0:
                    break
                time.sleep(0.2)
            stop.set()
            monitor.join()
            conv = _convergence(ops, victim, heal_at=heal_at, t0=t0)
            final = _final_check(store, ops)
            _diagnose(store, final)
            repair_seconds = None
            if final["stale_replicas"]:
                started = time.monotonic()
                report = store.repair()
                repair_seconds = time.monotonic() - started
                final["explicit_repair"] = {"seconds": repair_seconds, "report": repr(report)}
                final["after_explicit_repair"] = _final_check(store, ops)
        finally:
            store.close()
    breaker = [
        (t - t0, e.old, e.new)
        for t, e in events.events
        if isinstance(e, BreakerStateChanged) and e.backend == VICTIM
    ]
    opened = next((t for t, _, new in breaker if new == "open" and t >= fault_at), None)
    closed = next((t for t, _, new in breaker if new == "closed" and t >= heal_at), None)
    zero_after_heal = next((t for t, n in pending if t >= heal_at and n == 0), None)
    phases: dict[str, dict[str, Any]] = {}
    reached = conv["all_reached_after_heal_s"]
    catch_up_end = heal_at + (reached if reached is not None else duration - heal_at)
    for phase in ("before", "outage", "healed", "catch-up"):
        if phase == "catch-up":
            chosen = [o for o in ops if heal_at <= o.scheduled < catch_up_end]
        else:
            chosen = [o for o in ops if _phase(o, fault_at, heal_at) == phase]
        phases[phase] = {
            "all": summarize([o.latency for o in chosen]),
            "read": summarize([o.latency for o in chosen if o.kind == "read"]),
            "write": summarize([o.latency for o in chosen if o.kind == "write"]),
            "errors": sum(1 for o in chosen if not o.ok),
        }
    traffic = {}
    buckets = int((duration + observe) / BUCKET_SECONDS) + 1
    for backend in traced:
        ok, failed = [0.0] * buckets, [0.0] * buckets
        for call in backend.calls:
            index = int((call.started - t0) / BUCKET_SECONDS)
            if 0 <= index < buckets:
                (failed if call.failed else ok)[index] += 1 / BUCKET_SECONDS
        traffic[backend.name] = {"ok": ok, "failed": failed}
    return {
        "rep": rep,
        "duration_s": duration,
        "fault_at_s": fault_at,
        "heal_at_s": heal_at,
        "marks": marks,
        "operations": len(ops),
        "errors": sum(1 for o in ops if not o.ok),
        "error_samples": sorted({o.error for o in ops if not o.ok})[:5],
        "max_scheduling_lag_s": lag,
        "breaker_transitions": breaker,
        "breaker_open_after_fault_s": None if opened is None else opened - fault_at,
        "breaker_closed_after_heal_s": None if closed is None else closed - heal_at,
        "pending_zero_after_heal_s": (
            None if zero_after_heal is None else zero_after_heal - heal_at
        ),
        "pending_max": max((n for _, n in pending), default=0),
        "catch_up_s": catch_up_end - heal_at,
        "catch_up_p99_ratio": (
            phases["catch-up"]["all"].get("p99_ms", float("nan"))
            / phases["before"]["all"].get("p99_ms", float("nan"))
            if phases["catch-up"]["all"].get("n") and phases["before"]["all"].get("n")
            else None
        ),
        "convergence": conv,
        "final_check": final,
        "phases": phases,
        "timeline": {
            "victim": VICTIM,
            "fault_at": fault_at,
            "heal_at": heal_at,
            "bucket_seconds": BUCKET_SECONDS,
            "marks": {
                "breaker open": opened,
                "breaker closed": closed,
                "journal drained": zero_after_heal,
            },
            "ops": [(o.scheduled, o.latency * 1000, o.kind, o.ok) for o in ops],
            "traffic": traffic,
            "pending": pending,
        },
    }


def _pooled_catch_up(runs: list[dict[str, Any]]) -> dict[str, float]:
    """p99 of all runs' catch-up requests over p99 of all their requests before the outage.

    One run's catch-up (a few seconds at 20 requests/s) holds about 90 requests, so its
    own p99 is its slowest request; pooled over the runs it is a percentile again.
    """
    before: list[float] = []
    catch_up: list[float] = []
    for r in runs:
        start, end = r["heal_at_s"], r["heal_at_s"] + r["catch_up_s"]
        for scheduled, latency_ms, _kind, _ok in r["timeline"]["ops"]:
            if scheduled < r["fault_at_s"]:
                before.append(latency_ms / 1000)
            elif start <= scheduled < end:
                catch_up.append(latency_ms / 1000)
    b, c = summarize(before), summarize(catch_up)
    return {
        "before_n": len(before),
        "catch_up_n": len(catch_up),
        "before_p99_ms": b.get("p99_ms", float("nan")),
        "catch_up_p99_ms": c.get("p99_ms", float("nan")),
        "ratio": c.get("p99_ms", float("nan")) / b.get("p99_ms", float("nan")),
    }


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"


def run(ctx: RunContext) -> ScenarioResult:
    runs = [_one_run(ctx, rep) for rep in range(ctx.repeats)]
    for r in runs:
        ctx.log(
            f"outage run {r['rep'] + 1}: {r['errors']} errors, breaker open after "
            f"{_seconds(r['breaker_open_after_fault_s'])}, missed writes "
            f"{r['convergence']['missed_writes']}, all reached the victim "
            f"{_seconds(r['convergence']['all_reached_after_heal_s'])} after healing"
        )
    phases = Table(
        "Latency per phase (ms, from the scheduled start; median over runs)",
        [
            Column("phase", "phase"),
            Column("op", "operations"),
            Column("n", "calls", lambda v: f"{v:.0f}"),
            Column("p50", "p50 ms", fmt_ms),
            Column("p99", "p99 ms", fmt_ms),
            Column("max", "max ms", fmt_ms),
            Column("errors", "errors", lambda v: f"{v:.0f}"),
        ],
    )
    for phase in ("before", "outage", "healed", "catch-up"):
        for op in ("read", "write", "all"):
            stats = [r["phases"][phase][op] for r in runs]
            phases.rows.append(
                {
                    "phase": phase,
                    "op": op,
                    "n": spread([s.get("n", 0) for s in stats])["median"],
                    "p50": spread([s.get("p50_ms", float("nan")) for s in stats])["median"],
                    "p99": spread([s.get("p99_ms", float("nan")) for s in stats])["median"],
                    "max": spread([s.get("max_ms", float("nan")) for s in stats])["median"],
                }
            )
            if op == "all":
                phases.rows[-1]["errors"] = spread([r["phases"][phase]["errors"] for r in runs])[
                    "median"
                ]
    events = Table(
        "What happened, per run",
        [
            Column("run", "run"),
            Column("ops", "operations", str),
            Column("errors", "app errors", str),
            Column("open", "breaker open after fault", _seconds),
            Column("closed", "breaker closed after heal", _seconds),
            Column("missed", "writes the victim missed", str),
            Column("how", "reached it by repair / newer write", str),
            Column("reached", "all reached it after heal", _seconds),
            Column("drained", "journal empty after heal", _seconds),
            Column("final", "stale replicas at end", str),
        ],
    )
    for r in runs:
        c = r["convergence"]
        events.rows.append(
            {
                "run": r["rep"] + 1,
                "ops": r["operations"],
                "errors": r["errors"],
                "open": r["breaker_open_after_fault_s"],
                "closed": r["breaker_closed_after_heal_s"],
                "missed": c["missed_writes"],
                "how": f"{c['repaired']} / {c['overwritten']}",
                "reached": c["all_reached_after_heal_s"],
                "drained": r["pending_zero_after_heal_s"],
                "final": r["final_check"]["stale_replicas"],
            }
        )

    def figure(key: str) -> dict[str, float]:
        values = [r[key] for r in runs]
        return spread([float("nan") if v is None else v for v in values])

    errors = spread([r["errors"] for r in runs])
    ratios = [r["catch_up_p99_ratio"] for r in runs]
    ratio = spread([float("nan") if v is None else v for v in ratios])
    pooled = _pooled_catch_up(runs)
    reached = [r["convergence"]["all_reached_after_heal_s"] for r in runs]
    converged = spread([float("nan") if v is None else v for v in reached])
    targets = [
        Target(
            name="outage: application-visible errors",
            requirement="0",
            value=errors["median"],
            spread=errors,
            met=max(r["errors"] for r in runs) == 0,
            unit="count",
            detail="worst run counted",
        ),
        Target(
            name="outage: breaker open after the fault",
            requirement="report",
            value=figure("breaker_open_after_fault_s")["median"],
            spread=figure("breaker_open_after_fault_s"),
            met=None,
            unit="s",
        ),
        Target(
            name="outage: foreground p99 during catch-up / healthy p99",
            requirement="<= 2",
            value=pooled["ratio"],
            spread=ratio,
            met=pooled["ratio"] <= 2,
            unit="x",
            detail=(
                f"p99 of the {pooled['catch_up_n']} requests of every run's catch-up "
                f"({pooled['catch_up_p99_ms']:.1f} ms) over p99 of the "
                f"{pooled['before_n']} before the outage ({pooled['before_p99_ms']:.1f} ms); "
                "the range is the per-run ratio, whose ~90-request p99 is its slowest"
            ),
        ),
        Target(
            name="outage: replicas converged after healing",
            requirement="report (every missed write reached the victim)",
            value=converged["median"],
            spread=converged,
            met=None if all(v is not None for v in reached) else False,
            unit="s",
            detail=(
                "converged in every run"
                if all(v is not None for v in reached)
                else f"did not converge in {sum(v is None for v in reached)} run(s)"
            ),
        ),
    ]
    notes = [
        f"Load: {RATE_PER_SECOND} operations/s open loop ({READ_SHARE:.0%} reads of "
        f"{VALUE_BYTES // 1024} KiB objects, the rest writes, over "
        f"{ctx.pick(KEY_COUNT, QUICK_KEY_COUNT)} keys). Settings: "
        f"{', '.join(f'{k}={v:g}' for k, v in SETTINGS.items())}, otherwise the "
        "defaults (write_policy quorum, read_policy health, 3 attempts, breaker after 5 "
        "failures). Latency counts from each operation's scheduled start.",
    ]
    result = ScenarioResult(
        name=NAME,
        title=f"Outage timeline: {VICTIM} blackholed, then healed, under mixed load",
        parameters={
            "duration_s": runs[0]["duration_s"],
            "fault_at_s": runs[0]["fault_at_s"],
            "heal_at_s": runs[0]["heal_at_s"],
            "rate_per_s": RATE_PER_SECOND,
            "victim": VICTIM,
            "repeats": ctx.repeats,
        },
        tables=[events, phases],
        targets=targets,
        data={"runs": runs},
        notes=notes,
    )
    plot = plots.outage(runs[0]["timeline"], ctx.out_dir / f"{NAME}.png")
    if plot:
        result.plots.append(plot)
    return result
