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
``FAILOVER_INVOKE_FUNCTION_ERROR``        ``failover`` (default) · ``raise``: what a
                                          function's own error does
========================================  ===============================================

The storage-only variables (write policy, quorum, journal, repair interval) do not apply
to invocations; a ``FAILOVER_INVOKE_*`` variable that is not in the table is a
:class:`~failover.errors.ConfigError` (a typo would otherwise be silently ignored).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from failover.config import ENV_PREFIX, SETTINGS_TABLE, Settings, _parse
from failover.errors import ConfigError
from failover.invoke._url import check_target_names, parse_target_url

__all__ = [
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
)
_FUNCTION_ERROR = "function_error"
_TARGET_SCHEMES = "lambda://, azfunc+https://, gcf+https://, https://"


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
        urls = tuple(part.strip() for part in raw.split(",") if part.strip())
        if not urls:
            raise ConfigError(
                f"{FUNCTIONS_VARIABLE} is not set: give comma-separated target URLs in "
                f"priority order ({_TARGET_SCHEMES}), e.g. {FUNCTIONS_VARIABLE}="
                "lambda://thumbnail?region=eu-west-1,gcf+https://europe-west1-acme."
                "cloudfunctions.net/thumbnail"
            )
        _check_urls(urls, label=FUNCTIONS_VARIABLE)
        unknown = sorted(
            variable
            for variable in env
            if variable.startswith(INVOKE_ENV_PREFIX)
            and variable[len(INVOKE_ENV_PREFIX) :].lower() not in (*INVOKE_OPTIONS, _FUNCTION_ERROR)
        )
        if unknown:
            known = ", ".join(
                INVOKE_ENV_PREFIX + n.upper() for n in (*INVOKE_OPTIONS, _FUNCTION_ERROR)
            )
            raise ConfigError(f"unknown variable(s) {', '.join(unknown)}; known: {known}")
        values: dict[str, Any] = {}
        for option in INVOKE_OPTIONS:
            for variable in (INVOKE_ENV_PREFIX + option.upper(), ENV_PREFIX + option.upper()):
                text = env.get(variable)
                if text is not None and text.strip():
                    values[option] = _parse(SETTINGS_TABLE[option], text, label=variable)
                    break
        policy = env.get(INVOKE_ENV_PREFIX + _FUNCTION_ERROR.upper(), "").strip().lower()
        if policy and policy not in FUNCTION_ERROR_POLICIES:
            raise ConfigError(
                f"{INVOKE_ENV_PREFIX}{_FUNCTION_ERROR.upper()}={policy!r} is invalid; "
                f"expected {' | '.join(FUNCTION_ERROR_POLICIES)}"
            )
        return cls(
            resilience=Settings(backends=urls, **values),
            function_error=policy or "failover",
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
        urls = (urls,) if isinstance(urls, str) else tuple(urls)
        _check_urls(urls, label="urls")
        return cls.for_targets(urls, function_error=function_error, **options)

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
        policy = str(function_error).strip().lower()
        # Settings.from_urls parses and validates the options; target names are not
        # URLs (a name may hold a ','), so they are put in afterwards.
        validated = Settings.from_urls(["target"], **options)
        return cls(
            resilience=dataclasses.replace(validated, backends=tuple(names)),
            function_error=policy,  # type: ignore[arg-type]
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


def _check_urls(urls: tuple[str, ...], *, label: str) -> None:
    if not urls:
        raise ConfigError(f"{label}: give at least one target URL ({_TARGET_SCHEMES})")
    for url in urls:
        if not isinstance(url, str):
            raise ConfigError(f"{label}: target URL must be a str, not {type(url).__name__}")
        if "," in url:
            raise ConfigError(f"{label}: target URL {url!r} contains ','; pass each separately")
    try:
        names = [parse_target_url(url).name for url in urls]
    except ConfigError as exc:
        raise ConfigError(f"{label}: {exc}") from None
    check_target_names(names)
