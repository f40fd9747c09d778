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
        "FAILOVER_ENCRYPTION_KEY": "k1:" + "A" * 43 + "=",
        "FAILOVER_REDUNDANCY": "erasure",
        "FAILOVER_EC_K": "2",
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
    assert s.encryption_key is not None
    assert s.encryption_key.current() == ("k1", bytes(32))
    assert (s.redundancy, s.ec_k, s.erasure_k) == ("erasure", 2, 2)


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


KEY_B64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  # bytes(range(32))


def test_segmentation_defaults_are_off() -> None:
    s = Settings.from_env({"FAILOVER_BACKENDS": URLS})
    assert (s.encryption_key, s.redundancy, s.ec_k, s.erasure_k) == (None, "replicate", None, 2)


def test_encryption_key_is_parsed_and_never_shown() -> None:
    s = Settings.from_env({"FAILOVER_BACKENDS": URLS, "FAILOVER_ENCRYPTION_KEY": f"new:{KEY_B64}"})
    assert s.encryption_key is not None
    assert s.encryption_key.get("new") == bytes(range(32))
    assert KEY_B64 not in repr(s)
    assert "key_ids=('new',)" in repr(s)
    assert s == Settings.from_env(
        {"FAILOVER_BACKENDS": URLS, "FAILOVER_ENCRYPTION_KEY": f"new:{KEY_B64}"}
    )


@pytest.mark.parametrize("value", [KEY_B64[:-6], f"bad id:{KEY_B64}", f"a:{KEY_B64},a:{KEY_B64}"])
def test_bad_encryption_key_names_the_variable_but_not_the_value(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"FAILOVER_BACKENDS": URLS, "FAILOVER_ENCRYPTION_KEY": value})
    assert "FAILOVER_ENCRYPTION_KEY" in str(info.value)
    assert KEY_B64[:-6] not in str(info.value)


def test_from_urls_takes_a_key_provider() -> None:
    from failover.segmentation import CallableKeyProvider

    provider = CallableKeyProvider(lambda: ("kms-1", bytes(32)), lambda _id: bytes(32))
    s = Settings.from_urls(URLS.split(","), encryption_key=provider, redundancy="erasure")
    assert s.encryption_key is provider
    assert Settings.from_urls(URLS.split(","), encryption_key=KEY_B64).encryption_key is not None
    with pytest.raises(ConfigError, match="KeyProvider"):
        Settings.from_urls(URLS.split(","), encryption_key=b"raw bytes")


def test_erasure_settings_are_validated() -> None:
    env = {"FAILOVER_BACKENDS": URLS, "FAILOVER_REDUNDANCY": "erasure"}
    assert Settings.from_env(env).erasure_k == 2
    with pytest.raises(ConfigError, match="FAILOVER_EC_K"):
        Settings.from_env({**env, "FAILOVER_EC_K": "3"})
    with pytest.raises(ConfigError, match="whole number from 1"):
        Settings.from_env({**env, "FAILOVER_EC_K": "0"})
    with pytest.raises(ConfigError, match=r"replicate \| erasure"):
        Settings.from_env({**env, "FAILOVER_REDUNDANCY": "raid"})
    with pytest.raises(ConfigError, match="FAILOVER_REDUNDANCY is 'replicate'"):
        Settings.from_env({"FAILOVER_BACKENDS": URLS, "FAILOVER_EC_K": "2"})
    with pytest.raises(ConfigError, match="needs from 2"):
        Settings.from_env({"FAILOVER_BACKENDS": "memory://a", "FAILOVER_REDUNDANCY": "erasure"})


def test_erasure_writes_need_at_least_k_acknowledgements() -> None:
    five = ",".join(f"memory://{c}" for c in "abcde")
    s = Settings.from_env({"FAILOVER_BACKENDS": five, "FAILOVER_REDUNDANCY": "erasure"})
    assert (s.erasure_k, s.required_acks) == (4, 4)  # majority (3) < k
    s = s.with_options(write_policy="one")
    assert s.required_acks == 4
