"""Parsing of backend URLs (``s3://bucket/prefix?name=…``) shared by every backend."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from failover.errors import ConfigError

__all__ = ["BackendURL", "parse_backend_url"]

SCHEMES = ("s3", "az", "gs", "file", "memory")


@dataclass(frozen=True, slots=True)
class BackendURL:
    """A parsed backend URL.

    Attributes:
        scheme: ``s3``, ``az``, ``gs``, ``file`` or ``memory``.
        bucket: bucket / container / memory store name; for ``file`` the directory path.
        prefix: key prefix inside the bucket ("" or ending in ``/``).
        params: query parameters other than ``name``.
        name: the backend's name (``name=`` parameter, else ``<scheme>:<bucket>``).
        raw: the URL as given (safe to show: URLs never carry secrets, see below).
    """

    scheme: str
    bucket: str
    prefix: str
    params: dict[str, str] = field(default_factory=dict)
    name: str = ""
    raw: str = ""

    def check_params(self, allowed: Collection[str]) -> None:
        """Raise ConfigError naming any query parameter this backend does not accept."""
        unknown = sorted(set(self.params) - set(allowed))
        if unknown:
            accepted = ", ".join(sorted(allowed)) or "none besides name"
            raise ConfigError(
                f"backend URL {self.raw!r}: unknown parameter(s) {', '.join(unknown)}; "
                f"{self.scheme}:// accepts: {accepted}, name"
            )


# Credentials must come from the environment or the SDKs' own chains, never from a URL
# that ends up in logs and error messages.
_SECRET_PARAMS = frozenset(
    {
        "key",
        "account_key",
        "secret",
        "secret_access_key",
        "sas",
        "sas_token",
        "token",
        "password",
        "connection_string",
        "credential",
        "sig",
    }
)


def parse_backend_url(url: str) -> BackendURL:
    """Split a backend URL into scheme, bucket, prefix, name and parameters.

    Raises:
        ConfigError: for an unknown scheme, a missing bucket, a duplicated parameter or a
            credential passed in the URL.
    """
    if not isinstance(url, str) or not url.strip():
        raise ConfigError("backend URL must be a non-empty string such as 's3://bucket'")
    url = url.strip()
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ConfigError(
            f"backend URL {_redact(url)!r}: unknown scheme {parts.scheme!r}; "
            f"use one of {', '.join(s + '://' for s in SCHEMES)}"
        )
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            raise ConfigError(f"backend URL {_redact(url)!r}: parameter {key!r} given twice")
        if key.lower() in _SECRET_PARAMS:
            raise ConfigError(
                f"backend URL {_redact(url)!r}: do not put credentials ({key!r}) in a URL; "
                "use the provider's environment variables or credential chain"
            )
        params[key] = value
    if parts.username or parts.password:
        raise ConfigError(
            f"backend URL {_redact(url)!r}: do not put credentials in a URL; use the "
            "provider's environment variables or credential chain"
        )
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(
                f"backend URL {url!r}: file:// URLs need an absolute path, "
                "e.g. file:///var/lib/app/replica"
            )
        bucket, prefix = unquote(parts.path), ""
        if not bucket.startswith("/"):
            raise ConfigError(f"backend URL {url!r}: file:// needs an absolute path")
    else:
        bucket = unquote(parts.netloc)
        prefix = unquote(parts.path).strip("/")
        if prefix:
            prefix += "/"
        if not bucket:
            raise ConfigError(
                f"backend URL {url!r}: missing bucket/container name, e.g. {scheme}://my-bucket"
            )
    name = params.pop("name", "") or f"{scheme}:{bucket}"
    return BackendURL(
        scheme=scheme, bucket=bucket, prefix=prefix, params=params, name=name, raw=_redact(url)
    )


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password or parts.username:
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        parts = parts._replace(netloc="***@" + host)
    if parts.query:
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        parts = parts._replace(
            query="&".join(f"{k}={'***' if k.lower() in _SECRET_PARAMS else v}" for k, v in pairs)
        )
    return parts.geturl()
