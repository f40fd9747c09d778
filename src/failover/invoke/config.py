"""Invoker settings: ``FAILOVER_FUNCTIONS`` and the resilience variables.

Those are the storage's ``FAILOVER_*`` variables, each with a ``FAILOVER_INVOKE_*``
override.

The resilience settings are those of :class:`failover.config.Settings` and are parsed
and validated by its table (:data:`failover.config.SETTINGS_TABLE`), so storage and
invocation accept exactly the same values. An invoker reads each of them from
``FAILOVER_INVOKE_<NAME>`` when set, else from ``FAILOVER_<NAME>``: a process can give
its function calls a longer timeout than its storage calls, or hedge invocations but
not reads.

========================================  ===============================================
variable                                  meaning
========================================  ===============================================
``FAILOVER_FUNCTIONS``                    comma-separated target URLs, priority order
                                          (required by ``Invoker.from_env``)
``FAILOVER_[INVOKE_]READ_POLICY``         routing: ``health`` · ``ordered`` · ``hedged``
``FAILOVER_[INVOKE_]HEDGE_DELAY_MS``      delay before a hedged second call
``FAILOVER_[INVOKE_]TIMEOUT_SECONDS``     one attempt's connect and read timeout
``FAILOVER_[INVOKE_]DEADLINE_SECONDS``    the whole call, all retries and failovers
``FAILOVER_[INVOKE_]RETRY_ATTEMPTS``      attempts per target for transient errors
``FAILOVER_[INVOKE_]BREAKER_FAIL_MAX``    consecutive failures that open a breaker
``FAILOVER_[INVOKE_]BREAKER_RESET_SECONDS``  open -> half-open after
``FAILOVER_[INVOKE_]BREAKER_STORAGE``     ``local`` or ``redis://…``: breakers shared
                                          by every instance (``failover[redis]``)
``FAILOVER_INVOKE_FUNCTION_ERROR``        ``failover`` (default) · ``raise``: what a
                                          function's own error does
========================================  ===============================================

The storage-only variables (write policy, quorum, journal, repair interval) do not apply
to invocations; a ``FAILOVER_INVOKE_*`` variable that is not in the table is a
:class:`~failover.errors.ConfigError` (a typo would otherwise be silently ignored).
:data:`ENV_VARIABLES` lists every variable read.

A bad value raises :class:`~failover.errors.ConfigError` as for storage (the messages
are built by the same function): it names the variable (``from_env``) or the keyword
(``urls``, ``function_error``, an option's name), what is wrong and what is accepted,
chains the parser's error, and never echoes a credential.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from failover.backends import redact_backend_url
from failover.config import (
    ENV_PREFIX,
    SETTINGS_TABLE,
    Settings,
    _choice,
    _parse,
    _parse_options,
    _Spec,
)
from failover.errors import ConfigError
from failover.invoke._url import check_target_names, parse_target_url

__all__ = [
    "ENV_VARIABLES",
    "FUNCTIONS_VARIABLE",
    "FUNCTION_ERROR_POLICIES",
    "INVOKE_ENV_PREFIX",
    "INVOKE_OPTIONS",
    "FunctionErrorPolicy",
    "InvokerSettings",
]

FUNCTIONS_VARIABLE = ENV_PREFIX + "FUNCTIONS"
INVOKE_ENV_PREFIX = ENV_PREFIX + "INVOKE_"
FunctionErrorPolicy = Literal["failover", "raise"]
FUNCTION_ERROR_POLICIES: tuple[FunctionErrorPolicy, ...] = ("failover", "raise")
#: The settings of :class:`~failover.config.Settings` that apply to invocations.
INVOKE_OPTIONS: tuple[str, ...] = (
    "read_policy",
    "hedge_delay_ms",
    "timeout_seconds",
    "deadline_seconds",
    "retry_attempts",
    "breaker_fail_max",
    "breaker_reset_seconds",
    "breaker_storage",
)
_FUNCTION_ERROR = "function_error"
_FUNCTION_ERROR_VARIABLE = INVOKE_ENV_PREFIX + _FUNCTION_ERROR.upper()
#: Every variable :meth:`InvokerSettings.from_env` reads.
ENV_VARIABLES: tuple[str, ...] = (
    FUNCTIONS_VARIABLE,
    *(ENV_PREFIX + option.upper() for option in INVOKE_OPTIONS),
    *(INVOKE_ENV_PREFIX + option.upper() for option in INVOKE_OPTIONS),
    _FUNCTION_ERROR_VARIABLE,
)
_TARGET_SCHEMES = "lambda://, azfunc+https://, gcf+https://, https://"


def _target_list(items: Iterable[object]) -> tuple[str, ...]:
    """Validate target URLs (blank ones skipped); their names must be unique."""
    urls: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"a target URL must be a str, not {type(item).__name__}")
        if "," in item:
            raise ConfigError(
                f"target URL {redact_backend_url(item)!r} contains ','; pass each separately"
            )
        if item.strip():
            urls.append(item.strip())
    if not urls:
        raise ConfigError("no target URL given")
    check_target_names([parse_target_url(url).name for url in urls])
    return tuple(urls)


_FUNCTIONS_SPEC = _Spec(
    lambda text: _target_list(text.split(",")),
    f"comma-separated target URLs ({_TARGET_SCHEMES})",
    "(required)",
    "function targets in priority order",
    secret=True,  # a URL pasted with credentials in it is rejected, never echoed
)
_FUNCTION_ERROR_SPEC = _Spec(
    _choice(FUNCTION_ERROR_POLICIES),
    " | ".join(FUNCTION_ERROR_POLICIES),
    "failover",
    "what a function's own error does",
)


@dataclass(frozen=True, slots=True)
class InvokerSettings:
    """Validated configuration of an :class:`~failover.Invoker`.

    Attributes:
        resilience: timeouts, retries, breakers and routing, as for storage; its
            ``backends`` are the target URLs (or names).
        function_error: ``"failover"``: a function's own error is retried within the
            budget and then failed over, like a 5xx; ``"raise"``: it is raised at once.
    """

    resilience: Settings
    function_error: FunctionErrorPolicy = "failover"

    def __post_init__(self) -> None:
        if self.function_error not in FUNCTION_ERROR_POLICIES:
            raise ConfigError(
                f"function_error={self.function_error!r} is invalid; expected "
                f"{' | '.join(FUNCTION_ERROR_POLICIES)}"
            )

    @property
    def functions(self) -> tuple[str, ...]:
        """The target URLs (or names), in priority order."""
        return self.resilience.backends

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> InvokerSettings:
        """Read ``FAILOVER_FUNCTIONS`` and the resilience variables (see the module docs).

        Raises:
            ConfigError: a variable is missing or invalid; the message names it.
        """
        env = os.environ if environ is None else environ
        raw = env.get(FUNCTIONS_VARIABLE, "")
        if not raw.replace(",", "").strip():
            raise ConfigError(
                f"{FUNCTIONS_VARIABLE} is not set: give comma-separated target URLs in "
                f"priority order ({_TARGET_SCHEMES}), e.g. {FUNCTIONS_VARIABLE}="
                "lambda://thumbnail?region=eu-west-1,gcf+https://europe-west1-acme."
                "cloudfunctions.net/thumbnail"
            )
        urls = _parse(_FUNCTIONS_SPEC, raw, label=FUNCTIONS_VARIABLE)
        unknown = sorted(
            variable
            for variable in env
            if variable.startswith(INVOKE_ENV_PREFIX) and variable not in ENV_VARIABLES
        )
        if unknown:
            known = ", ".join(v for v in ENV_VARIABLES if v.startswith(INVOKE_ENV_PREFIX))
            raise ConfigError(f"unknown variable(s) {', '.join(unknown)}; known: {known}")
        values: dict[str, Any] = {}
        for option in INVOKE_OPTIONS:
            for variable in (INVOKE_ENV_PREFIX + option.upper(), ENV_PREFIX + option.upper()):
                text = env.get(variable)
                if text is not None and text.strip():
                    values[option] = _parse(SETTINGS_TABLE[option], text, label=variable)
                    break
        policy = env.get(_FUNCTION_ERROR_VARIABLE, "")
        return cls(
            resilience=Settings(backends=urls, **values),
            function_error=(
                _parse(_FUNCTION_ERROR_SPEC, policy, label=_FUNCTION_ERROR_VARIABLE)
                if policy.strip()
                else "failover"
            ),
        )

    @classmethod
    def from_urls(
        cls,
        urls: Iterable[str] | str,
        *,
        function_error: FunctionErrorPolicy | str = "failover",
        **options: Any,
    ) -> InvokerSettings:
        """Build from target URLs in priority order and options named like the variables.

        Args:
            urls: target URLs (see :mod:`failover.invoke`).
            function_error: ``"failover"`` or ``"raise"``.
            **options: the resilience settings by lower-case name
                (``timeout_seconds=2``, ``read_policy="hedged"``), typed or as strings.

        Raises:
            ConfigError: a URL or an option is invalid, or an option does not apply to
                invocations.
        """
        items = (urls,) if isinstance(urls, str) else urls
        targets = _parse(_FUNCTIONS_SPEC, items, label="urls", parse=_target_list)
        return cls.for_targets(targets, function_error=function_error, **options)

    @classmethod
    def for_targets(
        cls,
        names: Iterable[str],
        *,
        function_error: FunctionErrorPolicy | str = "failover",
        **options: Any,
    ) -> InvokerSettings:
        """Build settings for targets given by name (URLs are not parsed).

        Raises:
            ConfigError: an option is invalid or does not apply to invocations.
        """
        misplaced = sorted(set(options) - set(INVOKE_OPTIONS))
        if misplaced:
            raise ConfigError(
                f"unknown invoker option(s) {', '.join(misplaced)}; options are: "
                f"{', '.join(INVOKE_OPTIONS)}, function_error"
            )
        policy = _parse(
            _FUNCTION_ERROR_SPEC,
            function_error,
            label=_FUNCTION_ERROR,
            parse=lambda value: _FUNCTION_ERROR_SPEC.parse(str(value)),
        )
        # Target names are not URLs (a name may hold a ','): only the options are parsed.
        return cls(
            resilience=Settings(backends=tuple(names), **_parse_options(options)),
            function_error=policy,
        )

    def with_options(self, **options: Any) -> InvokerSettings:
        """Return a copy with some options (and/or ``function_error``) changed.

        Raises:
            ConfigError: an option is invalid or does not apply to invocations.
        """
        policy = options.pop(_FUNCTION_ERROR, self.function_error)
        changed = InvokerSettings.for_targets(self.functions, function_error=policy, **options)
        resilience = dataclasses.replace(
            self.resilience,
            **{name: getattr(changed.resilience, name) for name in options},
        )
        return InvokerSettings(resilience=resilience, function_error=changed.function_error)
