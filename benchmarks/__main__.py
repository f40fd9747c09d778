"""``python -m benchmarks [--quick] [--scenario NAME ...] [--repeats N] [--out DIR]``."""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import machine, report
from benchmarks.context import RunContext
from benchmarks.scenarios import SCENARIOS, run_scenario

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="failover vs the raw cloud SDKs, on the local emulators.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="shrink every scenario (smoke run; all six in under 2 minutes)",
    )
    parser.add_argument(
        "--scenario",
        nargs="+",
        choices=list(SCENARIOS),
        metavar="NAME",
        help=f"scenarios to run (default: all): {', '.join(SCENARIOS)}",
    )
    parser.add_argument(
        "--repeats", type=int, help="repetitions of each measurement (default 3; quick 1)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help=f"results directory (default {DEFAULT_OUT}; quick runs default to a "
        "temporary directory so that they never overwrite the committed results)",
    )
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = args.scenario or list(SCENARIOS)
    out_dir: Path = args.out or (
        Path(tempfile.gettempdir()) / "failover-bench-quick" if args.quick else DEFAULT_OUT
    )
    work_dir = Path(tempfile.mkdtemp(prefix="failover-bench-"))
    ctx = RunContext(
        quick=args.quick,
        repeats=args.repeats or (1 if args.quick else 3),
        out_dir=out_dir,
        work_dir=work_dir,
    )
    machine_info = machine.describe()
    ctx.log(f"mode {ctx.mode}, {ctx.repeats} repetition(s), results in {out_dir}")
    ctx.log(report.machine_line(machine_info))
    entries = []
    began = time.monotonic()
    try:
        for name in names:
            started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            load_before = machine.load_average()
            ctx.log(f"scenario {name}: starting (load average {load_before})")
            t0 = time.monotonic()
            result = run_scenario(name, ctx)
            seconds = time.monotonic() - t0
            info = {**machine_info, "load_average": load_before}
            json_path, md_path = report.write_result(
                result,
                out_dir,
                mode=ctx.mode,
                machine=info,
                load_after=machine.load_average(),
                started_at=started_at,
                duration_seconds=seconds,
            )
            entries.append((result, seconds))
            ctx.log(f"scenario {name}: done in {seconds:.0f} s -> {json_path.name}")
            print(md_path.read_text(), flush=True)
        command = "python -m benchmarks " + " ".join(sys.argv[1:] if argv is None else argv)
        summary = report.write_summary(out_dir, command=command.strip())
        print(summary.read_text(), flush=True)
        times = ", ".join(f"{result.name} {seconds:.0f} s" for result, seconds in entries)
        ctx.log(f"all done in {time.monotonic() - began:.0f} s ({times}); results in {out_dir}")
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
