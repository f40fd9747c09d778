"""Order statistics and interleaved timing, shared by every scenario."""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence

__all__ = ["interleave", "quantile", "spread", "summarize"]


def quantile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank quantile (the smallest value with ``fraction`` of them at or below).

    The same definition the library's hedging uses; NaN for no values.
    """
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered) - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def summarize(seconds: Sequence[float]) -> dict[str, float]:
    """Latency summary in milliseconds: n, min, p50, p90, p99, p99.9, max, mean."""
    if not seconds:
        return {"n": 0}
    ms = [s * 1000.0 for s in seconds]
    return {
        "n": len(ms),
        "min_ms": min(ms),
        "p50_ms": quantile(ms, 0.50),
        "p90_ms": quantile(ms, 0.90),
        "p99_ms": quantile(ms, 0.99),
        "p999_ms": quantile(ms, 0.999),
        "max_ms": max(ms),
        "mean_ms": statistics.fmean(ms),
    }


def spread(values: Sequence[float]) -> dict[str, float]:
    """min / median / max of one figure over repeated runs."""
    if not values:
        return {"min": math.nan, "median": math.nan, "max": math.nan, "runs": 0}
    return {
        "min": min(values),
        "median": statistics.median(values),
        "max": max(values),
        "runs": len(values),
    }


def interleave(
    variants: Mapping[str, Callable[[int], object]],
    *,
    iterations: int,
    warmup: int = 0,
    settle: Callable[[], None] | None = None,
) -> dict[str, list[float]]:
    """Time each variant ``iterations`` times, interleaved, in one process.

    Iteration ``i`` runs every variant once, in an order rotated by ``i`` (AB, BA, ... or
    ABC, BCA, CAB, ...), so that slow phases of a noisy machine hit all variants alike and
    no variant always runs right after another. ``settle`` runs after each call, untimed
    (e.g. to let a quorum write's last replica finish before the next measurement).

    Returns:
        Variant name -> wall-clock seconds of each timed call.
    """
    names = list(variants)
    for i in range(warmup):
        for name in names:
            variants[name](i)
            if settle is not None:
                settle()
    gc.collect()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for i in range(iterations):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            call = variants[name]
            started = time.perf_counter()
            call(i)
            samples[name].append(time.perf_counter() - started)
            if settle is not None:
                settle()
    return samples
