"""FAILOVER_BREAKER_STORAGE: parsing, redaction and timeouts (pure, no Redis)."""

from __future__ import annotations

import pytest

from failover import ConfigError, Settings
from failover.breaker_storage import BreakerStorageURL, parse_breaker_storage
from failover.invoke import InvokerSettings

URLS = ["memory://a", "memory://b", "memory://c"]
PASSWORD = "hunter2-s3cret"


def test_local_is_the_default() -> None:
    assert Settings.from_urls(URLS).breaker_storage is None
    assert Settings.from_env({"FAILOVER_BACKENDS": ",".join(URLS)}).breaker_storage is None
    assert parse_breaker_storage("local") is None
    assert parse_breaker_storage(" LOCAL ") is None
    assert Settings.from_urls(URLS, breaker_storage="local").breaker_storage is None


def test_a_redis_url_with_every_part() -> None:
    url = parse_breaker_storage(
        f"redis://ops:{PASSWORD}@cache.internal:6380/3"
        "?namespace=shop&timeout_seconds=0.1&retry_seconds=2"
    )
    assert url == BreakerStorageURL(
        scheme="redis",
        host="cache.internal",
        port=6380,
        db=3,
        namespace="shop",
        timeout_seconds=0.1,
        retry_seconds=2.0,
        username="ops",
        password=PASSWORD,
    )


def test_defaults_of_a_bare_url() -> None:
    url = BreakerStorageURL.parse("redis://cache")
    assert (url.scheme, url.host, url.port, url.db) == ("redis", "cache", 6379, 0)
    assert (url.namespace, url.timeout_seconds, url.retry_seconds) == ("failover", None, 5.0)
    assert (url.username, url.password) == (None, None)
    assert BreakerStorageURL.parse("rediss://[::1]:7000/").scheme == "rediss"
    assert BreakerStorageURL.parse("rediss://[::1]:7000/").redacted == "rediss://[::1]:7000/0"


def test_a_percent_encoded_password_is_decoded() -> None:
    assert BreakerStorageURL.parse("redis://:p%40ss%3Aw@cache/0").password == "p@ss:w"


@pytest.mark.parametrize(
    "text",
    [
        f"redis://:{PASSWORD}@cache:6379/0",
        f"redis://ops:{PASSWORD}@cache:6379/0?namespace=shop",
        f"rediss://:{PASSWORD}@cache/1",
    ],
)
def test_the_password_is_never_shown(text: str) -> None:
    url = BreakerStorageURL.parse(text)
    settings = Settings.from_urls(URLS, breaker_storage=text)
    invoker = InvokerSettings.from_urls(["https://a.example.com/f"], breaker_storage=text)
    for shown in (str(url), repr(url), url.redacted, repr(settings), repr(invoker)):
        assert PASSWORD not in shown
        assert "ops" not in shown  # the user name neither
    assert url.redacted.startswith(f"{url.scheme}://***@cache:")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (f"memcached://:{PASSWORD}@cache:11211", "unknown scheme 'memcached'"),
        ("cache.internal", "is not a URL"),
        (f"redis://:{PASSWORD}@cache:port/0", "'redis://***@cache:port/0' is not a valid URL"),
        (f"redis://:{PASSWORD}@/0", "has no host"),
        (f"redis://:{PASSWORD}@cache/zero", "must be a database number"),
        (f"redis://:{PASSWORD}@cache/0?password={PASSWORD}", "unknown parameter(s) password"),
        ("redis://cache/0?namespace=a&namespace=b", "namespace given twice"),
        ("redis://cache/0?namespace=no spaces", "namespace must be 1 to 64"),
        ("redis://cache/0?namespace=" + "x" * 65, "namespace must be 1 to 64"),
        ("redis://cache/0?timeout_seconds=0", "timeout_seconds must be a number of seconds > 0"),
        ("redis://cache/0?retry_seconds=soon", "retry_seconds must be a number of seconds > 0"),
        ("redis://cache/0?retry_seconds=inf", "retry_seconds must be a number of seconds > 0"),
        (f"redis://:{PASSWORD}@cache/0#frag", "has a fragment"),
    ],
)
def test_a_bad_url_is_named_but_never_echoed(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"FAILOVER_BACKENDS": ",".join(URLS), "FAILOVER_BREAKER_STORAGE": text})
    message = str(info.value)
    assert message.startswith("FAILOVER_BREAKER_STORAGE: "), message
    assert fragment in message
    assert PASSWORD not in message
    assert PASSWORD not in repr(info.value.__cause__)
    with pytest.raises(ConfigError) as info:
        Settings.from_urls(URLS, breaker_storage=text)
    assert str(info.value).startswith("breaker_storage: ")
    assert PASSWORD not in str(info.value)


def test_client_timeout_is_well_under_the_call_timeouts() -> None:
    url = BreakerStorageURL.parse("redis://cache")
    assert url.client_timeout_seconds(attempt_seconds=10, deadline_seconds=30) == 0.25
    assert url.client_timeout_seconds(attempt_seconds=0.4, deadline_seconds=30) == 0.1
    assert url.client_timeout_seconds(attempt_seconds=10, deadline_seconds=0.8) == 0.1
    slow = BreakerStorageURL.parse("redis://cache?timeout_seconds=3")
    assert slow.client_timeout_seconds(attempt_seconds=10, deadline_seconds=30) == 2.5
    quick = BreakerStorageURL.parse("redis://cache?timeout_seconds=0.05")
    assert quick.client_timeout_seconds(attempt_seconds=10, deadline_seconds=30) == 0.05


def test_with_namespace() -> None:
    url = BreakerStorageURL.parse(f"redis://:{PASSWORD}@cache/2?retry_seconds=1")
    other = url.with_namespace("shop.drill-1")
    assert (other.namespace, other.password, other.db, other.retry_seconds) == (
        "shop.drill-1",
        PASSWORD,
        2,
        1.0,
    )
    with pytest.raises(ConfigError, match="namespace must be"):
        url.with_namespace("a:b")


def test_options_take_a_parsed_url_and_go_back_to_local() -> None:
    url = BreakerStorageURL.parse("redis://cache/1")
    settings = Settings.from_urls(URLS, breaker_storage=url)
    assert settings.breaker_storage is url
    assert settings.with_options(breaker_storage=None).breaker_storage is None
    assert settings.with_options(breaker_storage="local").breaker_storage is None


def test_the_invoker_reads_its_own_variable_first() -> None:
    settings = InvokerSettings.from_env(
        {
            "FAILOVER_FUNCTIONS": "https://a.example.com/f",
            "FAILOVER_BREAKER_STORAGE": "redis://shared-cache/0",
            "FAILOVER_INVOKE_BREAKER_STORAGE": "redis://invoke-cache/1?namespace=fn",
        }
    )
    assert settings.resilience.breaker_storage == BreakerStorageURL.parse(
        "redis://invoke-cache/1?namespace=fn"
    )
    shared = InvokerSettings.from_env(
        {"FAILOVER_FUNCTIONS": "https://a.example.com/f", "FAILOVER_BREAKER_STORAGE": "redis://c"}
    )
    assert shared.resilience.breaker_storage == BreakerStorageURL.parse("redis://c")
