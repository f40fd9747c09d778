"""PNG figures (matplotlib's object API, no GUI backend); skipped without matplotlib.

Each function returns the file name it wrote (relative to the results directory), or
``None`` when matplotlib is not installed (the ``bench`` extra installs it; the test
suite's smoke run does without).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

try:
    from matplotlib.figure import Figure
except ImportError:  # pragma: no cover - depends on the installed extras
    Figure = None

__all__ = ["erasure", "fanout", "hedging", "large_objects", "outage", "overhead"]

_COLORS = {"s3": "#d62728", "azure": "#1f77b4", "gcs": "#2ca02c"}


def _save(fig: Any, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path.name


def overhead(rows: Sequence[Mapping[str, Any]], path: Path, *, limit: float) -> str | None:
    """Median failover/raw ratio per provider, op and size, with the min-max whiskers."""
    if Figure is None:
        return None
    fig = Figure(figsize=(9, 4))
    ax = fig.subplots()
    labels = [f"{r['provider']}\n{r['op']} {r['size']}" for r in rows]
    medians = [r["ratio_p50"]["median"] for r in rows]
    low = [m - r["ratio_p50"]["min"] for m, r in zip(medians, rows, strict=True)]
    high = [r["ratio_p50"]["max"] - m for m, r in zip(medians, rows, strict=True)]
    colors = [_COLORS.get(r["provider"], "grey") for r in rows]
    ax.bar(range(len(rows)), medians, yerr=[low, high], color=colors, capsize=3)
    ax.axhline(limit, color="black", linestyle="--", linewidth=1, label=f"target {limit}")
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_xticks(range(len(rows)), labels, fontsize=7)
    ax.set_ylabel("failover p50 / raw SDK p50")
    ax.set_title("Overhead of failover over the raw SDK (one backend)")
    ax.legend(loc="upper left")
    return _save(fig, path)


def fanout(rows: Sequence[Mapping[str, Any]], path: Path) -> str | None:
    """Median write latency of each single backend and of the fan-outs, per condition."""
    if Figure is None:
        return None
    groups = list(dict.fromkeys((r.get("condition", ""), r["size"]) for r in rows))
    fig = Figure(figsize=(4.2 * len(groups), 4.2))
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    for ax, (condition, size) in zip(axes, groups, strict=True):
        subset = [r for r in rows if (r.get("condition", ""), r["size"]) == (condition, size)]
        names = [r["variant"] for r in subset]
        values = [r["p50"]["median"] for r in subset]
        errs = [
            [v - r["p50"]["min"] for v, r in zip(values, subset, strict=True)],
            [r["p50"]["max"] - v for v, r in zip(values, subset, strict=True)],
        ]
        colors = [_COLORS.get(n.removeprefix("single "), "#9467bd") for n in names]
        ax.bar(range(len(names)), values, yerr=errs, color=colors, capsize=3)
        ax.set_xticks(range(len(names)), names, fontsize=7, rotation=35, ha="right")
        ax.set_ylabel("put p50 (ms)")
        ax.set_title(f"{size} writes, {condition}")
    return _save(fig, path)


def outage(timeline: Mapping[str, Any], path: Path) -> str | None:
    """Latency of every call over time, and each backend's calls per second."""
    if Figure is None:
        return None
    fig = Figure(figsize=(10, 7))
    top, bottom = fig.subplots(2, 1, sharex=True)
    for kind, marker, color in (("read", ".", "#1f77b4"), ("write", "x", "#ff7f0e")):
        points = [(t, ms) for t, ms, k, _ in timeline["ops"] if k == kind]
        if points:
            xs, ys = zip(*points, strict=True)
            top.scatter(xs, ys, s=6, marker=marker, color=color, label=f"{kind}s", alpha=0.6)
    errors = [(t, ms) for t, ms, _, ok in timeline["ops"] if not ok]
    if errors:
        xs, ys = zip(*errors, strict=True)
        top.scatter(xs, ys, s=30, marker="v", color="black", label="errors")
    top.set_yscale("log")
    top.set_ylabel("latency (ms, log)")
    top.set_title(
        f"Mixed load, {timeline['victim']} blackholed at {timeline['fault_at']:g} s "
        f"and healed at {timeline['heal_at']:g} s"
    )
    for backend, series in timeline["traffic"].items():
        xs = [b * timeline["bucket_seconds"] for b in range(len(series["ok"]))]
        color = _COLORS.get(backend, "grey")
        bottom.plot(xs, series["ok"], color=color, label=f"{backend} answered")
        if any(series["failed"]):
            bottom.plot(
                xs,
                series["failed"],
                color=color,
                linestyle=":",
                label=f"{backend} failed (transient)",
            )
    bottom.set_ylabel("backend calls / s")
    bottom.set_xlabel("time (s)")
    # Show the run and the quiet convergence after it, not the idle tail of the watch.
    busy = [
        i
        for series in timeline["traffic"].values()
        for i, (ok, failed) in enumerate(zip(series["ok"], series["failed"], strict=True))
        if ok or failed
    ]
    last = max(busy, default=0) * timeline["bucket_seconds"]
    bottom.set_xlim(0, max(last, timeline["heal_at"]) + 2)
    for ax in (top, bottom):
        ax.axvspan(timeline["fault_at"], timeline["heal_at"], color="grey", alpha=0.15)
        for label, t in timeline["marks"].items():
            if t is not None and not math.isnan(t):
                ax.axvline(t, color="black", linestyle="--", linewidth=0.8)
                if ax is top:
                    ax.annotate(
                        label,
                        (t, 1),
                        xycoords=("data", "axes fraction"),
                        rotation=90,
                        va="top",
                        ha="right",
                        fontsize=7,
                    )
        ax.legend(loc="upper right", fontsize=7)
    return _save(fig, path)


