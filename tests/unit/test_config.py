from __future__ import annotations

from typing import Any

import pytest

from failover.backends import redact_backend_url
from failover.config import ENV_PREFIX, SETTINGS_TABLE, Settings, default_journal_path
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
    assert settings.max_clock_skew_seconds == 30
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
        "FAILOVER_BREAKER_STORAGE": "redis://:pw@cache.internal:6380/2?namespace=shop",
        "FAILOVER_JOURNAL": "/tmp/j.sqlite",
        "FAILOVER_REPAIR_INTERVAL_SECONDS": "0",
        "FAILOVER_MAX_CLOCK_SKEW_SECONDS": "5",
        "FAILOVER_TOMBSTONE_GRACE_SECONDS": "600",
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
    assert s.breaker_storage is not None
    assert (s.breaker_storage.host, s.breaker_storage.port, s.breaker_storage.db) == (
        "cache.internal",
        6380,
        2,
    )
    assert (s.breaker_storage.namespace, s.breaker_storage.password) == ("shop", "pw")
    assert (s.journal, s.repair_interval_seconds) == ("/tmp/j.sqlite", 0)
    assert (s.max_clock_skew_seconds, s.tombstone_grace_seconds) == (5, 600)
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
    # k + 1 by default: an acknowledged write survives losing any one cloud.
    assert (s.erasure_k, s.required_acks) == (4, 5)
    assert s.with_options(ec_k=2).required_acks == 3  # k + 1, above the majority of 5
    assert s.with_options(write_quorum=3).required_acks == 4  # never fewer than k
    assert s.with_options(write_policy="one").required_acks == 4


# -- every variable: a bad value names the variable (from_env) or keyword (from_urls) ------

#: One representative bad value per variable of SETTINGS_TABLE, with a fragment of what
#: the message must say is wrong. test_every_variable_has_a_bad_value_case fails when a
#: variable is added to the table without a case here.
BAD_VALUES: dict[str, tuple[str, str]] = {
    "FAILOVER_BACKENDS": ("memory://a,ftp://x", "backend URL 'ftp://x': unknown scheme 'ftp'"),
    "FAILOVER_WRITE_POLICY": ("most", "'most' is invalid"),
    "FAILOVER_WRITE_QUORUM": ("two", "'two' is invalid"),
    "FAILOVER_READ_POLICY": ("random", "'random' is invalid"),
    "FAILOVER_HEDGE_DELAY_MS": ("-5", "'-5' is invalid"),
    "FAILOVER_TIMEOUT_SECONDS": ("soon", "'soon' is invalid"),
    "FAILOVER_DEADLINE_SECONDS": ("0", "'0' is invalid"),
    "FAILOVER_RETRY_ATTEMPTS": ("1.5", "'1.5' is invalid"),
    "FAILOVER_BREAKER_FAIL_MAX": ("0", "'0' is invalid"),
    "FAILOVER_BREAKER_RESET_SECONDS": ("inf", "'inf' is invalid"),
    "FAILOVER_BREAKER_STORAGE": ("memcached://:hunter2@cache:11211", "unknown scheme 'memcached'"),
    "FAILOVER_JOURNAL": ("/var/lib/app/failover/", "is a directory, not a file"),
    "FAILOVER_REPAIR_INTERVAL_SECONDS": ("-1", "'-1' is invalid"),
    "FAILOVER_MAX_CLOCK_SKEW_SECONDS": ("0", "'0' is invalid"),
    "FAILOVER_TOMBSTONE_GRACE_SECONDS": ("-1", "'-1' is invalid"),
    "FAILOVER_ENCRYPTION_KEY": ("k1:" + "*" * 43, "entry 1 of 1 is not valid base64"),
    "FAILOVER_REDUNDANCY": ("raid", "'raid' is invalid"),
    "FAILOVER_EC_K": ("zero", "'zero' is invalid"),
}


def _spec(variable: str) -> Any:
    return SETTINGS_TABLE[variable.removeprefix(ENV_PREFIX).lower()]


def test_every_variable_has_a_bad_value_case() -> None:
    assert set(BAD_VALUES) == {ENV_PREFIX + name.upper() for name in SETTINGS_TABLE}


@pytest.mark.parametrize(("variable", "case"), BAD_VALUES.items(), ids=list(BAD_VALUES))
def test_a_bad_value_names_its_variable(
    clean_env: pytest.MonkeyPatch, variable: str, case: tuple[str, str]
) -> None:
    value, fragment = case
    clean_env.setenv("FAILOVER_BACKENDS", URLS)
    clean_env.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        Settings.from_env()
    message = str(info.value)
    spec = _spec(variable)
    assert message.startswith(variable), message
    assert message[len(variable)] in "=:"  # this variable, not a longer one
    assert fragment in message
    assert f"expected {spec.accepted}" in message
    assert isinstance(info.value.__cause__, ValueError)  # the parser's error, chained
    if spec.secret:
        assert value not in message


