"""Parsing and validation of invocation target URLs (pure: no client is built here).

=====================================================  ==========================================
URL                                                    target and its authentication
=====================================================  ==========================================
``lambda://function[:qualifier]?region=…&endpoint_url=…``  AWS Lambda ``Invoke``; boto3's credential
                                                       chain
``azfunc+https://app.azurewebsites.net/api/fn?key_env=VAR``  Azure Functions; the function key from
                                                       environment variable ``VAR``, sent as
                                                       ``x-functions-key``
``gcf+https://REGION-PROJECT.cloudfunctions.net/fn``   Google Cloud Functions / Cloud Run; a Google
                                                       ID token (audience: the URL, or
                                                       ``audience=``) as ``Authorization: Bearer``
``https://host/path``                                  any HTTPS endpoint, no authentication, or
                                                       ``auth_header_env=VAR`` (header value from
                                                       ``VAR``; header ``Authorization`` unless
                                                       ``auth_header=``)
=====================================================  ==========================================

Every URL takes ``name=`` (the target's name in health, events and errors). The
control parameters above are removed from the URL; any other query parameter is sent
to the function. ``http://`` (no TLS) is accepted for ``https``-style targets, but a
target that sends a credential (``azfunc+http``, ``gcf+http``, ``http`` with
``auth_header_env``) must then be on a loopback host (a local emulator or test server):
a key never crosses a network in clear text. Secrets never go in a URL: a query
parameter that looks like one (``code``, ``key``, ``sig``, ``token``, …) or a user name
or password in the URL is a :class:`~failover.errors.ConfigError`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from failover.backends._url import _SECRET_PARAMS
from failover.backends._url import _redact as _redact_userinfo
from failover.errors import ConfigError

__all__ = ["SCHEMES", "TargetKind", "TargetURL", "check_target_names", "parse_target_url"]

TargetKind = Literal["lambda", "azfunc", "gcf", "http"]

#: scheme -> (kind, uses TLS)
_SCHEMES: dict[str, tuple[TargetKind, bool]] = {
    "lambda": ("lambda", True),
    "azfunc+https": ("azfunc", True),
    "azfunc+http": ("azfunc", False),
    "gcf+https": ("gcf", True),
    "gcf+http": ("gcf", False),
    "https": ("http", True),
    "http": ("http", False),
}
SCHEMES: tuple[str, ...] = tuple(_SCHEMES)

#: Control parameters of each kind (removed from the URL the function is called at).
_CONTROL: dict[TargetKind, frozenset[str]] = {
    "lambda": frozenset({"name", "region", "endpoint_url"}),
    "azfunc": frozenset({"name", "key_env"}),
    "gcf": frozenset({"name", "audience"}),
    "http": frozenset({"name", "auth_header_env", "auth_header"}),
}
# Azure's query-string function key is ``code``; the others are common API-key names.
_SECRETS = _SECRET_PARAMS | {"code", "api_key", "apikey", "access_token", "x-functions-key"}
_FUNCTION = re.compile(r"[A-Za-z0-9_-]{1,64}")
_QUALIFIER = re.compile(r"\$LATEST|[A-Za-z0-9_-]{1,128}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


@dataclass(frozen=True, slots=True)
class TargetURL:
    """A parsed target URL.

    Attributes:
        kind: ``lambda``, ``azfunc``, ``gcf`` or ``http``.
        name: ``name=``, else a default built from the URL (see :func:`parse_target_url`).
        raw: the URL as given (it never holds a secret: those are refused).
        params: the control parameters (``region``, ``key_env``, …).
        function: Lambda function name (``lambda`` only).
        qualifier: Lambda version or alias (``lambda`` only), or ``None``.
        endpoint: the ``http(s)://`` URL to POST to (HTTP kinds), control parameters
            removed.
    """

    kind: TargetKind
    name: str
    raw: str
    params: dict[str, str] = field(default_factory=dict)
    function: str = ""
    qualifier: str | None = None
    endpoint: str = ""


def parse_target_url(url: str) -> TargetURL:
    """Parse and validate one target URL (see the module documentation).

    Default names: ``lambda:<function>[:<qualifier>][@<region>]`` and
    ``<kind>:<host>[:<port>]<path>`` (``azfunc:app.azurewebsites.net/api/fn``).

    Raises:
        ConfigError: unknown scheme, missing or malformed part, unknown or repeated
            parameter, a credential in the URL, or a credential over plain HTTP to a
            host that is not loopback. The message names the URL (without secrets) and
            what is accepted.
    """
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(
            "target URL must be a non-empty string such as 'lambda://my-function' or "
            "'azfunc+https://app.azurewebsites.net/api/fn?key_env=AZURE_FUNCTION_KEY'"
        )
    url = url.strip()
    shown = _redact(url)
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ConfigError(f"target URL {shown!r} is malformed: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise ConfigError(
            f"target URL {shown!r}: unknown scheme {parts.scheme!r}; use one of "
            f"{', '.join(s + '://' for s in SCHEMES)}"
        )
    kind, tls = _SCHEMES[scheme]
    if parts.username or parts.password:
        raise ConfigError(
            f"target URL {shown!r}: do not put credentials in a URL; name an environment "
            "variable instead (key_env=, auth_header_env=)"
        )
    control: dict[str, str] = {}
    forwarded: list[tuple[str, str]] = []
    seen: set[str] = set()
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key.lower() in _SECRETS:
            raise ConfigError(
                f"target URL {shown!r}: do not put credentials ({key!r}) in a URL; "
                + _credential_help(kind)
            )
        if key in seen:
            raise ConfigError(f"target URL {shown!r}: parameter {key!r} given twice")
        seen.add(key)
        if key in _CONTROL[kind]:
            control[key] = value
        elif kind == "lambda":
            raise ConfigError(
                f"target URL {shown!r}: unknown parameter {key!r}; lambda:// accepts "
                f"{', '.join(sorted(_CONTROL['lambda']))}"
            )
        else:
            forwarded.append((key, value))
    if kind == "lambda":
        return _lambda(parts.netloc, parts.path, control, shown)
    return _http(
        kind,
        tls=tls,
        scheme=scheme,
        netloc=parts.netloc,
        path=parts.path,
        control=control,
        forwarded=forwarded,
        shown=shown,
    )


def _lambda(netloc: str, path: str, control: dict[str, str], shown: str) -> TargetURL:
    function, _, qualifier = unquote(netloc).partition(":")
    if path not in ("", "/") or not _FUNCTION.fullmatch(function):
        raise ConfigError(
            f"target URL {shown!r}: expected lambda://FUNCTION[:QUALIFIER], where FUNCTION "
            "is 1-64 letters, digits, '-' or '_'"
        )
    if qualifier and not _QUALIFIER.fullmatch(qualifier):
        raise ConfigError(
            f"target URL {shown!r}: qualifier {qualifier!r} must be $LATEST, a version "
            "number or an alias name"
        )
    endpoint = control.get("endpoint_url", "")
    if endpoint and urlsplit(endpoint).scheme not in ("http", "https"):
        raise ConfigError(f"target URL {shown!r}: endpoint_url must be an http(s):// URL")
    region = control.get("region", "")
    default = f"lambda:{function}" + (f":{qualifier}" if qualifier else "")
    default += f"@{region}" if region else ""
    return TargetURL(
        kind="lambda",
        name=control.pop("name", "") or default,
        raw=shown,
        params=control,
        function=function,
        qualifier=qualifier or None,
    )


def _http(
    kind: TargetKind,
    *,
    tls: bool,
    scheme: str,
    netloc: str,
    path: str,
    control: dict[str, str],
    forwarded: list[tuple[str, str]],
    shown: str,
) -> TargetURL:
    host = urlsplit(f"//{netloc}").hostname or ""
    if not host:
        raise ConfigError(f"target URL {shown!r}: missing host, e.g. {scheme}://host/api/fn")
    sends_credential = kind in ("azfunc", "gcf") or bool(control.get("auth_header_env"))
    if not tls and sends_credential and not _is_loopback(host):
        raise ConfigError(
            f"target URL {shown!r}: a credential is sent to this target, so it needs TLS "
            f"({scheme.replace('http', 'https')}://); plain http:// is accepted only for a "
            "loopback host (a local emulator)"
        )
    if kind == "azfunc":
        _require_env_name(control, "key_env", shown, required=True)
    if kind == "http":
        _require_env_name(control, "auth_header_env", shown, required=False)
        header = control.get("auth_header")
        if header is not None:
            if "auth_header_env" not in control:
                raise ConfigError(
                    f"target URL {shown!r}: auth_header= needs auth_header_env=VARIABLE "
                    "(the environment variable holding the header's value)"
                )
            if not _HEADER_NAME.fullmatch(header):
                raise ConfigError(f"target URL {shown!r}: auth_header={header!r} is not a name")
    audience = control.get("audience")
    if kind == "gcf" and audience is not None and not audience.strip():
        raise ConfigError(f"target URL {shown!r}: audience= must not be empty")
    endpoint = urlunsplit(
        ("https" if tls else "http", netloc, path or "/", urlencode(forwarded), "")
    )
    label = "https" if kind == "http" and tls else kind
    default = f"{label}:{netloc.lower()}{path.rstrip('/')}"
    return TargetURL(
        kind=kind,
        name=control.pop("name", "") or default,
        raw=shown,
        params=control,
        endpoint=endpoint,
    )


def _require_env_name(control: dict[str, str], param: str, shown: str, *, required: bool) -> None:
    value = control.get(param)
    if value is None and not required:
        return
    if not value or not _ENV_NAME.fullmatch(value):
        raise ConfigError(
            f"target URL {shown!r}: {param}= must name the environment variable that holds "
            f"the credential, e.g. {param}=AZURE_FUNCTION_KEY"
        )


def _credential_help(kind: TargetKind) -> str:
    return {
        "lambda": "Lambda uses boto3's credential chain (AWS_* variables, profile, role)",
        "azfunc": "put the function key in an environment variable and add key_env=VARIABLE",
        "gcf": "gcf+https:// authenticates with a Google ID token (Application Default "
        "Credentials)",
        "http": "put the header value in an environment variable and add auth_header_env=VAR",
    }[kind]


def _redact(url: str) -> str:
    """The URL with user info and every secret-looking parameter's value masked."""
    parts = urlsplit(_redact_userinfo(url))
    if not parts.query:
        return parts.geturl()
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    masked = "&".join(f"{k}={'***' if k.lower() in _SECRETS else v}" for k, v in pairs)
    return parts._replace(query=masked).geturl()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_target_names(names: Collection[str]) -> None:
    """Raise ConfigError when two targets share a name."""
    duplicates = sorted({n for n in names if list(names).count(n) > 1})
    if duplicates:
        raise ConfigError(
            f"target names must be unique, got {', '.join(duplicates)} more than once; "
            "add name=… to the URLs"
        )
