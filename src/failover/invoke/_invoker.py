"""The Invoker facade: call the same function deployed on several clouds."""

from __future__ import annotations

import dataclasses
import random
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from failover.dispatch import Dispatcher
from failover.errors import ConfigError, FailoverError
from failover.events import EventHook
from failover.invoke._url import check_target_names
from failover.invoke.base import (
    InvocationRequest,
    InvocationResult,
    InvocationTarget,
    TargetResponse,
    encode_payload,
    new_idempotency_key,
    validate_idempotency_key,
)
from failover.invoke.config import FunctionErrorPolicy, InvokerSettings
from failover.invoke.errors import FunctionError, RequestRejected
from failover.resilience import Clock
from failover.telemetry import Peer, Telemetry, default_tracer
from failover.types import BackendHealth

__all__ = ["Invoker"]

_WORKERS_PER_TARGET = 16
#: Per-attempt timeout floor, so that an attempt started just before the deadline
#: still gets a valid (if tiny) socket timeout.
_MIN_ATTEMPT_SECONDS = 0.001


class Invoker:
    """Invoke one function deployed on several clouds; survive losing any one of them.

    Every call goes through the same :class:`~failover.dispatch.Dispatcher` as storage
    reads: a breaker per target, retries with full jitter under the retry budget,
    health-weighted (or ordered) routing, hedging, and one deadline for the whole call.
    Build it with :meth:`from_env` or :meth:`from_urls`, or pass targets directly. Use it
    as a context manager (or call :meth:`close`).

    Args:
        targets: the deployments, in priority order (names must be unique).
        settings: policies and timeouts (default: the defaults of every option).
        hooks: event hooks (default: log through the ``failover`` logger).
        clock: time source of the resilience policies (tests pass a ManualClock).
        rng: random source for routing and backoff jitter.
        **options: settings by lower-case name, applied over ``settings``
            (``timeout_seconds=2``, ``read_policy="hedged"``, ``function_error="raise"``).

    Raises:
        ConfigError: no target, duplicate names, or a bad option.
    """

    def __init__(
        self,
        targets: Sequence[InvocationTarget],
        *,
        settings: InvokerSettings | None = None,
        hooks: Sequence[EventHook] | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        **options: Any,
    ) -> None:
        if not targets:
            raise ConfigError("Invoker needs at least one target")
        names = [target.name for target in targets]
        check_target_names(names)
        if settings is None:
            settings = InvokerSettings.for_targets(names)
        if settings.functions != tuple(names):
            # The settings describe these targets (their URLs became these names).
            settings = dataclasses.replace(
                settings, resilience=dataclasses.replace(settings.resilience, backends=tuple(names))
            )
        if options:
            settings = settings.with_options(**options)
        self._settings = settings
        self._targets: dict[str, InvocationTarget] = {t.name: t for t in targets}
        self._telemetry = Telemetry(
            tracer=default_tracer(), peers={t.name: Peer.of(t) for t in targets}
        )
        self._dispatch = Dispatcher(
            names,
            settings=settings.resilience,
            hooks=hooks,
            clock=clock,
            rng=rng,
            workers_per_backend=_WORKERS_PER_TARGET,
            telemetry=self._telemetry,
            breaker_keys={name: f"function|{name}" for name in names},
        )
        self._closed = False
        self._lock = threading.Lock()

    # -- construction ------------------------------------------------------------------

    @classmethod
    def from_settings(
        cls,
        settings: InvokerSettings,
        *,
        hooks: Sequence[EventHook] | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> Invoker:
        """Build the targets named by ``settings.functions`` and an Invoker over them.

        Raises:
            ConfigError: a URL is invalid, an SDK extra is missing, or a credential
                variable named in a URL is unset.
        """
        from failover.invoke import target_from_url  # noqa: PLC0415 - avoids a cycle

        built: list[InvocationTarget] = []
        try:
            built.extend(
                target_from_url(
                    url,
                    timeout_seconds=settings.resilience.timeout_seconds,
                    max_connections=_WORKERS_PER_TARGET,
                )
                for url in settings.functions
            )
            return cls(built, settings=settings, hooks=hooks, clock=clock, rng=rng)
        except BaseException:
            for target in built:
                target.close()
            raise

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        hooks: Sequence[EventHook] | None = None,
    ) -> Invoker:
        """Build from ``FAILOVER_FUNCTIONS`` and the ``FAILOVER_[INVOKE_]*`` variables.

        Raises:
            ConfigError: a variable is missing or invalid (the message names it).
        """
        return cls.from_settings(InvokerSettings.from_env(environ), hooks=hooks)

    @classmethod
    def from_urls(
        cls,
        urls: Iterable[str] | str,
        *,
        hooks: Sequence[EventHook] | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        function_error: FunctionErrorPolicy | str = "failover",
        **options: Any,
    ) -> Invoker:
        """Build from target URLs in priority order and options named like the variables.

        Example:
            ``Invoker.from_urls(["lambda://thumb?region=eu-west-1",
            "gcf+https://europe-west1-acme.cloudfunctions.net/thumb"], timeout_seconds=5)``

        Args:
            urls: target URLs (see ``docs/invocation.md``).
            hooks: event hooks (default: log through the ``failover`` logger).
            clock: time source of the resilience policies.
            rng: random source for routing and jitter.
            function_error: ``"failover"`` (default) or ``"raise"``.
            **options: resilience settings by lower-case name (``deadline_seconds=10``).

        Raises:
            ConfigError: a URL or option is invalid (the message names it).
        """
        settings = InvokerSettings.from_urls(urls, function_error=function_error, **options)
        return cls.from_settings(settings, hooks=hooks, clock=clock, rng=rng)

    # -- properties and lifecycle ------------------------------------------------------

    @property
    def settings(self) -> InvokerSettings:
        """The settings in force."""
        return self._settings

    @property
    def telemetry(self) -> Telemetry:
        """What this Invoker measured: ``telemetry.stats`` (see :mod:`failover.telemetry`)."""
        return self._telemetry

    @property
    def targets(self) -> Mapping[str, InvocationTarget]:
        """The targets by name, in priority order."""
        return dict(self._targets)

    def close(self) -> None:
        """Stop workers and release clients; never waits for a hung target."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._dispatch.close()
        for target in self._targets.values():
            target.close()

    def __enter__(self) -> Invoker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Invoker(targets={list(self._targets)}, "
            f"read_policy={self._settings.resilience.read_policy!r}, "
            f"function_error={self._settings.function_error!r})"
        )

    # -- calls -------------------------------------------------------------------------

    def invoke(
        self,
        payload: object,
        *,
        idempotency_key: str | None = None,
        timeout_seconds: float | None = None,
        content_type: str | None = None,
    ) -> InvocationResult:
        """Call the function on the best available target, failing over as needed.

        Args:
            payload: ``bytes``, ``str`` or a JSON-serialisable object.
            idempotency_key: sent with every attempt, retry and hedge of this call
                (``Idempotency-Key`` header; Lambda client context), so that the
                function can deduplicate; a UUID4 when not given.
            timeout_seconds: deadline of this whole call (default: ``deadline_seconds``);
                each attempt's own timeout is ``timeout_seconds`` of the settings,
                capped by what is left.
            content_type: overrides the MIME type derived from the payload's type.

        Returns:
            The first good answer, with the target that gave it.

        Raises:
            RequestRejected: a target rejected the request itself (4xx); raised at once.
            FunctionError: the function failed, with ``function_error="raise"``.
            AllBackendsFailed: no target answered; ``.errors`` has an entry per target.
            InvalidKeyError: a malformed idempotency key (before any call).
            TypeError: a payload that cannot be encoded (before any call).
            FailoverError: the invoker is closed.
        """
        if self._closed:
            raise FailoverError("this Invoker is closed")
        body, mime = encode_payload(payload, content_type)
        key = (
            new_idempotency_key()
            if idempotency_key is None
            else validate_idempotency_key(idempotency_key)
        )
        clock = self._dispatch.clock
        started = clock.monotonic()
        deadline = self._dispatch.deadline(timeout_seconds)
        attempt_timeout = self._settings.resilience.timeout_seconds
        raise_function_errors = self._settings.function_error == "raise"
        started_attempts: list[str] = []

        def call(name: str) -> TargetResponse:
            started_attempts.append(name)  # list.append is atomic: workers share it
            request = InvocationRequest(
                body=body,
                idempotency_key=key,
                content_type=mime,
                timeout_seconds=max(_MIN_ATTEMPT_SECONDS, deadline.cap(attempt_timeout)),
            )
            try:
                return self._targets[name].invoke(request)
            except FunctionError as exc:
                if raise_function_errors:
                    exc.transient = False  # neither retried nor charged to the breaker
                raise

        with self._telemetry.operation("invoke", key):
            name, response = self._dispatch.first(
                "invoke",
                key,
                call,
                is_final=lambda exc: (
                    isinstance(exc, RequestRejected)
                    or (isinstance(exc, FunctionError) and not exc.transient)
                ),
                deadline=deadline,
            )
        return InvocationResult(
            target=name,
            status=response.status,
            payload=response.payload,
            latency_ms=(clock.monotonic() - started) * 1000.0,
            attempts=len(started_attempts),
            idempotency_key=key,
        )

    def health(self) -> dict[str, BackendHealth]:
        """Health of every target: breaker state, score, latency and error rate."""
        return self._dispatch.backend_health()
