"""Large objects: 256 MiB through failover (3 backends) vs each raw SDK (1 backend).

Every transfer runs in a fresh child process (:mod:`benchmarks.large_child`) that
reports its time and its peak RSS growth, so that nothing the parent holds distorts the
memory figure. The source is generated while it is read (never held whole), and
failover's get streams through ``Storage.open()`` 1 MiB at a time (verifying the
sha256 at the end, as it always does).

* raw puts: s3transfer's ``upload_fileobj`` (8 MiB parts, one at a time), azure's
  ``upload_blob`` (SDK defaults, one block at a time), GCS's resumable ``upload_from_file``
  with 8 MiB chunks; raw gets: streamed bodies / chunks, counted and dropped.
* failover put: ``Storage.put`` with ``write_policy="all"`` (all three replicas hold the
  object when it returns), ``deadline_seconds`` raised to fit the transfer.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks import plots
from benchmarks.clouds import KINDS, Clouds
from benchmarks.context import RunContext
from benchmarks.report import Column, ScenarioResult, Table, Target, fmt_spread
from benchmarks.stats import spread

NAME = "large_objects"
RSS_LIMIT_MIB = 64.0
MIB = 1024 * 1024
_ROOT = Path(__file__).resolve().parent.parent.parent


def _child(ctx: RunContext, args: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.large_child", json.dumps(args)],
        cwd=_ROOT,
        capture_output=True,
        text=True,
        timeout=args["deadline_seconds"] + 120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"large-object child {args['client']} {args['op']} failed "
            f"(exit {done.returncode}):\n{done.stderr[-4000:]}"
        )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    mib = args["size"] / MIB
    ctx.log(
        f"large_objects {args['label']} {args['op']}: {result['seconds']:.2f} s, "
        f"{mib / result['seconds']:.0f} MiB/s, RSS +{result['rss_growth'] / MIB:.1f} MiB"
    )
    return result


def run(ctx: RunContext) -> ScenarioResult:
    # Quick: just over one 8 MiB part, so that every multipart/streaming path still runs.
    size = ctx.pick(256 * MIB, 9 * MIB)
    deadline = float(ctx.pick(900, 120))
    records: list[dict[str, Any]] = []
    with Clouds(KINDS) as clouds:
        urls = {kind: clouds.bucket(kind, "large") for kind in KINDS}
        clients = [(f"raw {kind}", "raw", [urls[kind]]) for kind in KINDS]
        clients.append(("failover", "failover", list(urls.values())))
        for rep in range(ctx.repeats):
            for op in ("put", "get"):
                # Alternate the order between runs so no client always goes first.
                order = clients if rep % 2 == 0 else clients[::-1]
                for label, client, client_urls in order:
                    args = {
                        "label": label,
                        "client": client,
                        "urls": client_urls,
                        "op": op,
                        "size": size,
                        "key": f"large/{client}",
                        "deadline_seconds": deadline,
                        "journal": ctx.journal("large"),
                    }
                    result = _child(ctx, args)
                    records.append({"rep": rep, "client": label, "op": op, **result})
    table = Table(
        f"{size // MIB} MiB transfers (median and min-max over runs)",
        [
            Column("client", "client"),
            Column("op", "op"),
            Column("seconds", "seconds", lambda s: fmt_spread(s, lambda v: f"{v:.2f}")),
            Column("mib_s", "MiB/s", lambda s: fmt_spread(s, lambda v: f"{v:.0f}")),
            Column("rss_mib", "peak RSS growth MiB", lambda s: fmt_spread(s, lambda v: f"{v:.1f}")),
            Column("served_by", "served by"),
        ],
        note=(
            "MiB/s counts application bytes: failover's put writes them to three replicas "
            "(write_policy all), each raw put to one. Peak RSS growth: highest resident "
            "set size during the transfer (5 ms samples and the kernel's high-water mark, reset "
            "just before it) "
            "minus the size just before it, in a fresh process."
        ),
    )
    targets = []
    for label, _, _ in clients:
        for op in ("put", "get"):
            rows = [r for r in records if (r["client"], r["op"]) == (label, op)]
            rss = spread([r["rss_growth"] / MIB for r in rows])
            table.rows.append(
                {
                    "client": label,
                    "op": op,
                    "seconds": spread([r["seconds"] for r in rows]),
                    "mib_s": spread([size / MIB / r["seconds"] for r in rows]),
                    "rss_mib": rss,
                    "served_by": ", ".join(sorted({str(r["backend"]) for r in rows})),
                }
            )
            if label == "failover":
                targets.append(
                    Target(
                        name=f"large objects: failover {op} peak RSS growth",
                        requirement=f"<= {RSS_LIMIT_MIB:g} MiB ({size // MIB} MiB object)",
                        value=rss["median"],
                        spread=rss,
                        met=rss["max"] <= RSS_LIMIT_MIB,
                        unit="MiB",
                        detail="worst run counted",
                    )
                )
    fastest_raw_put = max(
        r["mib_s"]["median"] for r in table.rows if r["op"] == "put" and r["client"] != "failover"
    )
    slowest_raw_put = min(
        r["mib_s"]["median"] for r in table.rows if r["op"] == "put" and r["client"] != "failover"
    )
    failover_put = next(
        r["mib_s"]["median"] for r in table.rows if (r["client"], r["op"]) == ("failover", "put")
    )
    result = ScenarioResult(
        name=NAME,
        title=f"Large objects: {size // MIB} MiB through failover (3 backends) vs the raw SDK",
        parameters={
            "size_mib": size // MIB,
            "repeats": ctx.repeats,
            "settings": f"write_policy all, deadline_seconds {deadline:g}, timeout_seconds 60",
        },
        tables=[table],
        targets=targets,
        data={"records": records},
        notes=[
            f"failover's 3-replica put moved {failover_put:.0f} MiB/s of application data, "
            f"against {slowest_raw_put:.0f}-{fastest_raw_put:.0f} MiB/s for one replica "
            "through a raw SDK."
        ],
    )
    plot = plots.large_objects(table.rows, ctx.out_dir / f"{NAME}.png", rss_limit=RSS_LIMIT_MIB)
    if plot:
        result.plots.append(plot)
    return result
