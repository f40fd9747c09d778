"""Target URLs: schemes, explicit auth, secrets refused, names (pure, no network)."""

from __future__ import annotations

import pytest

from failover import ConfigError
from failover.invoke import parse_target_url, target_from_url
from failover.invoke.aws_lambda import LambdaTarget
from failover.invoke.azure import AzureFunctionTarget
from failover.invoke.gcf import GoogleFunctionTarget
from failover.invoke.http import HttpTarget


def test_lambda_url_with_qualifier_region_and_endpoint() -> None:
    url = parse_target_url("lambda://thumb:prod?region=eu-west-1&endpoint_url=http://127.0.0.1:5")
    assert (url.kind, url.function, url.qualifier) == ("lambda", "thumb", "prod")
    assert url.params == {"region": "eu-west-1", "endpoint_url": "http://127.0.0.1:5"}
    assert url.name == "lambda:thumb:prod@eu-west-1"
    assert parse_target_url("lambda://thumb:$LATEST?name=aws").name == "aws"
    assert parse_target_url("lambda://thumb").qualifier is None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("lambda://", "lambda://FUNCTION"),
        ("lambda://bad.name", "lambda://FUNCTION"),
        ("lambda://fn/extra", "lambda://FUNCTION"),
        ("lambda://fn:bad.q", "qualifier"),
        ("lambda://fn?memory=1", "unknown parameter 'memory'"),
        ("lambda://fn?endpoint_url=ftp://x", "endpoint_url"),
        ("ftp://host/fn", "unknown scheme"),
        ("azfunc://host/api/fn?key_env=K", "unknown scheme"),
        ("azfunc+https://app.azurewebsites.net/api/fn", "key_env"),
        ("azfunc+https://app.azurewebsites.net/api/fn?key_env=1BAD", "key_env"),
        ("azfunc+http://app.example.com/api/fn?key_env=K", "needs TLS"),
        ("gcf+http://fn.example.com/fn", "needs TLS"),
        ("http://api.example.com/fn?auth_header_env=TOKEN", "needs TLS"),
        ("https://api.example.com/fn?auth_header=X-Key", "auth_header_env"),
        ("https://api.example.com/fn?x=1&x=2", "given twice"),
        ("gcf+https://fn.example.com/fn?audience=", "audience"),
        ("https:///path", "missing host"),
        ("", "non-empty"),
    ],
)
def test_invalid_urls_raise_config_error_naming_the_problem(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("?", r"\?")):
        parse_target_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "azfunc+https://app.azurewebsites.net/api/fn?key_env=K&code=s3cr3t-value",
        "https://api.example.com/fn?api_key=s3cr3t-value",
        "https://api.example.com/fn?token=s3cr3t-value",
        "gcf+https://fn.example.com/fn?access_token=s3cr3t-value",
        "https://user:s3cr3t-value@api.example.com/fn",
        "lambda://fn?secret_access_key=s3cr3t-value",
    ],
)
def test_credentials_in_urls_are_refused_without_echoing_them(url: str) -> None:
    with pytest.raises(ConfigError, match="credentials") as info:
        parse_target_url(url)
    assert "s3cr3t-value" not in str(info.value)


def test_http_kinds_keep_forwarded_query_and_drop_control_parameters() -> None:
    url = parse_target_url(
        "azfunc+https://app.azurewebsites.net/api/fn?key_env=AZ_KEY&mode=fast&name=azure"
    )
    assert url.kind == "azfunc"
    assert url.endpoint == "https://app.azurewebsites.net/api/fn?mode=fast"
    assert url.params == {"key_env": "AZ_KEY"}
    assert url.name == "azure"
    gcf = parse_target_url("gcf+https://europe-west1-acme.cloudfunctions.net/thumb")
    assert gcf.name == "gcf:europe-west1-acme.cloudfunctions.net/thumb"
    assert gcf.endpoint == "https://europe-west1-acme.cloudfunctions.net/thumb"
    plain = parse_target_url("https://API.example.com/v1/run?auth_header_env=T&auth_header=X-Key")
    assert plain.name == "https:api.example.com/v1/run"
    assert plain.params == {"auth_header_env": "T", "auth_header": "X-Key"}
    assert parse_target_url("http://10.0.0.5:8080/fn").endpoint == "http://10.0.0.5:8080/fn"


def test_plain_http_with_credentials_is_allowed_on_loopback_only() -> None:
    for host in ("127.0.0.1:7071", "localhost:7071", "[::1]:7071"):
        url = parse_target_url(f"azfunc+http://{host}/api/fn?key_env=K")
        assert url.endpoint == f"http://{host}/api/fn"


def test_target_from_url_builds_each_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZ_KEY", "k")
    monkeypatch.setenv("API_TOKEN", "Bearer t")
    built = [
        target_from_url("lambda://fn?region=us-east-1&endpoint_url=http://127.0.0.1:1"),
        target_from_url("azfunc+https://app.azurewebsites.net/api/fn?key_env=AZ_KEY"),
        target_from_url("gcf+https://europe-west1-acme.cloudfunctions.net/fn?audience=aud"),
        target_from_url("https://api.example.com/fn?auth_header_env=API_TOKEN"),
    ]
    try:
        kinds = [type(t) for t in built]
        assert kinds == [LambdaTarget, AzureFunctionTarget, GoogleFunctionTarget, HttpTarget]
        assert [t.name for t in built] == [
            "lambda:fn@us-east-1",
            "azfunc:app.azurewebsites.net/api/fn",
            "gcf:europe-west1-acme.cloudfunctions.net/fn",
            "https:api.example.com/fn",
        ]
        assert built[2].auth.audience == "aud"  # type: ignore[attr-defined]
        assert "Bearer t" not in repr(built[3])
    finally:
        for target in built:
            target.close()


def test_an_unset_key_variable_is_a_config_error_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MISSING_AZ_KEY", raising=False)
    with pytest.raises(ConfigError, match="MISSING_AZ_KEY"):
        target_from_url("azfunc+https://app.azurewebsites.net/api/fn?key_env=MISSING_AZ_KEY")
