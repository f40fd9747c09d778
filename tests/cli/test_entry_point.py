"""The ``failover`` command's entry point and help."""

from __future__ import annotations

import logging

import pytest

from failover import __version__

from .conftest import Invoke, run_module

COMMANDS = ["demo", "drill", "doctor", "status", "repair", "reconcile", "put", "get", "ls", "rm"]


def test_python_dash_m_runs_the_command() -> None:
    proc = run_module("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"failover {__version__}"


def test_help_lists_every_command(failover_cli: Invoke) -> None:
    result = failover_cli("--help")
    assert result.exit_code == 0
    for command in COMMANDS:
        assert f" {command} " in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(failover_cli: Invoke, command: str) -> None:
    result = failover_cli(command, "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.output


def test_no_arguments_shows_help_and_fails(failover_cli: Invoke) -> None:
    result = failover_cli()
    assert result.exit_code == 2
    assert "Usage:" in result.output


def test_a_missing_configuration_is_a_usage_error(failover_cli: Invoke) -> None:
    result = failover_cli("ls", env={"FAILOVER_BACKENDS": None})
    assert result.exit_code == 2
    assert "FAILOVER_BACKENDS is not set" in result.output


def test_a_command_leaves_the_failover_logger_as_it_was(
    failover_cli: Invoke, memory_urls: list[str]
) -> None:
    log = logging.getLogger("failover")
    before = (list(log.handlers), log.level, log.propagate)
    result = failover_cli("-v", "--backends", ",".join(memory_urls), "ls")
    assert result.exit_code == 0
    assert (list(log.handlers), log.level, log.propagate) == before
