"""Invocation failover: one API to call the same function on several clouds.

The function may run on AWS Lambda, Azure Functions, Google Cloud Functions / Cloud Run,
any HTTPS endpoint, or be any Python callable.

>>> import failover                                               # doctest: +SKIP
>>> invoker = failover.Invoker.from_urls([
...     "lambda://thumbnail?region=eu-west-1",
...     "azfunc+https://acme.azurewebsites.net/api/thumbnail?key_env=AZURE_FUNCTION_KEY",
...     "gcf+https://europe-west1-acme.cloudfunctions.net/thumbnail",
... ])
>>> with invoker:
...     result = invoker.invoke({"image": "cat.png"}, idempotency_key="order-42")
...     result.target, result.json()

An :class:`Invoker` runs each call through the same dispatcher as
:class:`~failover.Storage` reads (breakers, budgeted retries, health routing, hedging,
one deadline). Targets implement :class:`InvocationTarget`; :func:`target_from_url`
builds one from its URL. Provider SDKs are imported only when a target needs them:
``LambdaTarget`` needs ``failover[aws]``, the HTTP targets ``failover[http]`` (urllib3),
``GoogleFunctionTarget`` also ``failover[gcp]`` for ID tokens.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from failover.errors import ConfigError
from failover.invoke._invoker import Invoker
from failover.invoke._url import SCHEMES, TargetURL, parse_target_url
from failover.invoke.base import (
    InvocationRequest,
    InvocationResult,
    InvocationTarget,
    TargetResponse,
)
from failover.invoke.callable import CallableTarget
from failover.invoke.config import FunctionErrorPolicy, InvokerSettings
from failover.invoke.errors import FunctionError, RequestRejected, TargetNotFoundError

if TYPE_CHECKING:
    from failover.invoke.aws_lambda import LambdaTarget
    from failover.invoke.azure import AzureFunctionTarget
    from failover.invoke.gcf import GoogleFunctionTarget
    from failover.invoke.http import HttpTarget

__all__ = [
    "SCHEMES",
    "AzureFunctionTarget",
    "CallableTarget",
    "FunctionError",
    "FunctionErrorPolicy",
    "GoogleFunctionTarget",
    "HttpTarget",
    "InvocationRequest",
    "InvocationResult",
    "InvocationTarget",
    "Invoker",
    "InvokerSettings",
    "LambdaTarget",
    "RequestRejected",
    "TargetNotFoundError",
    "TargetResponse",
    "TargetURL",
    "parse_target_url",
    "target_from_url",
]

# class -> (module, extra that installs what it needs)
_LAZY: dict[str, tuple[str, str]] = {
    "LambdaTarget": ("failover.invoke.aws_lambda", "aws"),
    "HttpTarget": ("failover.invoke.http", "http"),
    "AzureFunctionTarget": ("failover.invoke.azure", "http"),
    "GoogleFunctionTarget": ("failover.invoke.gcf", "http"),
}
_BY_KIND = {
    "lambda": "LambdaTarget",
    "azfunc": "AzureFunctionTarget",
    "gcf": "GoogleFunctionTarget",
    "http": "HttpTarget",
}


def _load(cls: str) -> Any:
    module, extra = _LAZY[cls]
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as exc:
        raise ConfigError(f"{cls} needs: pip install 'failover[{extra}]' ({exc})") from exc


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return _load(name)
    raise AttributeError(f"module 'failover.invoke' has no attribute {name!r}")


def target_from_url(
    url: str, *, timeout_seconds: float = 10.0, max_connections: int = 16
) -> InvocationTarget:
    """Build an invocation target from its URL.

    Args:
        url: ``lambda://FUNCTION[:QUALIFIER]?region=…&endpoint_url=…``,
            ``azfunc+https://APP.azurewebsites.net/api/FN?key_env=VAR``,
            ``gcf+https://REGION-PROJECT.cloudfunctions.net/FN[?audience=…]`` or
            ``https://host/path[?auth_header_env=VAR[&auth_header=NAME]]``; each with an
            optional ``name=``.
        timeout_seconds: connect and read timeout of one attempt.
        max_connections: connection pool size (match the expected concurrency).

    Raises:
        ConfigError: a malformed URL, an unknown parameter, a credential in the URL, an
            unset credential variable, or a missing SDK extra.
    """
    parsed = parse_target_url(url)
    target: InvocationTarget = _load(_BY_KIND[parsed.kind]).from_url(
        parsed, timeout_seconds=timeout_seconds, max_connections=max_connections
    )
    return target
