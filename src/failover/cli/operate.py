"""``failover status``, ``failover repair`` and ``failover reconcile``: day-to-day operations."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from failover._storage import Storage
from failover.backends import parse_backend_url
from failover.backends.base import replica_identity
from failover.cli._common import (
    EXIT_FAILED,
    EXIT_OK,
    handle_errors,
    open_storage,
    print_json,
    stderr,
    stdout,
)
from failover.config import Settings
from failover.errors import BackendTimeout, NotFoundError, is_transient
from failover.replication.hints import target_prefix
from failover.resilience import BreakerRegistry, HealthTracker
from failover.types import BackendHealth, ReconcileReport

__all__ = ["BackendProber", "HintCount", "ProbeResult", "reconcile", "repair", "status"]

#: The key status probes ask for; it is never written, so "not found" is the healthy answer.
PROBE_KEY = "failover-status-probe/does-not-exist"
_STATE_STYLE = {"closed": "green", "half-open": "yellow", "open": "bold red"}


@dataclass(frozen=True, slots=True)
class HintCount:
    """The hints the other replicas keep for one backend, as the latest probe listed them.

    Attributes:
        outstanding: distinct keys the backend missed an action on.
        oldest_age_seconds: age of the oldest of those hints (0 when there is none).
    """

    outstanding: int
    oldest_age_seconds: float


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One backend after the latest probe.

    Attributes:
        health: breaker state, score, latency and error rate from all probes so far,
            computed by the library's own health tracker and breaker; pending repairs
            from the journal.
        location: ``scheme://bucket/prefix`` (never a credential).
        answer: ``"ok"``, or the error the probe met.
        ok: whether the backend answered the latest probe.
        hints: the hints kept for this backend on the replicas that answered;
            ``None`` when no other replica could be listed.
    """

    health: BackendHealth
    location: str
    answer: str
    ok: bool
    hints: HintCount | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields.

        The quantities that are also metrics are named like them
        (:func:`failover.types.field_name`: ``breaker_state``, ``health_score``,
        ``latency_seconds``, ``error_ratio``, ``repairs_pending``, ``hints_outstanding``,
        ``hints_oldest_age_seconds``). The older keys (``name``, ``state``, ``score``,
        ``latency_ms``, ``error_rate``, ``pending_repairs``) stay for existing scripts.
        """
        h = self.health
        hints = self.hints
        return {
            "name": h.name,
            "location": self.location,
            "ok": self.ok,
            "answer": self.answer,
            "state": h.state,
            "score": round(h.score, 4),
            "latency_ms": round(h.latency_ms, 3),
            "error_rate": round(h.error_rate, 4),
            "pending_repairs": h.pending_repairs,
            **h.to_dict(),
            "hints_outstanding": None if hints is None else hints.outstanding,
            "hints_oldest_age_seconds": (
                None if hints is None else round(hints.oldest_age_seconds, 3)
            ),
        }


class BackendProber:
    """Probes every backend of a Storage in parallel and tracks health like routing does.

    Each probe is one ``head`` of a key that does not exist (a not-found answer proves
    the backend is up); a backend that answers is then asked for the hints it keeps
    for the others (one listing per other backend). Outcomes feed a
    :class:`~failover.resilience.HealthTracker` and a
    :class:`~failover.resilience.BreakerRegistry` configured like the Storage's, so
    repeated probes (``--watch``) show the breaker opening and closing as the
    application's would. A backend whose breaker is open is not probed until it admits a
    trial.

    Args:
        store: the storage whose backends to probe.
        timeout_seconds: the longest a probe may take.
    """

    def __init__(self, store: Storage, *, timeout_seconds: float) -> None:
        settings: Settings = store.settings
        self._store = store
        self._backends = store.backends
        self._names = list(self._backends)
        self._timeout = timeout_seconds
        self._health = HealthTracker(names=self._names)
        self._breakers = BreakerRegistry(
            names=self._names,
            fail_max=settings.breaker_fail_max,
            reset_timeout_seconds=settings.breaker_reset_seconds,
        )
        self._locations = {
            name: _location(url) for name, url in zip(self._names, settings.backends, strict=True)
        }
        self._answers: dict[str, tuple[str, bool]] = dict.fromkeys(
            self._names, ("not probed", False)
        )
        self._identities = {name: replica_identity(b) for name, b in self._backends.items()}
        # With one backend nothing is ever hinted; otherwise unknown until listed.
        single = HintCount(0, 0.0) if len(self._names) == 1 else None
        self._hints: dict[str, HintCount | None] = dict.fromkeys(self._names, single)

    def probe(self) -> list[ProbeResult]:
        """Probe every backend once (in parallel) and return the results in priority order."""
        results: queue.Queue[tuple[str, BaseException | None, float]] = queue.Queue()
        listings: queue.Queue[tuple[str, _Listing | None]] = queue.Queue()
        started: dict[str, float] = {}
        for name in self._names:
            if not self._breakers.allow(name):
                wait = self._breakers.retry_after(name)
                self._answers[name] = (f"skipped: breaker open, next trial in {wait:.1f} s", False)
                continue
            started[name] = time.monotonic()
            # Daemon threads: a probe stuck on a dead endpoint must not delay exit.
            threading.Thread(
                target=self._probe_one,
                args=(name, results, listings),
                daemon=True,
                name=f"probe-{name}",
            ).start()
        give_up = time.monotonic() + self._timeout + 0.5
        while started:
            try:
                name, exc, elapsed = results.get(timeout=max(0.0, give_up - time.monotonic()))
            except queue.Empty:
                break
            started.pop(name, None)
            self._record(name, exc, elapsed)
        for name, began in started.items():
            timeout = BackendTimeout(f"no answer within {self._timeout:g} s", backend=name)
            self._record(name, timeout, time.monotonic() - began)
        if len(self._names) > 1:
            self._count_hints(listings, [n for n in self._names if self._answers[n][1]])
        return self.results()

    def results(self) -> list[ProbeResult]:
        """The latest results, in priority order."""
        journal = self._store.health()
        out = []
        for name in self._names:
            answer, ok = self._answers[name]
            health = self._health.snapshot(name).to_backend_health(
                state=self._breakers.state(name), pending_repairs=journal[name].pending_repairs
            )
            out.append(
                ProbeResult(health, self._locations[name], answer, ok, hints=self._hints[name])
            )
        return out

    def _probe_one(
        self,
        name: str,
        results: queue.Queue[tuple[str, BaseException | None, float]],
        listings: queue.Queue[tuple[str, _Listing | None]],
    ) -> None:
        began = time.monotonic()
        error: BaseException | None = None
        try:
            self._backends[name].head(PROBE_KEY)
        except NotFoundError:
            pass
        except Exception as exc:  # noqa: BLE001 - any failure is what the probe reports
            error = exc
        results.put((name, error, time.monotonic() - began))
        if error is None and len(self._names) > 1:
            listings.put((name, self._list_hints(name)))

    def _list_hints(self, holder: str) -> _Listing | None:
        """The hints ``holder`` keeps per other backend: hint object to its write time."""
        backend = self._backends[holder]
        found: _Listing = {}
        try:
            for target, identity in self._identities.items():
                if target != holder:
                    found[target] = {
                        o.key: o.last_modified.timestamp()
                        for o in backend.list(target_prefix(identity))
                    }
        except Exception:  # noqa: BLE001 - an unlisted holder leaves the count unknown
            return None
        return found

    def _count_hints(
        self, listings: queue.Queue[tuple[str, _Listing | None]], holders: list[str]
    ) -> None:
        """Merge the holders' listings (a hint's key is the same on every holder)."""
        merged: dict[str, dict[str, float]] = {}
        waiting = set(holders)
        give_up = time.monotonic() + self._timeout
        while waiting:
            try:
                holder, listing = listings.get(timeout=max(0.0, give_up - time.monotonic()))
            except queue.Empty:
                break
            waiting.discard(holder)
            for target, hints in (listing or {}).items():
                merged.setdefault(target, {}).update(hints)
        now = time.time()
        for name in self._names:
            if name not in merged:
                self._hints[name] = None  # no other replica could be listed
                continue
            written = merged[name].values()
            oldest = max((now - t for t in written), default=0.0)
            self._hints[name] = HintCount(len(written), max(0.0, oldest))

    def _record(self, name: str, exc: BaseException | None, elapsed: float) -> None:
        # Fed exactly as the dispatcher feeds them: only transient failures count
        # against a backend; a permanent error is an answer (but still shown).
        if exc is not None and is_transient(exc):
            self._health.record_failure(name, elapsed)
            self._breakers.record_failure(name, exc)
        else:
            self._health.record_success(name, elapsed)
            self._breakers.record_success(name)
        if exc is None:
            self._answers[name] = ("ok", True)
        else:
            self._answers[name] = (f"{type(exc).__name__}: {exc}", False)


#: Per other backend, the hint objects one holder keeps: key to write time (epoch seconds).
_Listing = dict[str, dict[str, float]]


def _location(url: str) -> str:
    parsed = parse_backend_url(url)
    return f"{parsed.scheme}://{parsed.bucket}" + (f"/{parsed.prefix}" if parsed.prefix else "")


def status_table(results: list[ProbeResult], *, title: str) -> RenderableType:
    """The health table, then one line per backend that did not answer."""
    table = Table(title=title, title_justify="left", expand=False, box=box.SIMPLE_HEAD)
    table.add_column("backend", overflow="fold")
    for column in ("probe", "breaker", "score", "latency", "errors", "repairs due", "hints"):
        justify = "left" if column in ("probe", "breaker") else "right"
        table.add_column(column, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    problems = []
    for result in results:
        h = result.health
        if result.ok:
            probe = Text("ok", "green")
        else:
            skipped = result.answer.startswith("skipped")
            probe = Text("skipped" if skipped else "failed", "yellow" if skipped else "bold red")
            problems.append(Text.assemble((f"{h.name}: ", "bold"), result.answer))
        table.add_row(
            Text.assemble((h.name, "bold"), "\n", (result.location, "dim")),
            probe,
            Text(h.state, _STATE_STYLE[h.state]),
            f"{h.score:.2f}",
            f"{h.latency_ms:.0f} ms",
            f"{h.error_rate:.0%}",
            Text(str(h.pending_repairs), "yellow" if h.pending_repairs else ""),
            _hints_cell(result.hints),
        )
    return Group(table, *problems)


def _hints_cell(hints: HintCount | None) -> Text:
    if hints is None:
        return Text("?", "dim")
    if not hints.outstanding:
        return Text("0")
    return Text(f"{hints.outstanding} (oldest {hints.oldest_age_seconds:.0f} s)", "yellow")


def status(
    ctx: typer.Context,
    *,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Probe again every --interval seconds.")
    ] = False,
    interval: Annotated[
        float, typer.Option(min=0.05, help="Seconds between probes with --watch.")
    ] = 2.0,
    count: Annotated[
        int,
        typer.Option(
            min=0, help="Stop after this many probes (default: 1, or until Ctrl-C with --watch)."
        ),
    ] = 0,
    timeout_seconds: Annotated[
        float, typer.Option("--timeout", min=0.05, help="Longest wait for one probe, seconds.")
    ] = 3.0,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the last probe's results as JSON.")
    ] = False,
) -> None:
    """Probe every backend and show its health: breaker, score, latency, repairs, hints.

    Exits 1 if a backend did not answer the last probe.
    """
    rounds = count or (0 if watch else 1)
    with handle_errors():
        store = open_storage(ctx, timeout_seconds=timeout_seconds)
    with store:
        prober = BackendProber(store, timeout_seconds=timeout_seconds)
        results = _status_rounds(prober, rounds=rounds, interval=interval, live=not json_output)
    if json_output:
        print_json([r.to_dict() for r in results])
    raise typer.Exit(EXIT_OK if all(r.ok for r in results) else EXIT_FAILED)


def _status_rounds(
    prober: BackendProber, *, rounds: int, interval: float, live: bool
) -> list[ProbeResult]:
    console = stdout()
    done = 0

    def title() -> str:
        return f"failover status (probe {done}{f' of {rounds}' if rounds else ''})"

    if rounds == 1:
        results = prober.probe()
        done = 1
        if live:
            console.print(status_table(results, title="failover status"))
        return results
    results = prober.results()
    display = Live(console=console, auto_refresh=False) if live else None
    try:
        if display is not None:
            display.start()
        while rounds == 0 or done < rounds:
            if done:
                time.sleep(interval)
            results = prober.probe()
            done += 1
            if display is not None:
                display.update(status_table(results, title=title()), refresh=True)
    except KeyboardInterrupt:
        pass  # the usual way to leave --watch
    finally:
        if display is not None:
            display.stop()
            if not console.is_terminal:
                console.line()  # Live prints its last frame without a newline
    return results


def repair(
    ctx: typer.Context,
    *,
    wait_seconds: Annotated[
        float,
        typer.Option(
            "--wait",
            min=0,
            help="Keep repairing (e.g. until a breaker admits a trial) until nothing is "
            "pending or this many seconds passed.",
        ),
    ] = 0.0,
    json_output: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
) -> None:
    """Bring every replica up to date now (drain the repair journal).

    Exits 1 if repairs are still pending or failed.
    """
    with handle_errors():
        store = open_storage(ctx)
        with store:
            before = {n: h.pending_repairs for n, h in store.health().items()}
            report = store.repair()
            repaired = report.repaired
            give_up = time.monotonic() + wait_seconds
            while report.pending and time.monotonic() < give_up:
                time.sleep(0.25)
                report = store.repair()
                repaired += report.repaired
            after = {n: h.pending_repairs for n, h in store.health().items()}
    failed = [list(item) for item in report.failed]
    if json_output:
        print_json(
            {
                "repaired": repaired,
                "pending": report.pending,
                "failed": failed,
                "pending_by_backend": after,
            }
        )
    else:
        console = stdout()
        table = Table(title="failover repair", title_justify="left", expand=False)
        table.add_column("backend")
        table.add_column("pending before", justify="right")
        table.add_column("pending after", justify="right")
        for name, pending in before.items():
            table.add_row(Text(name), str(pending), str(after.get(name, 0)))
        console.print(table)
        for backend, key, reason in report.failed:
            console.print(f"[red]✗[/] {escape(backend)}: {escape(key)}: {escape(reason)}")
        style = "bold green" if not report.pending and not failed else "bold red"
        console.print(
            f"[{style}]repaired {repaired} replica action(s); {report.pending} pending; "
            f"{len(failed)} failed[/]"
        )
    raise typer.Exit(EXIT_OK if not report.pending and not failed else EXIT_FAILED)


def reconcile(
    ctx: typer.Context,
    *,
    prefix: Annotated[str, typer.Argument(help="Compare only keys under this prefix.")] = "",
    fix: Annotated[
        bool, typer.Option("--fix", help="Copy the newest version to replicas that differ.")
    ] = False,
    verify_bytes: Annotated[
        bool,
        typer.Option(
            "--verify-bytes", help="Also read every replica and check its bytes (slower)."
        ),
    ] = False,
    show_keys: Annotated[
        int, typer.Option(min=0, help="List up to this many differing keys per backend.")
    ] = 10,
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Compare every replica (anti-entropy) and, with --fix, repair the differences.

    Exits 1 if replicas differ (without --fix) or differences remain (with --fix).
    Objects without failover metadata (written by other tools) are reported as orphaned
    and left alone; they do not change the exit code.
    """
    progress_console = stderr() if json_output else stdout()
    with handle_errors():
        store = open_storage(ctx)
        with store:
            report = _reconcile_with_progress(
                store, progress_console, prefix=prefix, fix=fix, verify_bytes=verify_bytes
            )
    differences = sum(
        len(keys)
        for group in (report.missing, report.stale, report.corrupt)
        for keys in group.values()
    )
    ok = differences == 0 or (fix and report.fixed >= differences)
    if json_output:
        print_json(
            {
                "prefix": prefix,
                "scanned": report.scanned,
                "fixed": report.fixed,
                "consistent": report.consistent,
                "missing": {n: list(k) for n, k in report.missing.items()},
                "stale": {n: list(k) for n, k in report.stale.items()},
                "corrupt": {n: list(k) for n, k in report.corrupt.items()},
                "orphaned": {n: list(k) for n, k in report.orphaned.items()},
            }
        )
    else:
        _print_reconcile(stdout(), report, fix=fix, show_keys=show_keys, ok=ok)
    raise typer.Exit(EXIT_OK if ok else EXIT_FAILED)


