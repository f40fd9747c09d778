"""The ``failover`` Typer application: global options and the command table."""

from __future__ import annotations

from typing import Annotated, cast

import typer

from failover import __version__
from failover.cli import checks, data, operate
from failover.cli._common import (
    EXIT_FAILED,
    EXIT_OK,
    CliOptions,
    configure_logging,
    handle_errors,
    stdout,
    terminate_on_sigterm,
)
from failover.cli.demo import CLOUDS, CloudMode, DemoOptions, run_demo, summary_table
from failover.errors import ConfigError
from failover.testing.emulators import EmulatorError

__all__ = ["app", "main"]

app = typer.Typer(
    name="failover",
    help=(
        "Keep working when a cloud goes down: rehearse it (demo, drill), find single "
        "points of failure (doctor), watch and repair the replicas (status, repair, "
        "reconcile), and move objects (put, get, ls, rm).\n\n"
        "Backends and policies come from the FAILOVER_* environment variables "
        "(see docs/configuration.md); --backends overrides FAILOVER_BACKENDS."
    ),
    no_args_is_help=True,
    add_completion=False,
    # Tracebacks with local variables could show credentials: never print them.
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"failover {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _global(
    ctx: typer.Context,
    backends: Annotated[
        str | None,
        typer.Option(
            "--backends",
            metavar="URLS",
            help="Comma-separated backend URLs (overrides FAILOVER_BACKENDS).",
        ),
    ] = None,
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="Log more (-v info, -vv debug).")
    ] = 0,
    _show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    ctx.obj = CliOptions(backends=backends, verbose=verbose)
    ctx.call_on_close(configure_logging(verbose))


@app.command(rich_help_panel="Rehearse")
def demo(
    *,
    objects: Annotated[int, typer.Option(min=1, help="Objects written before the outage.")] = 300,
    clouds: Annotated[
        str,
        typer.Option(
            help="'auto': the real emulators when installed, else local directories; "
            "'emulators' or 'local' to choose."
        ),
    ] = "auto",
    down: Annotated[
        str, typer.Option(help=f"The cloud to take down: {', '.join(CLOUDS)}.")
    ] = "aws",
    outage_seconds: Annotated[
        float, typer.Option(min=0.5, help="How long that cloud stays down.")
    ] = 5.0,
    breaker_storage: Annotated[
        str | None,
        typer.Option(
            "--breaker-storage",
            metavar="URL",
            help="A Redis for shared breakers (redis://host:port/db): adds an act where "
            "host A's open breaker is seen by host B (in a namespace of the demo's own).",
        ),
    ] = None,
) -> None:
    """Three local clouds, one of them lost, nothing lost (no cloud account needed).

    Writes objects with the quorum policy, takes one cloud down while an application
    keeps reading and writing (live view), brings it back, repairs, checks every
    replica. Then the fleet act: while the cloud is down again one instance writes and
    deletes and its host is lost with its journal; another instance repairs that work
    from the hints the other clouds kept. With --breaker-storage, a last act: host A's
    breaker for the downed cloud opens and host B, sharing breakers through Redis, sees
    it open and stops calling it. Prints a summary; exits 0 only if every invariant
    held.
    """
    console = stdout()
    with handle_errors(), terminate_on_sigterm():
        try:
            options = DemoOptions(
                objects=objects,
                clouds=cast(CloudMode, clouds),  # DemoOptions rejects other values
                down=down,
                outage_seconds=outage_seconds,
                breaker_storage=breaker_storage,
            )
            result = run_demo(options, console)
        except EmulatorError as exc:
            raise ConfigError(f"the emulators could not start: {exc}") from exc
    console.print(summary_table(result))
    verdict = (
        "[bold green]every invariant held[/]"
        if result.passed
        else "[bold red]an invariant failed[/]"
    )
    console.print(f"{verdict} ({result.seconds:.1f} s)")
    raise typer.Exit(EXIT_OK if result.passed else EXIT_FAILED)


app.command(rich_help_panel="Rehearse")(checks.drill)
app.command(rich_help_panel="Audit")(checks.doctor)
app.command(rich_help_panel="Operate")(operate.status)
app.command(rich_help_panel="Operate")(operate.repair)
app.command(rich_help_panel="Operate")(operate.reconcile)
app.command(rich_help_panel="Data")(data.put)
app.command(rich_help_panel="Data")(data.get)
app.command(rich_help_panel="Data")(data.ls)
app.command(rich_help_panel="Data")(data.rm)


def main() -> None:
    """Run the ``failover`` command (the console-script entry point)."""
    app()
