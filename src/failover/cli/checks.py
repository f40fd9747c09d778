"""``failover doctor`` (the SPOF audit) and ``failover drill`` (the outage rehearsal)."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from failover.cli._common import (
    EXIT_FAILED,
    EXIT_OK,
    cli_environ,
    handle_errors,
    load_settings,
    print_json,
    stderr,
    stdout,
    terminate_on_sigterm,
)
from failover.config import ENV_PREFIX
from failover.doctor import DoctorReport, audit_env
from failover.drill import DEFAULT_PREFIX, DrillReport, OutageKind, run_drill

__all__ = ["doctor", "doctor_table", "drill", "drill_table", "fleet_table"]

_SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


def doctor(
    ctx: typer.Context,
    *,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the findings as JSON.")
    ] = False,
    probe: Annotated[
        bool,
        typer.Option(
            "--probe/--no-probe",
            help="Check credentials and endpoints over the network (one listing each).",
        ),
    ] = True,
    timeout_seconds: Annotated[
        float,
        typer.Option("--timeout", min=0.1, help="Longest wait for any one backend, seconds."),
    ] = 5.0,
    sensitive: Annotated[
        bool,
        typer.Option("--sensitive", help="The data must not be readable by any one provider."),
    ] = False,
) -> None:
    """Audit the configuration for single points of failure.

    Looks for: one backend only; every backend on one provider or in one region; a
    write policy that cannot survive losing one backend; a repair journal that is not
    writable or lives on a temporary filesystem; missing or rejected credentials; an
    endpoint that does not answer; encryption off (critical with --sensitive). It also
    reports the storage overhead and what losing or breaching one cloud means. Each
    finding says how to fix it. Exits 1 if any finding is critical.
    """
    with handle_errors():
        # A configuration that does not parse is reported as a finding, not an error.
        report = audit_env(
            cli_environ(ctx),
            probe=probe,
            probe_timeout_seconds=timeout_seconds,
            sensitive=sensitive,
        )
    if json_output:
        print_json(report.to_dict())
    else:
        console = stdout()
        console.print(doctor_table(report))
        critical = len(report.critical)
        if report.ok:
            console.print(
                "[bold green]no critical finding[/]: losing any one backend should not stop "
                "the application"
            )
        else:
            console.print(f"[bold red]{critical} critical finding(s)[/]: fix them first")
    raise typer.Exit(EXIT_OK if report.ok else EXIT_FAILED)


def doctor_table(report: DoctorReport) -> Table:
    """The findings as a rich table, most severe first."""
    title = f"failover doctor: {len(report.backends)} backend(s)" + (
        "" if report.probed else " (network checks skipped)"
    )
    table = Table(title=title, title_justify="left", show_lines=True, expand=False)
    table.add_column("severity")
    table.add_column("finding", overflow="fold")
    table.add_column("fix", overflow="fold")
    if not report.findings:
        table.add_row(Text("ok", "bold green"), "no single point of failure found", "")
    for finding in report.findings:
        table.add_row(
            Text(finding.severity, _SEVERITY_STYLE[finding.severity]),
            Text.assemble((finding.code, "bold"), "\n", finding.message),
            Text(finding.fix),
        )
    return table


def drill(
    ctx: typer.Context,
    *,
    backend: Annotated[
        list[str] | None,
        typer.Option(
            "--backend",
            "-b",
            help="Take down only this backend (by name; repeatable). Default: each in turn.",
        ),
    ] = None,
    objects: Annotated[
        int, typer.Option(min=1, help="Scratch objects written before each outage.")
    ] = 20,
    outage: Annotated[
        str,
        typer.Option(
            help="'hang': calls hang for FAILOVER_TIMEOUT_SECONDS then time out (a "
            "blackholed network); 'error': calls fail at once (a refused connection)."
        ),
    ] = "hang",
    prefix: Annotated[
        str, typer.Option(help="Scratch prefix; each run writes under <prefix><run id>/.")
    ] = DEFAULT_PREFIX,
    fleet: Annotated[
        bool,
        typer.Option(
            "--fleet",
            help="Also rehearse losing a host with its journal during each outage: "
            "another instance must complete its writes and deletes from the hints.",
        ),
    ] = False,
    breaker_storage: Annotated[
        str | None,
        typer.Option(
            "--breaker-storage",
            metavar="URL",
            help="Shared breaker storage to rehearse (redis://host:port/db; default: "
            "FAILOVER_BREAKER_STORAGE). With one, instance A meets an outage and "
            "instance B must see A's breaker open (in a namespace of the drill's own).",
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Rehearse losing each configured backend, in a scratch prefix.

    For each backend in turn: write scratch objects, take the backend down on the client
    side (nothing outside this process is touched), keep reading and writing, bring it
    back, repair, check that every replica holds every acknowledged write, and delete
    the scratch objects. With --fleet, then: two instances with their own journals;
    while the backend is down one writes and deletes, then is lost with its journal;
    the other's repair must complete that work from the hints the replicas keep. With
    shared breakers (--breaker-storage or FAILOVER_BREAKER_STORAGE): two instances;
    the first backend goes down for one until its breaker opens, and the other must see
    it open and stop calling it. Exits 1 if a read or write failed, any data would have
    been lost, or a shared breaker was not seen.
    """
    if outage not in ("hang", "error"):
        stderr().print("[bold red]error:[/] --outage must be 'hang' or 'error'")
        raise typer.Exit(2)
    kind: OutageKind = "hang" if outage == "hang" else "error"
    progress = stderr() if json_output else stdout()
    began = time.monotonic()

    def say(line: str) -> None:
        progress.print(f"[dim]{time.monotonic() - began:6.1f} s[/]  {escape(line)}")

    with handle_errors(), terminate_on_sigterm():
        settings = load_settings(ctx)
        say(
            f"drill over {len(settings.backends)} backend(s), write policy "
            f"{settings.write_policy} ({settings.required_acks} acknowledgement(s)), "
            f"timeout {settings.timeout_seconds:g} s, breaker opens after "
            f"{settings.breaker_fail_max} failures and retries after "
            f"{settings.breaker_reset_seconds:g} s ({ENV_PREFIX}BREAKER_RESET_SECONDS)"
        )
        report = run_drill(
            settings,
            targets=backend,
            objects=objects,
            outage=kind,
            prefix=prefix,
            fleet=fleet,
            breaker_storage=breaker_storage,
            on_progress=say,
        )
    if json_output:
        print_json(report.to_dict())
    else:
        console = stdout()
        console.print(drill_table(report))
        if report.fleet:
            console.print(fleet_table(report))
        for result in report.results:
            for line in result.problems:
                console.print(f"[red]✗[/] {escape(result.backend)}: {escape(line)}")
        for lost in report.fleet:
            for line in lost.problems:
                console.print(f"[red]✗[/] {escape(lost.backend)} (fleet): {escape(line)}")
        for shared in report.shared:
            mark = "[green]✓[/]" if shared.passed else "[red]✗[/]"
            console.print(f"{mark} {escape(shared.summary)} [dim]({escape(shared.storage)})[/]")
            for line in shared.problems:
                console.print(
                    f"[red]✗[/] {escape(shared.backend)} (shared breaker): {escape(line)}"
                )
        if report.passed:
            console.print(
                "[bold green]drill passed[/]: every backend was lost once; no read or write "
                "failed and every replica converged"
                + (
                    "; a host lost with its journal was covered by another instance"
                    if report.fleet
                    else ""
                )
            )
        else:
            console.print("[bold red]drill failed[/]: see the problems above")
    raise typer.Exit(EXIT_OK if report.passed else EXIT_FAILED)