def _reconcile_with_progress(
    store: Storage, console: Console, *, prefix: str, fix: bool, verify_bytes: bool
) -> ReconcileReport:
    progress = Progress(
        TextColumn("fixing" if fix else "comparing"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("keys"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    with progress:
        task = progress.add_task("keys", total=None)

        def on_progress(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        return store.reconcile(prefix, fix=fix, verify_bytes=verify_bytes, progress=on_progress)


def _print_reconcile(
    console: Console, report: ReconcileReport, *, fix: bool, show_keys: int, ok: bool
) -> None:
    groups: Mapping[str, Mapping[str, tuple[str, ...]]] = {
        "missing": report.missing,
        "stale": report.stale,
        "corrupt": report.corrupt,
        "orphaned": report.orphaned,
    }
    table = Table(
        title=f"failover reconcile: {report.scanned} key(s) compared", title_justify="left"
    )
    table.add_column("backend")
    for label in groups:
        table.add_column(label, justify="right")
    names = list(report.missing) or list(report.orphaned)
    for name in names:
        table.add_row(
            Text(name),
            *(
                Text(str(len(g.get(name, ()))), "red" if g.get(name) else "")
                for g in groups.values()
            ),
        )
    console.print(table)
    if show_keys:
        for label, group in groups.items():
            for name, keys in group.items():
                for key in keys[:show_keys]:
                    console.print(f"  {label} on {escape(name)}: {escape(key)}")
                if len(keys) > show_keys:
                    console.print(f"  … and {len(keys) - show_keys} more {label} on {escape(name)}")
    if fix:
        console.print(f"fixed {report.fixed} replica(s)")
    if ok:
        console.print(
            "[bold green]replicas agree[/]" if not fix else "[bold green]replicas agree now[/]"
        )
    else:
        console.print(
            "[bold red]replicas differ[/]" + ("" if fix else ": run again with --fix to repair")
        )
