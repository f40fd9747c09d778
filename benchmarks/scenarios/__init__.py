"""The scenarios: issue #7's five, then erasure; each has ``run(ctx) -> ScenarioResult``."""

from __future__ import annotations

import importlib

from benchmarks.context import RunContext
from benchmarks.report import ScenarioResult

__all__ = ["SCENARIOS", "run_scenario"]

#: Scenario name -> one-line description, in the order a full run takes them.
SCENARIOS = {
    "overhead": "Storage over one backend vs the raw SDK, put/get at 1 KiB and 1 MiB",
    "fanout": "three-way all and quorum writes vs each single backend",
    "outage": "mixed load while one backend is blackholed, then healed",
    "hedging": "one backend stalls 5 % of reads: health vs hedged",
    "large_objects": "256 MiB through failover (3 backends) vs the raw SDK",
    "erasure": "erasure 2-of-3 (+ encryption) vs replicate: codec MB/s per core, put/get latency",
    "async_gets": "1 KiB gets from N asyncio tasks (failover.aio) vs N threads (sync API)",
    "telemetry": "OpenTelemetry per operation: none, API only, SDK with in-memory exporter",
}


def run_scenario(name: str, ctx: RunContext) -> ScenarioResult:
    """Import and run one scenario."""
    module = importlib.import_module(f"benchmarks.scenarios.{name}")
    result: ScenarioResult = module.run(ctx)
    return result
