"""Parsing of backend URLs (``s3://bucket/prefix?name=…``) shared by every backend.

:func:`parse_backend_url` checks the syntax; :func:`validate_backend_url` also checks
the query parameters against :data:`PARAMETERS`, the one list of what each scheme
accepts (``failover.config`` validates ``FAILOVER_BACKENDS`` with it, and
:func:`failover.backends.from_url` builds only URLs that pass it).

Every error names the URL as :func:`redact_backend_url` shows it: without user info,
fragment, or the value of any query parameter not known to be harmless, so that a
credential pasted into a URL never reaches a message or a log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from failover.errors import ConfigError

__all__ = [
    "PARAMETERS",
    "SCHEMES",
    "BackendURL",
    "parse_backend_url",
    "redact_backend_url",
    "validate_backend_url",
]

SCHEMES = ("s3", "az", "gs", "file", "memory")
#: Query parameters each scheme accepts besides ``name`` (checked by
#: :meth:`BackendURL.check_params`, for every backend and for ``FAILOVER_BACKENDS``).
PARAMETERS: Mapping[str, tuple[str, ...]] = {
    "s3": ("region", "endpoint_url"),
    "az": ("account_url",),
    "gs": ("project", "endpoint"),
    "file": ("create",),
    "memory": (),
}


@dataclass(frozen=True, slots=True)
class BackendURL:
    """A parsed backend URL.

    Attributes:
        scheme: ``s3``, ``az``, ``gs``, ``file`` or ``memory``.
        bucket: bucket / container / memory store name; for ``file`` the directory path.
        prefix: key prefix inside the bucket ("" or ending in ``/``).
        params: query parameters other than ``name``.
        name: the backend's name (``name=`` parameter, else ``<scheme>:<bucket>``).
        raw: the URL as :func:`redact_backend_url` shows it (safe in messages and logs).
    """

    scheme: str
    bucket: str
    prefix: str
    params: dict[str, str] = field(default_factory=dict)
    name: str = ""
    raw: str = ""

    def check_params(self) -> None:
        """Raise ConfigError naming any query parameter the scheme does not accept.

        What each scheme accepts is :data:`PARAMETERS`, the one list every backend's
        ``from_url`` and the ``FAILOVER_BACKENDS`` validation check against.
        """
        allowed = PARAMETERS[self.scheme]
        unknown = sorted(set(self.params) - set(allowed))
        if unknown:
            accepted = ", ".join([*sorted(allowed), "name"])
            raise ConfigError(
                f"backend URL {self.raw!r}: unknown parameter(s) {', '.join(unknown)}; "
                f"{self.scheme}:// accepts: {accepted}"
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

    Which parameters a scheme accepts is not checked here (see
    :func:`validate_backend_url`).

    Raises:
        ConfigError: for a malformed URL, an unknown scheme, a missing bucket, a
            duplicated parameter or a credential passed in the URL. The message names
            the URL without secrets (:func:`redact_backend_url`) and what is accepted.
    """
    if not isinstance(url, str) or not url.strip():
        raise ConfigError("backend URL must be a non-empty string such as 's3://bucket'")
    url = url.strip()
    shown = redact_backend_url(url)
    try:
        parts = urlsplit(url)
        username, password = parts.username, parts.password
    except ValueError:
        # Not chained: urllib's message may quote the host part, credentials included.
        raise ConfigError(
            f"backend URL {shown!r} is malformed (unbalanced brackets or invalid characters "
            "in the host part), e.g. s3://bucket/prefix?region=…"
        ) from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ConfigError(
            f"backend URL {shown!r}: unknown scheme {parts.scheme!r}; "
            f"use one of {', '.join(s + '://' for s in SCHEMES)}"
        )
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            raise ConfigError(f"backend URL {shown!r}: parameter {key!r} given twice")
        if key.lower() in _SECRET_PARAMS or _carries_credentials(value):
            raise ConfigError(
                f"backend URL {shown!r}: do not put credentials ({key!r}) in a URL; "
                "use the provider's environment variables or credential chain"
            )
        params[key] = value
    if username or password:
        raise ConfigError(
            f"backend URL {shown!r}: do not put credentials in a URL; use the "
            "provider's environment variables or credential chain"
        )
    bucket, prefix = _location(scheme, parts.netloc, parts.path, shown=shown)
    name = params.pop("name", "") or f"{scheme}:{bucket}"
    return BackendURL(
        scheme=scheme, bucket=bucket, prefix=prefix, params=params, name=name, raw=shown
    )


