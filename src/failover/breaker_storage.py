"""Where circuit breaker state is kept: in this process (the default), or in Redis.

``FAILOVER_BREAKER_STORAGE`` is ``local`` (each process keeps its own breakers) or a
Redis URL, shared by every instance of the application::

    redis://[[username]:password@]host[:port][/db][?namespace=…&timeout_seconds=…&retry_seconds=…]
    rediss://…                                  (the same over TLS)

* ``namespace`` (default ``failover``): the application's prefix of every key, so that
  two applications sharing one Redis never share breakers (breakers are also keyed by
  each backend's *identity*, so different buckets never mix either).
* ``timeout_seconds`` (default 0.25): the Redis client's connect and read timeout. It
  is never more than a quarter of ``FAILOVER_TIMEOUT_SECONDS`` nor an eighth of
  ``FAILOVER_DEADLINE_SECONDS``: a Redis that does not answer must cost a call far less
  than its deadline (and a loaded host must not mistake a slow answer for an outage).
* ``retry_seconds`` (default 5): once Redis failed, how long an instance keeps to its
  local breakers before it tries Redis again.

:class:`BreakerStorageURL` is the parsed value. It is parsed without importing the
``redis`` client (an optional extra, ``failover[redis]``): the client is imported only
when a :class:`~failover.Storage` or :class:`~failover.Invoker` is built with shared
breakers (see :mod:`failover.shared_breakers`). Its password never appears in a message,
``repr`` or log line: they show the URL as ``redis://***@host:port/db``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Literal, TypedDict
from urllib.parse import parse_qsl, unquote, urlsplit

from failover.errors import ConfigError

__all__ = [
    "DEFAULT_NAMESPACE",
    "DEFAULT_RETRY_SECONDS",
    "DEFAULT_TIMEOUT_SECONDS",
    "LOCAL",
    "BreakerStorageURL",
    "parse_breaker_storage",
]

#: The value that keeps breakers in this process.
LOCAL = "local"
DEFAULT_NAMESPACE = "failover"
DEFAULT_TIMEOUT_SECONDS = 0.25
DEFAULT_RETRY_SECONDS = 5.0
_DEFAULT_PORT = 6379
_SCHEMES = ("redis", "rediss")
_PARAMS = ("namespace", "timeout_seconds", "retry_seconds")
_NAMESPACE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_NAMESPACE_RULE = "namespace must be 1 to 64 letters, digits, '_', '.' or '-'"


@dataclass(frozen=True, slots=True)
class BreakerStorageURL:
    """A parsed ``redis://`` breaker storage URL (see the module docs).

    Attributes:
        scheme: ``redis``, or ``rediss`` for TLS.
        host: the server's host name or address.
        port: its port.
        db: the database number.
        namespace: the application's key prefix.
        timeout_seconds: the client's connect and read timeout asked for in the URL
            (``None``: the default; see :meth:`client_timeout_seconds`).
        retry_seconds: how long to keep to local breakers after Redis failed.
        username: the ACL user, if any (never shown).
        password: the password, if any (never shown).
    """

    scheme: Literal["redis", "rediss"]
    host: str
    port: int = _DEFAULT_PORT
    db: int = 0
    namespace: str = DEFAULT_NAMESPACE
    timeout_seconds: float | None = None
    retry_seconds: float = DEFAULT_RETRY_SECONDS
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, text: str) -> BreakerStorageURL:
        """Parse a ``redis://`` or ``rediss://`` URL.

        Raises:
            ConfigError: the URL is not one; the message never quotes user info or
                parameter values.
        """
        text = text.strip()
        try:
            parts = urlsplit(text)
            port = parts.port
        except ValueError as exc:
            raise ConfigError(f"{_redact(text)!r} is not a valid URL") from exc
        scheme = parts.scheme.lower()
        if scheme not in _SCHEMES:
            raise ConfigError(
                f"unknown scheme {scheme!r}" if scheme else f"{_redact(text)!r} is not a URL"
            )
        if not parts.hostname:
            raise ConfigError(f"{_redact(text)!r} has no host")
        if parts.fragment:
            raise ConfigError(f"{_redact(text)!r} has a fragment ('#…')")
        return cls(
            scheme="rediss" if scheme == "rediss" else "redis",
            host=parts.hostname,
            port=_DEFAULT_PORT if port is None else port,
            db=_database(parts.path),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
            **_parameters(parts.query),
        )

    @property
    def redacted(self) -> str:
        """The URL without user info, e.g. ``redis://***@cache:6379/0?namespace=app``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        auth = "***@" if self.username or self.password is not None else ""
        query = "" if self.namespace == DEFAULT_NAMESPACE else f"?namespace={self.namespace}"
        return f"{self.scheme}://{auth}{host}:{self.port}/{self.db}{query}"

    def client_timeout_seconds(self, *, attempt_seconds: float, deadline_seconds: float) -> float:
        """The Redis client's connect and read timeout for these call timeouts.

        The one asked for (default 0.25 s), but at most a quarter of one attempt's
        timeout and an eighth of the call's deadline.

        Args:
            attempt_seconds: ``FAILOVER_TIMEOUT_SECONDS``.
            deadline_seconds: ``FAILOVER_DEADLINE_SECONDS``.
        """
        wanted = (
            self.timeout_seconds if self.timeout_seconds is not None else DEFAULT_TIMEOUT_SECONDS
        )
        return min(wanted, attempt_seconds / 4, deadline_seconds / 8)

    def with_namespace(self, namespace: str) -> BreakerStorageURL:
        """The same storage under another namespace (drills use one of their own).

        Raises:
            ConfigError: not 1 to 64 letters, digits, ``_``, ``.`` or ``-``.
        """
        if not _NAMESPACE.fullmatch(namespace):
            raise ConfigError(_NAMESPACE_RULE)
        return replace(self, namespace=namespace)

    def __str__(self) -> str:
        return self.redacted

    def __repr__(self) -> str:
        return f"BreakerStorageURL({self.redacted!r})"


