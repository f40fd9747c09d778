"""What every ``failover`` command shares: exit codes, consoles, settings, error handling."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.logging import RichHandler

from failover._storage import Storage
from failover.config import ENV_PREFIX, Settings
from failover.errors import ConfigError, FailoverError, InvalidKeyError, InvalidMetadataError

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CliOptions",
    "cli_environ",
    "configure_logging",
    "exit_with",
    "handle_errors",
    "load_settings",
    "open_storage",
    "print_json",
    "stderr",
    "stdout",
    "terminate_on_sigterm",
]

#: Every check held / the operation succeeded.
EXIT_OK = 0
#: A check failed: a critical finding, a failed drill or demo invariant, a backend down.
EXIT_FAILED = 1
#: Bad usage or configuration (also what typer uses for usage errors).
EXIT_USAGE = 2
#: Interrupted (Ctrl-C or SIGTERM), after cleaning up.
EXIT_INTERRUPTED = 130


@dataclass(frozen=True, slots=True)
class CliOptions:
    """Options given before the command (``failover --backends … status``).

    Attributes:
        backends: comma-separated backend URLs overriding ``FAILOVER_BACKENDS``.
        verbose: 0 logs warnings, 1 info, 2 and more debug.
    """

    backends: str | None = None
    verbose: int = 0


def stdout() -> Console:
    """A console on standard output (created per call, so test runners can capture it)."""
    return Console(highlight=False)


def stderr() -> Console:
    """A console on standard error."""
    return Console(stderr=True, highlight=False)


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON on standard output (no colour, no wrapping)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def configure_logging(verbose: int) -> Callable[[], None]:
    """Send the ``failover`` logger to standard error at a level set by ``-v``.

    Returns:
        A function that restores the logger as it was (the command calls it when it
        ends, so running commands in-process, as tests do, leaves logging unchanged).
    """
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    log = logging.getLogger("failover")
    handler = RichHandler(console=stderr(), show_path=False, show_time=verbose > 0)
    saved = (log.level, log.propagate)
    log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False

    def restore() -> None:
        log.removeHandler(handler)
        log.setLevel(saved[0])
        log.propagate = saved[1]

    return restore


def _options(ctx: typer.Context) -> CliOptions:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, CliOptions) else CliOptions()


def cli_environ(ctx: typer.Context) -> dict[str, str]:
    """The environment with ``--backends`` (if given) as ``FAILOVER_BACKENDS``."""
    env = dict(os.environ)
    backends = _options(ctx).backends
    if backends:
        env[ENV_PREFIX + "BACKENDS"] = backends
    return env


def load_settings(ctx: typer.Context) -> Settings:
    """Settings from ``FAILOVER_*``, with ``--backends`` taking precedence.

    Raises:
        ConfigError: a variable is missing or invalid.
    """
    return Settings.from_env(cli_environ(ctx))


def open_storage(ctx: typer.Context, **overrides: Any) -> Storage:
    """A Storage over the configured backends, without a background repair worker.

    Args:
        ctx: the command's context (for ``--backends``).
        **overrides: settings to change, by their lower-case names.

    Raises:
        ConfigError: bad configuration, or a backend that cannot be built.
    """
    settings = load_settings(ctx).with_options(repair_interval_seconds=0, **overrides)
    return Storage.from_settings(settings)


def exit_with(code: int) -> NoReturn:
    """Leave the command with ``code``."""
    raise typer.Exit(code)


@contextlib.contextmanager
def handle_errors() -> Iterator[None]:
    """Turn library errors into one line on standard error and an exit code.

    ``ConfigError`` and a rejected key or metadata exit with :data:`EXIT_USAGE`, any
    other ``FailoverError`` with
    :data:`EXIT_FAILED`, and an interruption with :data:`EXIT_INTERRUPTED`. Messages
    never carry credentials (the library's errors guarantee it) and no traceback (with
    its local variables) is shown.
    """
    try:
        yield
    except ConfigError as exc:
        stderr().print(f"[bold red]configuration error:[/] {_escape(str(exc))}")
        exit_with(EXIT_USAGE)
    except (InvalidKeyError, InvalidMetadataError) as exc:
        stderr().print(f"[bold red]error:[/] {_escape(str(exc))}")
        exit_with(EXIT_USAGE)
    except FailoverError as exc:
        stderr().print(f"[bold red]error:[/] {_escape(str(exc))}")
        exit_with(EXIT_FAILED)
    except KeyboardInterrupt:
        stderr().print("[yellow]interrupted[/]")
        exit_with(EXIT_INTERRUPTED)


def _escape(text: str) -> str:
    from rich.markup import escape  # noqa: PLC0415 - tiny, only on the error path

    return escape(text)


@contextlib.contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C inside the block, so cleanup code runs for both."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