def _carries_credentials(value: str) -> bool:
    """Whether a URL-valued parameter (``account_url=…``) holds user info or a token."""
    if "://" not in value:
        return False
    try:
        parts = urlsplit(value)
        if parts.username or parts.password:
            return True
    except ValueError:
        return False  # the backend rejects it; the message shows it redacted
    return any(
        key.lower() in _SECRET_PARAMS for key, _ in parse_qsl(parts.query, keep_blank_values=True)
    )


def _location(scheme: str, netloc: str, path: str, *, shown: str) -> tuple[str, str]:
    """``(bucket, prefix)``; for ``file`` the directory and ``""``."""
    if scheme == "file":
        if netloc not in ("", "localhost") or not unquote(path).startswith("/"):
            raise ConfigError(
                f"backend URL {shown!r}: file:// URLs need an absolute path, "
                "e.g. file:///var/lib/app/replica"
            )
        return unquote(path), ""
    bucket = unquote(netloc)
    if not bucket:
        raise ConfigError(
            f"backend URL {shown!r}: missing bucket/container name, e.g. {scheme}://my-bucket"
        )
    if ":" in bucket:
        # No provider allows it; "user:password/…" (a password with a "/") lands here.
        raise ConfigError(
            f"backend URL {shown!r}: a bucket/container name has no ':' (and no port "
            f"or credentials go in a backend URL), e.g. {scheme}://my-bucket"
        )
    prefix = unquote(path).strip("/")
    return bucket, prefix + "/" if prefix else ""


def validate_backend_url(url: str) -> BackendURL:
    """Parse a backend URL and check its parameters against :data:`PARAMETERS`.

    Raises:
        ConfigError: as :func:`parse_backend_url`, or for a parameter the scheme does
            not accept (the message lists those it does).
    """
    parsed = parse_backend_url(url)
    parsed.check_params()
    return parsed


#: Parameters whose values are shown in messages: every accepted one (URL-valued ones
#: are themselves redacted). Any other value (an unknown or misspelt parameter, maybe a
#: signature or token) is masked.
_SHOWN_PARAMS = frozenset({"name", *(p for names in PARAMETERS.values() for p in names)})


def redact_backend_url(url: str) -> str:
    """The URL as safe to show in a message or log.

    User info (``user:password@``) and a fragment are replaced by ``***``, and so is the
    value of every query parameter other than ``name`` and the accepted ones; URL-valued
    parameters (``endpoint_url=…``) are redacted in turn. Works on malformed URLs too.
    """
    url = _redact(url)
    base, hash_mark, fragment = url.partition("#")
    base, question_mark, query = base.partition("?")
    if query:
        query = "&".join(
            f"{key}={_shown_value(key, value)}"
            for key, value in parse_qsl(query, keep_blank_values=True)
        )
    return base + question_mark + query + (hash_mark + "***" if fragment else "")


def _shown_value(key: str, value: str) -> str:
    if key not in _SHOWN_PARAMS:
        return "***"
    return redact_backend_url(value) if "://" in value else value


def _redact(url: str) -> str:
    """The URL with its user info masked (``failover.invoke._url`` builds on this).

    Textual, so that it works on URLs ``urlsplit`` rejects.
    """
    head, sep, rest = url.partition("://")
    if not sep:
        return url
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:cut], rest[cut:]
    if "@" in authority:
        return f"{head}://***@{authority.rpartition('@')[2]}{tail}"
    host, colon, port = authority.rpartition("]")[2].rpartition(":")  # after any [IPv6]
    if colon and (":" in host or not port.isdigit()):
        # "user:pass/word@host" splits at the "/": all after the scheme may be a password.
        return f"{head}://***"
    return url
