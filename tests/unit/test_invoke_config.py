"""Invoker settings from FAILOVER_FUNCTIONS, FAILOVER_* and FAILOVER_INVOKE_* (pure)."""

from __future__ import annotations

import pytest

from failover import ConfigError
from failover.invoke import CallableTarget, Invoker, InvokerSettings

URLS = "lambda://thumb?region=eu-west-1,https://api.example.com/thumb"


def test_functions_and_shared_resilience_variables() -> None:
    settings = InvokerSettings.from_env(
        {
            "FAILOVER_FUNCTIONS": URLS,
            "FAILOVER_TIMEOUT_SECONDS": "4",
            "FAILOVER_READ_POLICY": "ordered",
            "FAILOVER_WRITE_POLICY": "all",  # storage-only: ignored here
        }
    )
    assert settings.functions == (
        "lambda://thumb?region=eu-west-1",
        "https://api.example.com/thumb",
    )
    assert settings.resilience.timeout_seconds == 4
    assert settings.resilience.read_policy == "ordered"
    assert settings.function_error == "failover"


def test_invoke_prefix_overrides_the_shared_variable() -> None:
    settings = InvokerSettings.from_env(
        {
            "FAILOVER_FUNCTIONS": URLS,
            "FAILOVER_TIMEOUT_SECONDS": "4",
            "FAILOVER_INVOKE_TIMEOUT_SECONDS": "60",
            "FAILOVER_INVOKE_READ_POLICY": "hedged",
            "FAILOVER_INVOKE_HEDGE_DELAY_MS": "150",
            "FAILOVER_INVOKE_FUNCTION_ERROR": "raise",
        }
    )
    assert settings.resilience.timeout_seconds == 60
    assert settings.resilience.read_policy == "hedged"
    assert settings.resilience.hedge_delay_ms == 150
    assert settings.function_error == "raise"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "FAILOVER_FUNCTIONS"),
        ({"FAILOVER_FUNCTIONS": " , "}, "FAILOVER_FUNCTIONS"),
        ({"FAILOVER_FUNCTIONS": "s3://bucket"}, "FAILOVER_FUNCTIONS: .*unknown scheme"),
        ({"FAILOVER_FUNCTIONS": "lambda://a,lambda://a"}, "unique"),
        (
            {"FAILOVER_FUNCTIONS": URLS, "FAILOVER_INVOKE_TIMEOUT_SECONDS": "-1"},
            "FAILOVER_INVOKE_TIMEOUT_SECONDS",
        ),
        (
            {"FAILOVER_FUNCTIONS": URLS, "FAILOVER_RETRY_ATTEMPTS": "zero"},
            "FAILOVER_RETRY_ATTEMPTS",
        ),
        ({"FAILOVER_FUNCTIONS": URLS, "FAILOVER_INVOKE_TIMEOUT": "5"}, "FAILOVER_INVOKE_TIMEOUT"),
        ({"FAILOVER_FUNCTIONS": URLS, "FAILOVER_INVOKE_WRITE_POLICY": "all"}, "unknown variable"),
        (
            {"FAILOVER_FUNCTIONS": URLS, "FAILOVER_INVOKE_FUNCTION_ERROR": "ignore"},
            "FUNCTION_ERROR",
        ),
    ],
)
def test_bad_environment_names_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        InvokerSettings.from_env(env)


def test_from_urls_accepts_invocation_options_only() -> None:
    settings = InvokerSettings.from_urls(
        ["https://a.example.com/f", "https://b.example.com/f"],
        timeout_seconds="2.5",
        retry_attempts=1,
        function_error="raise",
    )
    assert settings.resilience.timeout_seconds == 2.5
    assert settings.resilience.retry_attempts == 1
    assert settings.function_error == "raise"
    with pytest.raises(ConfigError, match="write_policy"):
        InvokerSettings.from_urls(["https://a.example.com/f"], write_policy="all")
    with pytest.raises(ConfigError, match="function_error"):
        InvokerSettings.from_urls(["https://a.example.com/f"], function_error="sometimes")
    with pytest.raises(ConfigError, match="contains ','"):
        InvokerSettings.from_urls(["https://a.example.com/f,https://b.example.com/f"])


def test_invoker_built_from_env_and_from_targets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "FAILOVER_FUNCTIONS", "https://a.example.com/f?name=a,https://b.example.com/f"
    )
    monkeypatch.setenv("FAILOVER_INVOKE_DEADLINE_SECONDS", "7")
    with Invoker.from_env() as invoker:
        assert list(invoker.targets) == ["a", "https:b.example.com/f"]
        assert invoker.settings.resilience.deadline_seconds == 7
    echo = CallableTarget("echo", lambda request: request.body)
    with Invoker([echo], timeout_seconds=3, function_error="raise") as invoker:
        assert invoker.settings.functions == ("echo",)
        assert invoker.settings.resilience.timeout_seconds == 3
        assert invoker.settings.function_error == "raise"
    with pytest.raises(ConfigError, match="unique"):
        Invoker([echo, CallableTarget("echo", lambda request: b"")])
    with pytest.raises(ConfigError, match="at least one"):
        Invoker([])
