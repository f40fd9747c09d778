"""Scenario results and how they are written: JSON for machines, Markdown for people."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "SCHEMA_VERSION",
    "Column",
    "ScenarioResult",
    "Table",
    "Target",
    "fmt_ms",
    "fmt_pct",
    "fmt_ratio",
    "fmt_spread",
    "write_result",
    "write_summary",
]

#: Bumped when a field of the JSON changes meaning.
SCHEMA_VERSION = 1


def fmt_ratio(value: float) -> str:
    return "n/a" if _missing(value) else f"{value:.3f}"


def fmt_ms(value: float) -> str:
    if _missing(value):
        return "n/a"
    return f"{value:.3f}" if value < 1 else f"{value:.1f}" if value >= 100 else f"{value:.2f}"


def fmt_pct(value: float) -> str:
    return "n/a" if _missing(value) else f"{value * 100:.1f} %"


def fmt_spread(spread: dict[str, float], fmt: Callable[[float], str] = fmt_ratio) -> str:
    """``median (min-max)`` of a figure over repeated runs."""
    if spread.get("runs", 0) <= 1:
        return fmt(spread["median"])
    return f"{fmt(spread['median'])} ({fmt(spread['min'])}-{fmt(spread['max'])})"


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


@dataclass(frozen=True)
class Column:
    """One table column: the row field it shows, its heading, how to format it."""

    key: str
    heading: str
    fmt: Callable[[Any], str] = str


@dataclass
class Table:
    """Rows of numbers (kept raw in the JSON, formatted in the Markdown)."""

    title: str
    columns: Sequence[Column]
    rows: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "columns": [c.key for c in self.columns],
            "rows": self.rows,
            "note": self.note,
        }

    def to_markdown(self) -> str:
        head = "| " + " | ".join(c.heading for c in self.columns) + " |"
        rule = "|" + "|".join("---" for _ in self.columns) + "|"
        lines = [f"**{self.title}**", "", head, rule]
        for row in self.rows:
            cells = [c.fmt(row.get(c.key)) if c.key in row else "" for c in self.columns]
            lines.append("| " + " | ".join(cells) + " |")
        if self.note:
            lines += ["", self.note]
        return "\n".join(lines)


@dataclass
class Target:
    """A target from the issue and how this run did against it.

    ``value`` is the median over repeated runs (``spread`` has min/median/max); ``met``
    compares the median with the limit. ``None`` means "not judged" (no numeric target).
    """

    name: str
    requirement: str
    value: float
    spread: dict[str, float]
    met: bool | None
    detail: str = ""
    unit: str = ""

    def verdict(self) -> str:
        return {True: "met", False: "**missed**", None: "reported"}[self.met]


@dataclass
class ScenarioResult:
    """Everything one scenario measured."""

    name: str
    title: str
    parameters: dict[str, Any]
    tables: list[Table] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)


def _clean(value: Any) -> Any:
    """JSON has no NaN: write null instead."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_result(
    result: ScenarioResult,
    out_dir: Path,
    *,
    mode: str,
    machine: dict[str, Any],
    load_after: list[float],
    started_at: str,
    duration_seconds: float,
) -> tuple[Path, Path]:
    """Write ``<scenario>.json`` and ``<scenario>.md``; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "schema_version": SCHEMA_VERSION,
        "scenario": result.name,
        "title": result.title,
        "mode": mode,
        "started_at": started_at,
        "duration_seconds": round(duration_seconds, 2),
        "machine": {**machine, "load_average_after": load_after},
        "parameters": result.parameters,
        "targets": [asdict(t) | {"verdict": t.verdict()} for t in result.targets],
        "tables": [t.to_json() for t in result.tables],
        "notes": result.notes,
        "plots": result.plots,
        "data": result.data,
    }
    json_path = out_dir / f"{result.name}.json"
    json_path.write_text(json.dumps(_clean(payload), indent=1, sort_keys=False) + "\n")
    md_path = out_dir / f"{result.name}.md"
    md_path.write_text(
        render_markdown(
            result,
            mode=mode,
            machine=machine,
            load_after=load_after,
            started_at=started_at,
            duration_seconds=duration_seconds,
        )
    )
    return json_path, md_path


def machine_line(machine: dict[str, Any], load_after: list[float] | None = None) -> str:
    load = machine.get("load_average") or []
    text = (
        f"{machine.get('cpu_model')}, {machine.get('logical_cpus')} logical CPUs, "
        f"{machine.get('memory_gib')} GiB, Python {machine.get('python')}, "
        f"load average {' / '.join(str(x) for x in load)} at start"
    )
    if load_after:
        text += f", {' / '.join(str(x) for x in load_after)} at end"
    return text


def targets_table(targets: Sequence[Target]) -> str:
    lines = [
        "| target | requirement | median (min-max) over runs | verdict |",
        "|---|---|---|---|",
    ]
    for t in targets:
        value = fmt_spread(t.spread, _unit_fmt(t.unit))
        detail = f" — {t.detail}" if t.detail else ""
        lines.append(f"| {t.name} | {t.requirement} | {value}{detail} | {t.verdict()} |")
    return "\n".join(lines)


def _unit_fmt(unit: str) -> Callable[[float], str]:
    if unit == "ms":
        return lambda v: f"{fmt_ms(v)} ms"
    if unit == "s":
        return lambda v: "n/a" if _missing(v) else f"{v:.2f} s"
    if unit == "MiB":
        return lambda v: "n/a" if _missing(v) else f"{v:.1f} MiB"
    if unit == "MB/s":
        return lambda v: "n/a" if _missing(v) else f"{v:.0f} MB/s"
    if unit == "%":
        return fmt_pct
    if unit == "count":
        return lambda v: "n/a" if _missing(v) else f"{v:g}"
    return fmt_ratio


def render_markdown(
    result: ScenarioResult,
    *,
    mode: str,
    machine: dict[str, Any],
    load_after: list[float],
    started_at: str,
    duration_seconds: float,
) -> str:
    params = ", ".join(f"{k}={v}" for k, v in result.parameters.items())
    parts = [
        f"### {result.title}",
        "",
        f"Mode `{mode}`, started {started_at}, took {duration_seconds:.0f} s. "
        f"Machine: {machine_line(machine, load_after)}.",
        "",
        f"Parameters: {params}.",
    ]
    if result.targets:
        parts += ["", targets_table(result.targets)]
    for table in result.tables:
        parts += ["", table.to_markdown()]
    for note in result.notes:
        parts += ["", note]
    for plot in result.plots:
        parts += ["", f"![{result.name}]({plot})"]
    return "\n".join(parts) + "\n"


def write_summary(out_dir: Path, *, command: str) -> Path:
    """``README.md``: the targets of every scenario whose JSON is in ``out_dir``.

    Built from the JSON files, so that re-running one scenario (``--scenario NAME``)
    keeps the others' latest results in the summary.
    """
    results = []
    for path in sorted(out_dir.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("schema_version") == SCHEMA_VERSION:
            results.append(data)
    order = {name: i for i, name in enumerate(_SCENARIO_ORDER)}
    results.sort(key=lambda d: order.get(d["scenario"], len(order)))
    lines = ["# Benchmark results", ""]
    if results:
        machine = results[0]["machine"]
        versions = machine.get("versions", {})
        lines += [
            f"Latest run: `{command}`. Machine and versions as of the {results[0]['scenario']} "
            f"run (each scenario's own run is in the last table): {machine_line(machine)}.",
            f"Versions: {', '.join(f'{k} {v}' for k, v in versions.items())}.",
            "",
            "| scenario | target | requirement | median (min-max) over runs | verdict |",
            "|---|---|---|---|---|",
        ]
    for data in results:
        for t in data["targets"]:
            spread = {k: _nan(v) for k, v in t["spread"].items()}
            value = fmt_spread(spread, _unit_fmt(t.get("unit", "")))
            detail = f" — {t['detail']}" if t.get("detail") else ""
            lines.append(
                f"| [{data['scenario']}]({data['scenario']}.md) | {t['name']} | "
                f"{t['requirement']} | {value}{detail} | {t['verdict']} |"
            )
    lines += [
        "",
        "| scenario | mode | started | took | failover commit | load average at start / end |",
        "|---|---|---|---|---|---|",
    ]
    for data in results:
        machine = data["machine"]
        load = " ".join(str(x) for x in machine.get("load_average", []))
        after = " ".join(str(x) for x in machine.get("load_average_after", []))
        lines.append(
            f"| {data['scenario']} | {data['mode']} | {data['started_at']} | "
            f"{data['duration_seconds']:.0f} s | {_commit(machine)} | {load} / {after} |"
        )
    path = out_dir / "README.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _commit(machine: dict[str, Any]) -> str:
    commit = machine.get("git_commit") or "unknown"
    return f"{commit} + uncommitted changes" if machine.get("git_dirty") else str(commit)


def _nan(value: Any) -> Any:
    return math.nan if value is None else value


#: The order scenarios are listed in (a full run's order).
_SCENARIO_ORDER = ("overhead", "fanout", "outage", "hedging", "large_objects", "erasure")