def hedging(latencies_ms: Mapping[str, Sequence[float]], path: Path) -> str | None:
    """Tail of the latency distribution (1 - CDF, log-log) per routing and configuration.

    ``latencies_ms`` keys are ``"<routing>: <configuration>"``; one panel per routing.
    """
    if Figure is None:
        return None
    panels = list(dict.fromkeys(name.split(": ", 1)[0] for name in latencies_ms))
    fig = Figure(figsize=(6 * len(panels), 4.5))
    axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)[0]
    for ax, panel in zip(axes, panels, strict=True):
        for name, values in latencies_ms.items():
            routing, _, config = name.partition(": ")
            if routing != panel or not values:
                continue
            ordered = sorted(values)
            n = len(ordered)
            ax.step(ordered, [1 - i / n for i in range(n)], where="post", label=config)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("read latency (ms)")
        ax.set_title(f"{panel}: one backend stalls 5 % of its reads for 500 ms", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("fraction of reads slower")
    return _save(fig, path)


def large_objects(rows: Sequence[Mapping[str, Any]], path: Path, *, rss_limit: float) -> str | None:
    """Throughput and peak RSS growth per client and operation."""
    if Figure is None:
        return None
    fig = Figure(figsize=(10, 4))
    left, right = fig.subplots(1, 2)
    labels = [f"{r['client']} {r['op']}" for r in rows]
    colors = [_COLORS.get(r["client"].removeprefix("raw "), "#9467bd") for r in rows]
    left.bar(range(len(rows)), [r["mib_s"]["median"] for r in rows], color=colors)
    left.set_xticks(range(len(rows)), labels, fontsize=7, rotation=30, ha="right")
    left.set_ylabel("MiB/s")
    left.set_title("Throughput")
    right.bar(range(len(rows)), [r["rss_mib"]["median"] for r in rows], color=colors)
    right.axhline(rss_limit, color="black", linestyle="--", linewidth=1, label="target")
    right.set_xticks(range(len(rows)), labels, fontsize=7, rotation=30, ha="right")
    right.set_ylabel("peak RSS growth (MiB)")
    right.set_title("Memory")
    right.legend()
    return _save(fig, path)


def erasure(
    codec_rows: Sequence[Mapping[str, Any]],
    latency_rows: Sequence[Mapping[str, Any]],
    path: Path,
) -> str | None:
    """Codec MB/s per core, and each mode's p50 latency relative to replicate."""
    if Figure is None:
        return None
    fig = Figure(figsize=(12, 4.5))
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.2]})
    figures = (("encode", "#1f77b4"), ("decode", "#2ca02c"), ("degraded", "#ff7f0e"))
    width = 0.8 / len(figures)
    for j, (figure, color) in enumerate(figures):
        xs, values, low, high = [], [], [], []
        for i, row in enumerate(codec_rows):
            value = row[figure]["median"]
            if math.isnan(value):
                continue
            xs.append(i + (j - 1) * width)
            values.append(value)
            low.append(value - row[figure]["min"])
            high.append(row[figure]["max"] - value)
        left.bar(xs, values, width, yerr=[low, high], color=color, capsize=2, label=figure)
    labels = [r["codec"] for r in codec_rows]
    left.set_xticks(range(len(codec_rows)), labels, fontsize=7, rotation=25, ha="right")
    left.set_ylabel("MB/s of plaintext, one core")
    left.set_title("Codec throughput (in memory, no I/O)")
    left.legend(fontsize=8)
    groups = list(dict.fromkeys((r["op"], r["size"]) for r in latency_rows))
    modes = list(dict.fromkeys(r["mode"] for r in latency_rows))
    colors = ("#7f7f7f", "#9467bd", "#17becf", "#d62728", "#bcbd22")
    width = 0.8 / len(modes)
    for j, mode in enumerate(modes):
        rows = {(r["op"], r["size"]): r for r in latency_rows if r["mode"] == mode}
        medians = [rows[g]["ratio_p50"]["median"] for g in groups]
        low = [m - rows[g]["ratio_p50"]["min"] for m, g in zip(medians, groups, strict=True)]
        high = [rows[g]["ratio_p50"]["max"] - m for m, g in zip(medians, groups, strict=True)]
        xs = [i + (j - (len(modes) - 1) / 2) * width for i in range(len(groups))]
        right.bar(
            xs,
            medians,
            width,
            yerr=[low, high],
            color=colors[j % len(colors)],
            capsize=2,
            label=mode,
        )
    right.axhline(1.0, color="black", linewidth=0.8)
    right.set_xticks(range(len(groups)), [f"{op} {size}" for op, size in groups])
    right.set_ylabel("p50 / replicate p50")
    right.set_title("Latency on the three emulators (write_policy all)")
    right.legend(fontsize=7)
    return _save(fig, path)