def _count(total: int, errors: int) -> Text:
    return Text(f"{total - errors}/{total}", "bold red" if errors else "green")


def drill_table(report: DrillReport) -> Table:
    """The drill's results as a rich table, one row per backend taken down.

    ``reads`` and ``writes`` count those that succeeded while the backend was down, of
    those attempted; ``opened`` is how long its breaker took to open; ``replicas`` says
    whether they were identical and held every acknowledged write after repair;
    ``scratch`` whether the drill's objects were removed.
    """
    table = Table(
        title=f"failover drill: {report.write_policy} writes over {len(report.backends)} "
        f"backend(s), {report.objects} objects per outage",
        title_justify="left",
        expand=False,
        box=box.SIMPLE_HEAD,
    )
    for column, justify in (
        ("down", "left"),
        ("reads", "right"),
        ("writes", "right"),
        ("opened", "right"),
        ("repairs", "right"),
        ("replicas", "left"),
        ("scratch", "left"),
        ("result", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for result in report.results:
        opened = result.breaker_opened_after_seconds
        if not result.intact:
            replicas = Text("incomplete", "bold red")
        elif not result.consistent:
            replicas = Text("differ", "bold red")
        else:
            replicas = Text("identical", "green")
        table.add_row(
            Text.assemble((result.backend, "bold"), "\n", (result.outage, "dim")),
            _count(result.reads, result.read_errors),
            _count(result.writes, result.write_errors),
            "no" if opened is None else f"{opened:.2f} s",
            str(result.repaired),
            replicas,
            Text("removed", "green") if result.cleaned else Text("left", "bold red"),
            Text("PASS", "bold green") if result.passed else Text("FAIL", "bold red"),
        )
    return table


def _verdict(ok: bool, good: str, bad: str) -> Text:
    return Text(good, "green") if ok else Text(bad, "bold red")


def fleet_table(report: DrillReport) -> Table:
    """The lost-host rehearsals (``drill --fleet``) as a rich table, one row per backend.

    ``host A`` counts the writes and deletes the lost host had acknowledged while the
    backend was down; ``missed`` how many of them the backend lacked when it came back,
    and ``hints`` the hints the other replicas kept for them; ``repairs`` what the other
    instance's repair (its journal empty) completed; ``writes`` and ``deletes`` whether
    every replica held them afterwards; ``hints left`` the hints still there; ``scratch``
    whether the rehearsal's objects, markers and hints were removed.
    """
    table = Table(
        title="failover drill --fleet: a host lost with its journal during the outage",
        title_justify="left",
        expand=False,
        box=box.SIMPLE_HEAD,
    )
    for column, justify in (
        ("down", "left"),
        ("host A", "right"),
        ("missed", "right"),
        ("hints", "right"),
        ("repairs", "right"),
        ("writes", "left"),
        ("deletes", "left"),
        ("hints left", "right"),
        ("scratch", "left"),
        ("result", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for lost in report.fleet:
        acknowledged = lost.writes + lost.deletes
        table.add_row(
            Text.assemble((lost.backend, "bold"), "\n", (lost.outage, "dim")),
            Text.assemble(
                _count(acknowledged + lost.errors, lost.errors),
                "\n",
                (f"{lost.writes} put, {lost.deletes} del", "dim"),
            ),
            f"{lost.missed}/{acknowledged}",
            str(lost.hints),
            Text(
                f"{lost.repaired}" + (f" ({lost.pending} pending)" if lost.pending else ""),
                "bold red" if lost.pending else "",
            ),
            _verdict(lost.writes_repaired, "repaired", "missing"),
            _verdict(lost.deletes_repaired, "repaired", "live copy"),
            Text(
                "?" if lost.hints_left is None else str(lost.hints_left),
                "green" if lost.hints_left == 0 else "bold red",
            ),
            _verdict(lost.cleaned is not False, "removed", "left"),
            Text("PASS", "bold green") if lost.passed else Text("FAIL", "bold red"),
        )
    return table
