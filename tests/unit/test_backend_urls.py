from __future__ import annotations

import importlib

import pytest

from failover.backends import (
    PARAMETERS,
    LocalBackend,
    MemoryBackend,
    from_url,
    parse_backend_url,
    redact_backend_url,
    validate_backend_url,
)
from failover.errors import ConfigError


def test_parse_components() -> None:
    url = parse_backend_url("s3://bucket/some/prefix?region=eu-west-1&name=primary")
    assert (url.scheme, url.bucket, url.prefix, url.name) == (
        "s3",
        "bucket",
        "some/prefix/",
        "primary",
    )
    assert url.params == {"region": "eu-west-1"}
    assert parse_backend_url("gs://b").name == "gs:b"
    assert parse_backend_url("az://c/").prefix == ""


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("ftp://x", "unknown scheme"),
        ("s3://", "missing bucket"),
        ("", "non-empty"),
        ("file://relative/path", "absolute path"),
        ("s3://b?region=a&region=b", "given twice"),
        ("az://c?account_key=SECRETVALUE", "do not put credentials"),
        ("s3://user:SECRETVALUE@bucket", "do not put credentials"),
        ("s3://user:SECRET/VALUE@bucket", "has no ':'"),
        ("az://c?account_url=https://acct.example/?sig%3DSECRETVALUE", "do not put credentials"),
        ("s3://b?endpoint_url=http://key:SECRETVALUE@h:9000", "do not put credentials"),
        ("s3://[bucket", "malformed"),
        ("s3://us\u2100r:SECRETVALUE@bucket", "malformed"),
    ],
)
def test_bad_urls(url: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment) as info:
        parse_backend_url(url)
    assert "SECRET" not in str(info.value)
    assert "VALUE" not in str(info.value)
    assert info.value.__cause__ is None  # urllib's message may quote the host part


def test_unknown_parameter_names_accepted_ones() -> None:
    with pytest.raises(ConfigError, match="unknown parameter") as info:
        from_url("memory://x?colour=blue")
    assert "memory:// accepts: name" in str(info.value)
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) regoin; s3:// accepts: "):
        validate_backend_url("s3://b?regoin=SECRETVALUE")
    with pytest.raises(ConfigError, match="endpoint_url, region, name") as info:
        validate_backend_url("s3://b?regoin=SECRETVALUE")
    assert "SECRETVALUE" not in str(info.value)
    assert validate_backend_url("file:///srv/replica?create=false").params == {"create": "false"}


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("s3://b/p?region=eu-west-1&name=aws", "s3://b/p?region=eu-west-1&name=aws"),
        ("s3://user:pw@b?region=eu", "s3://***@b?region=eu"),
        ("s3://u:pa/ss@b", "s3://***"),
        ("memory://x?colour=blue&sig=abc#frag", "memory://x?colour=***&sig=***#***"),
        (
            "s3://b?endpoint_url=http://u:p@h:9000/?token=t",
            "s3://b?endpoint_url=http://***@h:9000/?token=***",
        ),
        ("s3://b?endpoint_url=http://[::1]:9000", "s3://b?endpoint_url=http://[::1]:9000"),
        ("s3://[bucket", "s3://[bucket"),
        ("not a url", "not a url"),
    ],
)
def test_redaction(url: str, shown: str) -> None:
    assert redact_backend_url(url) == shown


#: scheme -> (class name in failover.backends, module of its SDK)
_CLASSES = {
    "s3": ("S3Backend", "boto3"),
    "az": ("AzureBlobBackend", "azure.storage.blob"),
    "gs": ("GCSBackend", "google.cloud.storage"),
    "file": ("LocalBackend", None),
    "memory": ("MemoryBackend", None),
}


@pytest.mark.parametrize("scheme", sorted(PARAMETERS))
def test_each_backend_built_directly_checks_the_parameter_table(scheme: str) -> None:
    # Built from a parsed URL (not through from_url's validation), each backend still
    # refuses a parameter its scheme does not accept, naming the table's list.
    assert set(_CLASSES) == set(PARAMETERS)
    name, sdk = _CLASSES[scheme]
    if sdk is not None:
        importlib.import_module(sdk)  # the test extra installs every SDK: a miss is a failure
    cls = getattr(importlib.import_module("failover.backends"), name)
    base = "file:///srv/replica" if scheme == "file" else f"{scheme}://b"
    url = parse_backend_url(f"{base}?bogus=1")
    sized = {} if scheme in ("file", "memory") else {"timeout_seconds": 1, "max_connections": 1}
    with pytest.raises(ConfigError, match="unknown parameter") as info:
        cls.from_url(url, **sized)
    assert f"accepts: {', '.join([*sorted(PARAMETERS[scheme]), 'name'])}" in str(info.value)


def test_from_url_builds_local_and_memory(tmp_path) -> None:
    local = from_url(f"file://{tmp_path}/replica?name=offline")
    assert isinstance(local, LocalBackend)
    assert local.name == "offline"
    memory_a = from_url("memory://shared")
    memory_b = from_url("memory://shared?name=other")
    assert isinstance(memory_a, MemoryBackend)
    from failover.payload import Payload

    with Payload.from_bytes(b"x") as payload:
        memory_a.put("k", payload, content_type="text/plain", metadata={})
    assert memory_b.get("k").data == b"x"
    MemoryBackend.forget("shared")


def test_import_failover_imports_no_provider_sdk() -> None:
    import subprocess
    import sys

    code = (
        "import sys, failover, failover.backends, failover.testing;"
        "bad=[m for m in sys.modules if m.split('.')[0] in ('boto3','botocore','azure','google')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
