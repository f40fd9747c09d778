from __future__ import annotations

import pytest

from failover.config import SETTINGS_TABLE, Settings, default_journal_path
from failover.errors import ConfigError

URLS = "memory://a,memory://b,memory://c"


def test_defaults_from_env() -> None:
    settings = Settings.from_env({"FAILOVER_BACKENDS": URLS})
    assert settings.backends == ("memory://a", "memory://b", "memory://c")
    assert settings.write_policy == "quorum"
    assert settings.required_acks == 2
    assert settings.read_policy == "health"
    assert settings.hedge_delay_ms is None
    assert settings.timeout_seconds == 10
    assert settings.deadline_seconds == 30
    assert settings.retry_attempts == 3
    assert settings.breaker_fail_max == 5
    assert settings.breaker_reset_seconds == 30
    assert settings.repair_interval_seconds == 5
    assert settings.journal_path == default_journal_path()


def test_every_variable_is_read() -> None:
    env = {
        "FAILOVER_BACKENDS": URLS,
        "FAILOVER_WRITE_POLICY": "ALL",
        "FAILOVER_WRITE_QUORUM": "3",
        "FAILOVER_READ_POLICY": "hedged",
        "FAILOVER_HEDGE_DELAY_MS": "25",
        "FAILOVER_TIMEOUT_SECONDS": "2.5",
        "FAILOVER_DEADLINE_SECONDS": "7",
        "FAILOVER_RETRY_ATTEMPTS": "4",
        "FAILOVER_BREAKER_FAIL_MAX": "2",
        "FAILOVER_BREAKER_RESET_SECONDS": "1.5",
        "FAILOVER_JOURNAL": "/tmp/j.sqlite",
        "FAILOVER_REPAIR_INTERVAL_SECONDS": "0",
    }
    assert {f"FAILOVER_{n.upper()}" for n in SETTINGS_TABLE} == set(env)
    s = Settings.from_env(env)
    assert (s.write_policy, s.write_quorum, s.read_policy, s.hedge_delay_ms) == (
        "all",
        3,
        "hedged",
        25,
    )
    assert (s.timeout_seconds, s.deadline_seconds, s.retry_attempts) == (2.5, 7, 4)
    assert (s.breaker_fail_max, s.breaker_reset_seconds) == (2, 1.5)
    assert (s.journal, s.repair_interval_seconds) == ("/tmp/j.sqlite", 0)
    assert s.required_acks == 3


@pytest.mark.parametrize(
    ("variable", "value", "accepted"),
    [
        ("FAILOVER_WRITE_POLICY", "most", "all | quorum | one"),
        ("FAILOVER_READ_POLICY", "random", "health | ordered | hedged"),
        ("FAILOVER_WRITE_QUORUM", "0", "whole number from 1"),
        ("FAILOVER_WRITE_QUORUM", "two", "whole number from 1"),
        ("FAILOVER_TIMEOUT_SECONDS", "-1", "seconds > 0"),
        ("FAILOVER_TIMEOUT_SECONDS", "nan", "seconds > 0"),
        ("FAILOVER_DEADLINE_SECONDS", "0", "seconds > 0"),
        ("FAILOVER_RETRY_ATTEMPTS", "1.5", "whole number"),
        ("FAILOVER_BREAKER_FAIL_MAX", "0", "whole number >= 1"),
        ("FAILOVER_HEDGE_DELAY_MS", "-5", "milliseconds"),
        ("FAILOVER_REPAIR_INTERVAL_SECONDS", "-1", "seconds >= 0"),
    ],
)
def test_bad_values_name_variable_and_accepted_values(
    variable: str, value: str, accepted: str
) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"FAILOVER_BACKENDS": URLS, variable: value})
    assert variable in str(info.value)
    assert accepted in str(info.value)
    assert isinstance(info.value, ValueError)


def test_missing_backends() -> None:
    with pytest.raises(ConfigError, match="FAILOVER_BACKENDS"):
        Settings.from_env({})
    with pytest.raises(ConfigError, match="FAILOVER_BACKENDS"):
        Settings.from_env({"FAILOVER_BACKENDS": " , "})


def test_quorum_larger_than_backends() -> None:
    with pytest.raises(ConfigError, match="FAILOVER_WRITE_QUORUM"):
        Settings.from_env({"FAILOVER_BACKENDS": URLS, "FAILOVER_WRITE_QUORUM": "4"})


def test_from_urls_takes_lower_case_names() -> None:
    s = Settings.from_urls(
        URLS.split(","), write_policy="one", timeout_seconds=1.5, write_quorum="majority"
    )
    assert (s.write_policy, s.timeout_seconds, s.write_quorum, s.required_acks) == (
        "one",
        1.5,
        None,
        1,
    )
    with pytest.raises(ConfigError, match="unknown option 'write_polcy'"):
        Settings.from_urls(URLS.split(","), write_polcy="all")
    with pytest.raises(ConfigError, match="write_policy"):
        Settings.from_urls(URLS.split(","), write_policy=True)
    with pytest.raises(ConfigError, match="contains ','"):
        Settings.from_urls(["memory://a,memory://b"])


def test_empty_optional_values_fall_back_to_defaults() -> None:
    s = Settings.from_env({"FAILOVER_BACKENDS": URLS, "FAILOVER_TIMEOUT_SECONDS": ""})
    assert s.timeout_seconds == 10