@pytest.mark.parametrize(("variable", "case"), BAD_VALUES.items(), ids=list(BAD_VALUES))
def test_a_bad_keyword_value_names_its_keyword(variable: str, case: tuple[str, str]) -> None:
    value, fragment = case
    name = variable.removeprefix(ENV_PREFIX).lower()
    keyword, urls, options = (
        ("urls", value.split(","), {})
        if name == "backends"
        else (name, URLS.split(","), {name: value})
    )
    with pytest.raises(ConfigError) as info:
        Settings.from_urls(urls, **options)
    message = str(info.value)
    assert message.startswith(keyword), message
    assert variable not in message
    assert fragment in message
    assert f"expected {_spec(variable).accepted}" in message
    assert isinstance(info.value.__cause__, ValueError)


BAD_URLS = [
    ("ftp://x", "unknown scheme 'ftp'"),
    ("s3://", "missing bucket"),
    ("s3://b/p?region=eu-west-1&colour=SECRET", "unknown parameter(s) colour"),
    ("az://c?account_url=https://a.example&account_url=https://b.example", "given twice"),
    ("gs://b?project=p&token=SECRET", "do not put credentials ('token')"),
    ("az://c?account_url=https://a.example/?sig%3DSECRET", "do not put credentials"),
    ("s3://b?endpoint_url=http://key:SECRET@127.0.0.1:9000", "do not put credentials"),
    ("file://relative/path", "absolute path"),
    ("file:///srv/replica?create=false&mode=SECRET", "unknown parameter(s) mode"),
    ("memory://a?sig=SECRET", "do not put credentials"),
    ("s3://user:SECRET@bucket", "do not put credentials"),
    ("s3://user:SEC/RET@bucket", "has no ':'"),
    ("s3://[bucket", "malformed"),
]


@pytest.mark.parametrize(("url", "fragment"), BAD_URLS)
def test_a_bad_backend_url_names_the_variable_and_the_url_without_secrets(
    clean_env: pytest.MonkeyPatch, url: str, fragment: str
) -> None:
    clean_env.setenv("FAILOVER_BACKENDS", f"memory://first,{url}")
    with pytest.raises(ConfigError) as info:
        Settings.from_env()
    message = str(info.value)
    assert message.startswith("FAILOVER_BACKENDS: backend URL ")
    assert repr(redact_backend_url(url)) in message
    assert fragment in message
    assert isinstance(info.value.__cause__, ConfigError)
    for text in (message, str(info.value.__cause__)):
        assert "SECRET" not in text
        assert "SEC" not in text
    with pytest.raises(ConfigError) as info:
        Settings.from_urls(["memory://first", url])
    assert str(info.value).startswith("urls: backend URL ")
    assert "FAILOVER_BACKENDS" not in str(info.value)
    assert "SECRET" not in str(info.value)


def test_backend_names_must_be_unique(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("FAILOVER_BACKENDS", "memory://a,s3://x?name=memory:a")
    with pytest.raises(ConfigError, match=r"^FAILOVER_BACKENDS: .*same name 'memory:a'"):
        Settings.from_env()
    with pytest.raises(ConfigError, match=r"^urls: .*same name 'a'"):
        Settings.from_urls(["a", "a"])


def test_from_urls_takes_names_of_backends_built_by_the_caller() -> None:
    assert Settings.from_urls(["a", "memory:b"]).backends == ("a", "memory:b")
    with pytest.raises(ConfigError, match=r"^FAILOVER_BACKENDS: backend URL 'a': unknown scheme"):
        Settings.from_env({"FAILOVER_BACKENDS": "a"})


def test_with_options_keeps_backend_names_unparsed() -> None:
    settings = Settings(backends=("memory:a", "memory:b"), timeout_seconds=3)
    changed = settings.with_options(timeout_seconds=1, hedge_delay_ms=None)
    assert (changed.backends, changed.timeout_seconds) == (("memory:a", "memory:b"), 1)
    assert settings.with_options(timeout_seconds=None).timeout_seconds == 10
    with pytest.raises(ConfigError, match=r"^retry_attempts='0' is invalid"):
        settings.with_options(retry_attempts=0)


def test_keyword_values_of_the_wrong_type_name_the_keyword() -> None:
    with pytest.raises(ConfigError, match=r"^timeout_seconds: a list is not accepted; expected"):
        Settings.from_urls(URLS.split(","), timeout_seconds=[1])
    with pytest.raises(ConfigError, match=r"^encryption_key: a bytes is neither"):
        Settings.from_urls(URLS.split(","), encryption_key=b"raw bytes")
    with pytest.raises(ConfigError, match=r"^urls: a backend URL must be a str, not int"):
        Settings.from_urls(["memory://a", 3])  # type: ignore[list-item]