def parse_breaker_storage(text: str) -> BreakerStorageURL | None:
    """Parse ``FAILOVER_BREAKER_STORAGE``: ``None`` for ``local`` (or empty), else the URL.

    Raises:
        ConfigError: neither ``local`` nor a valid ``redis://`` / ``rediss://`` URL.
    """
    if text.strip().lower() in ("", LOCAL):
        return None
    return BreakerStorageURL.parse(text)


def _redact(text: str) -> str:
    """``text`` without user info or query values (it may be any malformed string)."""
    head, _, query = text.partition("?")
    scheme, sep, rest = head.partition("://")
    if sep and "@" in rest:
        rest = "***@" + rest.rpartition("@")[2]
    elif not sep and "@" in head:
        scheme = "***@" + head.rpartition("@")[2]
    names = [item.partition("=")[0] for item in query.split("&") if item]
    shown = "&".join(f"{name}=***" for name in names)
    return f"{scheme}{sep}{rest}" + (f"?{shown}" if shown else "")


def _database(path: str) -> int:
    number = path.strip("/")
    if not number:
        return 0
    if not number.isdigit() or len(number) > 6:
        raise ConfigError("the path must be a database number (redis://host:port/0)")
    return int(number)


class _Parameters(TypedDict, total=False):
    namespace: str
    timeout_seconds: float
    retry_seconds: float


def _parameters(query: str) -> _Parameters:
    pairs = parse_qsl(query, keep_blank_values=True)
    names = [name for name, _ in pairs]
    unknown = sorted({name for name in names if name not in _PARAMS})
    if unknown:
        raise ConfigError(
            f"unknown parameter(s) {', '.join(unknown)}; accepted: {', '.join(_PARAMS)}"
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(f"parameter(s) {', '.join(repeated)} given twice")
    values: _Parameters = {}
    for name, value in pairs:
        if name == "namespace":
            if not _NAMESPACE.fullmatch(value):
                raise ConfigError(_NAMESPACE_RULE)
            values["namespace"] = value
        elif name == "timeout_seconds":
            values["timeout_seconds"] = _seconds(name, value)
        else:
            values["retry_seconds"] = _seconds(name, value)
    return values


def _seconds(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a number of seconds > 0")
    return value
