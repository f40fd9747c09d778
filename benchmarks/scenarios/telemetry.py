"""Telemetry: what OpenTelemetry costs per operation, with and without an SDK.

Four Storages, each over its own three memory replicas (default settings: quorum
writes, health-routed reads), differ only in their tracer; 1 KiB puts and gets run
interleaved over them in one process:

* ``off``: no tracer, the in-process counters only (what an application without
  ``opentelemetry-api`` installed, or with ``OTEL_SDK_DISABLED=true``, runs);
* ``api only``: :class:`failover.otel.OpenTelemetryTracer` over the global providers,
  none configured (the API is installed, e.g. by another dependency, but no SDK);
* ``sdk``: the SDK's tracer and meter providers, spans through a
  ``SimpleSpanProcessor`` into an ``InMemorySpanExporter`` (exported synchronously in
  the caller's thread: the most a span can cost) and metrics into an
  ``InMemoryMetricReader``;
* ``sdk batch``: the same with a ``BatchSpanProcessor`` (the usual production set-up:
  export happens on the processor's thread).

A put makes one operation span and three attempt spans (one per replica), a get one
and one. Reported: median and mean microseconds per operation, and the overhead of
each variant over ``off`` (difference of medians). On a busy machine the thread
hand-offs of a real operation vary by more than the API-only cost, so a second table
times the telemetry seam alone (``Telemetry.operation`` around ``Telemetry.attempt``,
no I/O, no threads): what each variant adds, to the tenth of a microsecond. Also
measured: how long the first Storage's :func:`~failover.telemetry.default_tracer`
takes when it imports ``opentelemetry`` (once per process; ``import failover`` never
does).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

from benchmarks.context import RunContext
from benchmarks.report import Column, ScenarioResult, Table, Target, fmt_ms, fmt_spread
from benchmarks.stats import interleave, spread
from failover import Storage
from failover.backends.memory import MemoryBackend
from failover.config import Settings
from failover.telemetry import Peer, Telemetry, Tracer

NAME = "telemetry"
VALUE = b"x" * 1024
KEYS = 16
VARIANTS = ("off", "api only", "sdk", "sdk batch")
#: API only (no SDK) must cost next to nothing: at most this fraction of the cheapest
#: operation there is (memory replicas, no network; a cloud's take milliseconds).
API_ONLY_LIMIT = 0.05

_IMPORT_COST = """
import time
from failover.telemetry import default_tracer
began = time.perf_counter()
default_tracer()
print(time.perf_counter() - began)
"""


def _tracers() -> tuple[dict[str, Tracer | None], list[Any]]:
    """The tracer of each variant, and the SDK objects to clear and shut down."""
    from opentelemetry import trace  # noqa: PLC0415 - only this scenario needs it
    from opentelemetry.sdk.metrics import MeterProvider  # noqa: PLC0415
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import (  # noqa: PLC0415
        BatchSpanProcessor,
        SimpleSpanProcessor,
    )
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: PLC0415
        InMemorySpanExporter,
    )

    from failover.otel import OpenTelemetryTracer  # noqa: PLC0415

    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        raise RuntimeError(  # noqa: TRY004 - a state, not an argument, is wrong
            "a global tracer provider is set: 'api only' would not be API only"
        )
    tracers: dict[str, Tracer | None] = {"off": None, "api only": OpenTelemetryTracer()}
    sdk_objects: list[Any] = []
    for variant, processor in (("sdk", SimpleSpanProcessor), ("sdk batch", BatchSpanProcessor)):
        exporter = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(processor(exporter))
        meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
        tracers[variant] = OpenTelemetryTracer(
            tracer_provider=tracer_provider, meter_provider=meter_provider
        )
        sdk_objects += [exporter, tracer_provider, meter_provider]
    return tracers, sdk_objects


def _store(ctx: RunContext, label: str) -> tuple[Storage, list[str]]:
    names = [f"bench-{uuid.uuid4().hex[:8]}-{n}" for n in "abc"]
    urls = [f"memory://{name}?name={n}" for name, n in zip(names, "abc", strict=True)]
    settings = Settings.from_urls(urls, journal=ctx.journal(label), repair_interval_seconds=0)
    return Storage.from_settings(settings), names


def _seam_us(tracer: Tracer | None, attempts: int, iterations: int) -> float:
    """Microseconds per operation of the telemetry seam alone (no I/O, one thread)."""
    telemetry = Telemetry(tracer, peers={"a": Peer("aws", "s3.amazonaws.com", 443, "bucket")})
    began = time.perf_counter()
    for _ in range(iterations):
        with telemetry.operation("get", "k"):
            parent = telemetry.capture()
            for attempt in range(attempts):
                with telemetry.attempt("a", "get", "k", attempt + 1, parent=parent):
                    pass
    return (time.perf_counter() - began) / iterations * 1e6


def _seam(
    tracers: dict[str, Tracer | None], attempts: int, iterations: int, rounds: int = 7
) -> dict[str, float]:
    """Median over interleaved rounds (order rotated each round) of each variant's µs."""
    for variant in VARIANTS:  # warm-up
        _seam_us(tracers[variant], attempts, iterations // 10)
    samples: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    for i in range(rounds):
        shift = i % len(VARIANTS)
        for variant in VARIANTS[shift:] + VARIANTS[:shift]:
            samples[variant].append(_seam_us(tracers[variant], attempts, iterations))
    return {variant: statistics.median(values) for variant, values in samples.items()}


def _import_seconds() -> float:
    out = subprocess.run(
        [sys.executable, "-c", _IMPORT_COST], capture_output=True, text=True, check=True
    ).stdout
    return float(out)


def run(ctx: RunContext) -> ScenarioResult:
    iterations, warmup = ctx.pick(3000, 300), ctx.pick(200, 30)
    tracers, sdk_objects = _tracers()
    stores: dict[str, Storage] = {}
    memory: list[str] = []
    rows: list[dict[str, Any]] = []
    try:
        for variant in VARIANTS:
            store, names = _store(ctx, f"telemetry-{variant.replace(' ', '-')}")
            store.telemetry.tracer = tracers[variant]
            stores[variant] = store
            memory += names
            for i in range(KEYS):
                store.put(f"k{i}", VALUE)
            store.flush()

        def get(store: Storage) -> Any:
            return lambda i: store.get(f"k{i % KEYS}")

        def put(store: Storage) -> Any:
            return lambda i: store.put(f"k{i % KEYS}", VALUE)

        def settle() -> None:
            for store in stores.values():
                store.flush()

        for rep in range(ctx.repeats):
            for op, make in (("get", get), ("put", put)):
                samples = interleave(
                    {variant: make(stores[variant]) for variant in VARIANTS},
                    iterations=iterations,
                    warmup=warmup,
                    settle=settle if op == "put" else None,
                )
                off = statistics.median(samples["off"]) * 1e6
                for variant in VARIANTS:
                    median = statistics.median(samples[variant]) * 1e6
                    rows.append(
                        {
                            "rep": rep,
                            "op": op,
                            "variant": variant,
                            "median_us": median,
                            "mean_us": statistics.fmean(samples[variant]) * 1e6,
                            "overhead_us": median - off,
                        }
                    )
                for obj in sdk_objects:
                    if hasattr(obj, "clear"):
                        obj.clear()  # the in-memory exporters
                summary = ", ".join(
                    f"{r['variant']} {r['median_us']:.1f}"
                    for r in rows[-len(VARIANTS) :]  # this block's
                )
                ctx.log(f"telemetry rep {rep + 1}/{ctx.repeats} {op}: median µs {summary}")
        seam_rows: list[dict[str, Any]] = []
        for rep in range(ctx.repeats):
            for shape, attempts in (("get", 1), ("put", 3)):
                measured = _seam(tracers, attempts, iterations)
                seam_rows.extend(
                    {
                        "rep": rep,
                        "op": shape,
                        "variant": variant,
                        "us": measured[variant],
                        "overhead_us": measured[variant] - measured["off"],
                    }
                    for variant in VARIANTS
                )
                for obj in sdk_objects:
                    if hasattr(obj, "clear"):
                        obj.clear()
        import_seconds = [_import_seconds() for _ in range(ctx.pick(5, 2))]
    finally:
        for store in stores.values():
            store.close()
        for name in memory:
            MemoryBackend.forget(name)
        for obj in sdk_objects:
            if hasattr(obj, "shutdown"):
                obj.shutdown()

    table = Table(
        "1 KiB operations on three memory replicas, µs per operation (median and min-max "
        "over runs)",
        [
            Column("op", "operation"),
            Column("variant", "tracer"),
            Column("median", "median µs", lambda v: fmt_spread(v, _us)),
            Column("mean", "mean µs", lambda v: fmt_spread(v, _us)),
            Column("overhead", "overhead µs (vs off)", lambda v: fmt_spread(v, _us)),
        ],
        note="A put is one operation span and three attempt spans, a get one and one. "
        "Overhead is the difference of the medians of interleaved runs.",
    )
    overhead: dict[tuple[str, str], dict[str, float]] = {}
    for op in ("get", "put"):
        for variant in VARIANTS:
            chosen = [r for r in rows if (r["op"], r["variant"]) == (op, variant)]
            overhead[op, variant] = spread([r["overhead_us"] for r in chosen])
            table.rows.append(
                {
                    "op": op,
                    "variant": variant,
                    "median": spread([r["median_us"] for r in chosen]),
                    "mean": spread([r["mean_us"] for r in chosen]),
                    "overhead": overhead[op, variant],
                }
            )
    seam = Table(
        "The telemetry seam alone: one operation and its attempts (1 for a get, 3 for a "
        "put), no I/O, µs per operation",
        [
            Column("op", "shape"),
            Column("variant", "tracer"),
            Column("us", "µs", lambda v: fmt_spread(v, _us)),
            Column("overhead", "overhead µs (vs off)", lambda v: fmt_spread(v, _us)),
        ],
    )
    seam_overhead: dict[tuple[str, str], dict[str, float]] = {}
    for op in ("get", "put"):
        for variant in VARIANTS:
            chosen = [r for r in seam_rows if (r["op"], r["variant"]) == (op, variant)]
            seam_overhead[op, variant] = spread([r["overhead_us"] for r in chosen])
            seam.rows.append(
                {
                    "op": op,
                    "variant": variant,
                    "us": spread([r["us"] for r in chosen]),
                    "overhead": seam_overhead[op, variant],
                }
            )
    # Per run: the seam's API-only overhead over the operation's own time (telemetry
    # off), worst of get and put.
    fractions = [
        max(
            _one(seam_rows, rep, op, "api only")["overhead_us"]
            / _one(rows, rep, op, "off")["median_us"]
            for op in ("get", "put")
        )
        for rep in range(ctx.repeats)
    ]
    api_share = spread(fractions)
    api_worst = max((seam_overhead[op, "api only"] for op in ("get", "put")), key=_median)
    targets = [
        Target(
            name="telemetry: API only (no SDK), share of a memory-backed operation",
            requirement=f"≤ {API_ONLY_LIMIT:g} (seam overhead / operation, worst of get/put)",
            value=api_share["median"],
            spread=api_share,
            met=api_share["median"] <= API_ONLY_LIMIT,
        ),
        Target(
            name="telemetry: API only (no SDK), overhead per operation (seam)",
            requirement="report (worst of get/put)",
            value=api_worst["median"],
            spread=api_worst,
            met=None,
            unit="µs",
        ),
        *(
            Target(
                name=f"telemetry: SDK, in-memory exporter, {op} overhead",
                requirement="report",
                value=overhead[op, "sdk"]["median"],
                spread=overhead[op, "sdk"],
                met=None,
                unit="µs",
            )
            for op in ("get", "put")
        ),
        Target(
            name="telemetry: first default_tracer() (imports opentelemetry)",
            requirement="report (once per process)",
            value=statistics.median(import_seconds) * 1000,
            spread=spread([s * 1000 for s in import_seconds]),
            met=None,
            unit="ms",
        ),
    ]
    return ScenarioResult(
        name=NAME,
        title="Telemetry: the cost of OpenTelemetry per operation",
        parameters={
            "iterations": iterations,
            "warmup": warmup,
            "repeats": ctx.repeats,
            "value_bytes": len(VALUE),
            "settings": "three memory replicas, defaults (quorum writes, health reads)",
        },
        tables=[table, seam],
        targets=targets,
        data={"rows": rows, "seam_rows": seam_rows, "import_seconds": import_seconds},
    )


def _us(value: float) -> str:
    return fmt_ms(value)  # same precision rules; the unit is in the heading


def _one(rows: list[dict[str, Any]], rep: int, op: str, variant: str) -> dict[str, Any]:
    (row,) = (r for r in rows if (r["rep"], r["op"], r["variant"]) == (rep, op, variant))
    return row


def _median(values: dict[str, float]) -> float:
    return values["median"]
