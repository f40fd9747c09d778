"""Invoker settings from FAILOVER_FUNCTIONS, FAILOVER_* and FAILOVER_INVOKE_* (pure)."""

from __future__ import annotations

import pytest

from failover import ConfigError
from failover.config import ENV_PREFIX, SETTINGS_TABLE
from failover.invoke import CallableTarget, Invoker, InvokerSettings
from failover.invoke.config import ENV_VARIABLES, INVOKE_OPTIONS

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


# -- every variable: a bad value names the variable (from_env) or keyword (from_urls) ------

#: One representative bad value per variable InvokerSettings.from_env reads, with a
#: fragment of what the message must say is wrong; test_every_invocation_variable_has_a_
#: bad_value_case fails when a variable is added without a case here.
BAD_VALUES: dict[str, tuple[str, str]] = {
    "FAILOVER_FUNCTIONS": ("lambda://a,s3://bucket", "target URL 's3://bucket': unknown scheme"),
    "FAILOVER_READ_POLICY": ("random", "'random' is invalid"),
    "FAILOVER_HEDGE_DELAY_MS": ("-5", "'-5' is invalid"),
    "FAILOVER_TIMEOUT_SECONDS": ("soon", "'soon' is invalid"),
    "FAILOVER_DEADLINE_SECONDS": ("0", "'0' is invalid"),
    "FAILOVER_RETRY_ATTEMPTS": ("zero", "'zero' is invalid"),
    "FAILOVER_BREAKER_FAIL_MAX": ("0", "'0' is invalid"),
    "FAILOVER_BREAKER_RESET_SECONDS": ("-1", "'-1' is invalid"),
    "FAILOVER_BREAKER_STORAGE": ("redis://:hunter2@cache/x", "must be a database number"),
    "FAILOVER_INVOKE_READ_POLICY": ("fastest", "'fastest' is invalid"),
    "FAILOVER_INVOKE_HEDGE_DELAY_MS": ("nan", "'nan' is invalid"),
    "FAILOVER_INVOKE_TIMEOUT_SECONDS": ("-1", "'-1' is invalid"),
    "FAILOVER_INVOKE_DEADLINE_SECONDS": ("later", "'later' is invalid"),
    "FAILOVER_INVOKE_RETRY_ATTEMPTS": ("0", "'0' is invalid"),
    "FAILOVER_INVOKE_BREAKER_FAIL_MAX": ("2.5", "'2.5' is invalid"),
    "FAILOVER_INVOKE_BREAKER_RESET_SECONDS": ("0", "'0' is invalid"),
    "FAILOVER_INVOKE_BREAKER_STORAGE": ("redis://cache?colour=red", "unknown parameter(s) colour"),
    "FAILOVER_INVOKE_FUNCTION_ERROR": ("ignore", "'ignore' is invalid"),
}
_ACCEPTED = {
    "FAILOVER_FUNCTIONS": "comma-separated target URLs",
    "FAILOVER_INVOKE_FUNCTION_ERROR": "failover | raise",
}


def _accepted(variable: str) -> str:
    if variable in _ACCEPTED:
        return _ACCEPTED[variable]
    option = variable.removeprefix("FAILOVER_INVOKE_").removeprefix(ENV_PREFIX).lower()
    return SETTINGS_TABLE[option].accepted


def test_every_invocation_variable_has_a_bad_value_case() -> None:
    assert set(BAD_VALUES) == set(ENV_VARIABLES)
    assert len(ENV_VARIABLES) == 2 + 2 * len(INVOKE_OPTIONS)


@pytest.mark.parametrize(("variable", "case"), BAD_VALUES.items(), ids=list(BAD_VALUES))
def test_a_bad_value_names_its_variable(
    clean_env: pytest.MonkeyPatch, variable: str, case: tuple[str, str]
) -> None:
    value, fragment = case
    clean_env.setenv("FAILOVER_FUNCTIONS", URLS)
    clean_env.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        InvokerSettings.from_env()
    message = str(info.value)
    assert message.startswith(variable), message
    assert message[len(variable)] in "=:"  # this variable, not a longer one
    assert fragment in message
    assert f"expected {_accepted(variable)}" in message
    assert isinstance(info.value.__cause__, ValueError)  # the parser's error, chained


#: keyword -> (bad value, fragment of the message)
BAD_KEYWORDS: dict[str, tuple[object, str]] = {
    "urls": (["lambda://a", "s3://bucket"], "target URL 's3://bucket': unknown scheme"),
    "function_error": ("sometimes", "'sometimes' is invalid"),
    "read_policy": ("random", "'random' is invalid"),
    "hedge_delay_ms": (-5, "'-5' is invalid"),
    "timeout_seconds": ("soon", "'soon' is invalid"),
    "deadline_seconds": (0, "'0' is invalid"),
    "retry_attempts": (1.5, "'1.5' is invalid"),
    "breaker_fail_max": (0, "'0' is invalid"),
    "breaker_reset_seconds": ("-1", "'-1' is invalid"),
    "breaker_storage": ("tcp://cache:6379", "unknown scheme 'tcp'"),
}


def test_every_invocation_keyword_has_a_bad_value_case() -> None:
    assert set(BAD_KEYWORDS) == {"urls", "function_error", *INVOKE_OPTIONS}


@pytest.mark.parametrize(("keyword", "case"), BAD_KEYWORDS.items(), ids=list(BAD_KEYWORDS))
def test_a_bad_keyword_value_names_its_keyword(keyword: str, case: tuple[object, str]) -> None:
    value, fragment = case
    urls, options = (
        (value, {}) if keyword == "urls" else (["https://a.example.com/f"], {keyword: value})
    )
    with pytest.raises(ConfigError) as info:
        InvokerSettings.from_urls(urls, **options)  # type: ignore[arg-type]
    message = str(info.value)
    assert message.startswith(keyword), message
    assert "FAILOVER_" not in message
    assert fragment in message
    assert isinstance(info.value.__cause__, ValueError)


@pytest.mark.parametrize(
    "url",
    [
        "https://user:SECRET@api.example.com/f",
        "azfunc+https://app.example.com/api/f?code=SECRET",
        "lambda://a,https://b.example.com/f?sig=SECRET",
    ],
)
def test_a_credential_in_a_target_url_is_not_echoed(
    clean_env: pytest.MonkeyPatch, url: str
) -> None:
    clean_env.setenv("FAILOVER_FUNCTIONS", url)
    with pytest.raises(ConfigError) as info:
        InvokerSettings.from_env()
    assert str(info.value).startswith("FAILOVER_FUNCTIONS: target URL ")
    assert "SECRET" not in str(info.value)
    with pytest.raises(ConfigError) as info:
        InvokerSettings.from_urls(url.split(","))
    assert str(info.value).startswith("urls: target URL ")
    assert "SECRET" not in str(info.value)
