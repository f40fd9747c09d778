"""Settings: the one place that knows every ``FAILOVER_*`` environment variable.

``Settings.from_env()`` reads the environment; ``Settings.from_urls(urls, **options)``
takes the same names in lower case without the prefix. Every value is validated here,
backend URLs included (scheme, bucket, parameters: see
:func:`failover.backends.validate_backend_url`), and a bad one raises
:class:`~failover.errors.ConfigError` naming the variable (or keyword; ``urls`` for the
URLs given to ``from_urls``), what is wrong and the values it accepts, with the
parser's own error chained. :func:`_parse` is the one place that builds those messages.

``FAILOVER_ENCRYPTION_KEY`` is secret: its parser never echoes the value in an error,
and the parsed :class:`~failover.segmentation.keys.StaticKeyProvider` shows only key ids
in ``repr(settings)``. So is ``FAILOVER_BREAKER_STORAGE`` (a Redis URL may hold a
password): the parsed :class:`~failover.breaker_storage.BreakerStorageURL` shows itself
without user info. Backend URLs are never echoed whole either: a URL in a message is
shown by :func:`~failover.backends.redact_backend_url`, without user info or the values
of unknown query parameters.

The table below is declarative on purpose: one row per setting with its parser and
default, so documentation, ``from_env`` and ``from_urls`` cannot drift apart. (A
settings library such as pydantic-settings would do the same but costs ~0.3 s of import
time, which every application importing failover would pay.)
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from failover.backends._url import redact_backend_url, validate_backend_url
from failover.breaker_storage import BreakerStorageURL, parse_breaker_storage
from failover.errors import ConfigError

if TYPE_CHECKING:
    from failover.segmentation.keys import KeyProvider

__all__ = [
    "ENV_PREFIX",
    "READ_POLICIES",
    "REDUNDANCIES",
    "SETTINGS_TABLE",
    "WRITE_POLICIES",
    "ReadPolicy",
    "Redundancy",
    "Settings",
    "WritePolicy",
    "default_journal_path",
]

ENV_PREFIX = "FAILOVER_"
WritePolicy = Literal["all", "quorum", "one"]
ReadPolicy = Literal["health", "ordered", "hedged"]
Redundancy = Literal["replicate", "erasure"]
WRITE_POLICIES: tuple[WritePolicy, ...] = ("all", "quorum", "one")
READ_POLICIES: tuple[ReadPolicy, ...] = ("health", "ordered", "hedged")
REDUNDANCIES: tuple[Redundancy, ...] = ("replicate", "erasure")
#: Most backends an erasure-coded object can be spread over (one byte of share index).
_MAX_ERASURE_BACKENDS = 255


def default_journal_path() -> str:
    """``$XDG_STATE_HOME/failover/journal.sqlite`` (``~/.local/state`` when unset)."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return str(Path(state) / "failover" / "journal.sqlite")


@dataclass(frozen=True, slots=True)
class _Spec:
    """How to parse and document one setting.

    ``parse`` raises ``ValueError`` for a bad value: a bare one (the message then shows
    the value), or a :class:`ConfigError` saying what is wrong without naming the
    variable, which :func:`_parse` adds with the accepted values.
    """

    parse: Callable[[str], Any]
    accepted: str
    default_doc: str
    meaning: str
    # The value may hold a secret: never echo it (parsers of such values raise
    # ConfigErrors whose messages are safe to show).
    secret: bool = False


def _choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in options:
            raise ValueError
        return value

    return parse


def _number(
    *, minimum: float, integer: bool = False, allow_zero: bool = False
) -> Callable[[str], Any]:
    def parse(text: str) -> float | int:
        value: float | int = int(text.strip()) if integer else float(text.strip())
        if not math.isfinite(value):
            raise ValueError
        if value < minimum or (value == 0 and not allow_zero and minimum <= 0):
            raise ValueError
        return value

    return parse


def _optional(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def wrapped(text: str) -> Any:
        if text.strip().lower() in ("", "auto", "adaptive", "majority"):
            return None
        return parse(text)

    return wrapped


def _backends(text: str) -> tuple[str, ...]:
    return _backend_list(text.split(","))


def _backend_list(items: Iterable[object], *, names_allowed: bool = False) -> tuple[str, ...]:
    """Validate backend URLs (blank ones skipped); their names must be unique.

    With ``names_allowed``, an item without ``://`` is not parsed: it is the name of a
    backend given to :class:`~failover.Storage` directly (the backends are then built
    by the caller, not from these strings).
    """
    urls: list[str] = []
    names: dict[str, str] = {}
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"a backend URL must be a str, not {type(item).__name__}")
        url = item.strip()
        if not url:
            continue
        if "," in url:
            raise ConfigError(
                f"backend URL {redact_backend_url(url)!r} contains ','; pass each URL separately"
            )
        if names_allowed and "://" not in url:
            name, shown = url, url
        else:
            parsed = validate_backend_url(url)
            name, shown = parsed.name, parsed.raw
        if name in names:
            raise ConfigError(
                f"backends {names[name]!r} and {shown!r} have the same name {name!r}; "
                "names must be unique: add name=… to the URLs"
            )
        names[name] = shown
        urls.append(url)
    if not urls:
        raise ConfigError("no backend URL given")
    return tuple(urls)


def _path(text: str) -> str:
    text = text.strip()
    if not text:
        raise ValueError
    if text.endswith(("/", os.sep)):
        raise ConfigError(f"{text!r} ends with a separator: that is a directory, not a file")
    # Whether the file can be created is a question for the journal (and for
    # ``failover doctor``), not for parsing: the directory may not exist yet.
    try:
        return str(Path(text).expanduser())
    except RuntimeError as exc:  # "~user/..." for an unknown user
        raise ConfigError(f"{text!r}: {exc}") from exc


def _encryption_key(text: str) -> KeyProvider:
    # Imported here so that applications without encryption do not pay for it. The
    # parser raises ConfigError itself, naming the entry at fault but not the value.
    from failover.segmentation.keys import StaticKeyProvider  # noqa: PLC0415

    return StaticKeyProvider.parse(text)


#: Every setting: field name -> how to parse and document it. Env name = prefix + upper.
SETTINGS_TABLE: Mapping[str, _Spec] = {
    "backends": _Spec(
        _backends,
        "comma-separated backend URLs (s3://, az://, gs://, file://, memory://)",
        "(required)",
        "backend URLs in priority order",
        secret=True,  # a URL pasted with credentials in it is rejected, never echoed
    ),
    "write_policy": _Spec(
        _choice(WRITE_POLICIES),
        " | ".join(WRITE_POLICIES),
        "quorum",
        "how many replicas must acknowledge a write",
    ),
    "write_quorum": _Spec(
        _optional(_number(minimum=1, integer=True)),
        "a whole number from 1 to the number of backends, or 'majority'",
        "majority",
        "acknowledgements needed with write_policy=quorum",
    ),
    "read_policy": _Spec(
        _choice(READ_POLICIES), " | ".join(READ_POLICIES), "health", "which replica serves a read"
    ),
    "hedge_delay_ms": _Spec(
        _optional(_number(minimum=0, allow_zero=True)),
        "milliseconds >= 0, or 'adaptive'",
        "adaptive (p95 of the first backend)",
        "delay before a hedged second read",
    ),
    "timeout_seconds": _Spec(
        _number(minimum=0.001), "seconds > 0", "10", "one attempt's connect and read timeout"
    ),
    "deadline_seconds": _Spec(
        _number(minimum=0.001),
        "seconds > 0",
        "30",
        "the whole call, with all retries and failovers",
    ),
    "retry_attempts": _Spec(
        _number(minimum=1, integer=True),
        "a whole number >= 1",
        "3",
        "attempts per backend for transient errors",
    ),
    "breaker_fail_max": _Spec(
        _number(minimum=1, integer=True),
        "a whole number >= 1",
        "5",
        "consecutive failures that open a backend's circuit breaker",
    ),
    "breaker_reset_seconds": _Spec(
        _number(minimum=0.001), "seconds > 0", "30", "open -> half-open after"
    ),
    "breaker_storage": _Spec(
        parse_breaker_storage,
        "'local', or a Redis URL redis://user:password@host:port/db (all but the host "
        "optional; rediss:// for TLS) with optional namespace=, timeout_seconds=, "
        "retry_seconds=",
        "local (each process keeps its own breakers)",
        "where circuit breaker state is kept: in this process, or in Redis, shared by every "
        "instance so that one instance's open breaker stops them all waiting on that "
        "backend (needs failover[redis]; if Redis is unreachable each instance falls back "
        "to local breakers)",
        secret=True,  # the URL may hold the Redis password: never echoed
    ),
    "journal": _Spec(
        _path, "a file path", "$XDG_STATE_HOME/failover/journal.sqlite", "SQLite repair journal"
    ),
    "repair_interval_seconds": _Spec(
        _number(minimum=0, allow_zero=True),
        "seconds >= 0 (0 = only explicit repair())",
        "5",
        "background repair period",
    ),
    "max_clock_skew_seconds": _Spec(
        _number(minimum=0.001),
        "seconds > 0",
        "30",
        "version stamps further ahead of this host's clock are not trusted: not adopted "
        "by this writer's clock, and replaced by the next write instead of winning",
    ),
    "tombstone_grace_seconds": _Spec(
        _number(minimum=0, allow_zero=True),
        "seconds >= 0",
        "86400",
        "how long a delete marker stays on the replicas after every replica has it "
        "(it keeps a late write of an older version from bringing the key back)",
    ),
    "encryption_key": _Spec(
        _encryption_key,
        "a base64-encoded 256-bit key, or comma-separated 'id:base64key' entries with the "
        "current key first (from_urls also takes a KeyProvider)",
        "(no encryption)",
        "client-side encryption master key(s); older ids stay readable after a rotation",
        secret=True,
    ),
    "redundancy": _Spec(
        _choice(REDUNDANCIES),
        " | ".join(REDUNDANCIES),
        "replicate",
        "full copies on every backend, or k-of-n erasure-coded shares (one per backend)",
    ),
    "ec_k": _Spec(
        _optional(_number(minimum=1, integer=True)),
        "a whole number from 1 to the number of backends - 1, or 'auto'",
        "auto (number of backends - 1)",
        "shares needed to read an object with redundancy=erasure",
    ),
}


@dataclass(frozen=True, slots=True)
class Settings:
    """Validated configuration of a :class:`~failover.Storage`.

    Build with :meth:`from_env` or :meth:`from_urls`; every field is documented in
    ``SETTINGS_TABLE`` and in ``docs/configuration.md``.
    """

    backends: tuple[str, ...]
    write_policy: WritePolicy = "quorum"
    write_quorum: int | None = None
    read_policy: ReadPolicy = "health"
    hedge_delay_ms: float | None = None
    timeout_seconds: float = 10.0
    deadline_seconds: float = 30.0
    retry_attempts: int = 3
    breaker_fail_max: int = 5
    breaker_reset_seconds: float = 30.0
    breaker_storage: BreakerStorageURL | None = None
    journal: str | None = None
    repair_interval_seconds: float = 5.0
    max_clock_skew_seconds: float = 30.0
    tombstone_grace_seconds: float = 86400.0
    encryption_key: KeyProvider | None = None
    redundancy: Redundancy = "replicate"
    ec_k: int | None = None

    def __post_init__(self) -> None:
        if not self.backends:
            raise ConfigError(
                f"{ENV_PREFIX}BACKENDS (backends) is required: comma-separated backend URLs, "
                "e.g. s3://bucket,az://container,gs://bucket"
            )
        if self.write_quorum is not None and not 1 <= self.write_quorum <= len(self.backends):
            raise ConfigError(
                f"{ENV_PREFIX}WRITE_QUORUM (write_quorum) is {self.write_quorum} but there are "
                f"{len(self.backends)} backends; use a number from 1 to {len(self.backends)} "
                "or 'majority'"
            )
        self._check_erasure()

    def _check_erasure(self) -> None:
        count = len(self.backends)
        if self.redundancy != "erasure":
            if self.ec_k is not None:
                raise ConfigError(
                    f"{ENV_PREFIX}EC_K (ec_k) is set but {ENV_PREFIX}REDUNDANCY is "
                    f"{self.redundancy!r}; set {ENV_PREFIX}REDUNDANCY=erasure or unset "
                    f"{ENV_PREFIX}EC_K"
                )
            return
        if not 2 <= count <= _MAX_ERASURE_BACKENDS:
            raise ConfigError(
                f"{ENV_PREFIX}REDUNDANCY=erasure needs from 2 to {_MAX_ERASURE_BACKENDS} "
                f"backends, not {count}"
            )
        if self.ec_k is not None and not 1 <= self.ec_k <= count - 1:
            raise ConfigError(
                f"{ENV_PREFIX}EC_K (ec_k) is {self.ec_k} but there are {count} backends; use "
                f"a number from 1 to {count - 1} (k = n would not survive losing a backend), "
                "or 'auto'"
            )

    @property
    def erasure_k(self) -> int:
        """Shares needed to read an erasure-coded object (``ec_k``, default n - 1)."""
        return self.ec_k if self.ec_k is not None else max(1, len(self.backends) - 1)

    @property
    def required_acks(self) -> int:
        """Acknowledgements a write needs under the write policy.

        With ``redundancy="erasure"`` never fewer than k (an object with fewer than k
        shares stored cannot be read at all), and the default quorum is k + 1 (at most
        the number of backends): an acknowledged write then survives losing any one
        cloud, as a replicated quorum write does. A ``write_quorum`` of k accepts writes
        with one more cloud down, each exposed to the loss of one acknowledging cloud
        until repair completes it.
        """
        count = len(self.backends)
        erasure = self.redundancy == "erasure"
        if self.write_policy == "all":
            acks = count
        elif self.write_policy == "one":
            acks = 1
        elif self.write_quorum is not None:
            acks = self.write_quorum
        else:
            acks = min(count, self.erasure_k + 1) if erasure else count // 2 + 1
        return max(acks, self.erasure_k) if erasure else acks

    @property
    def journal_path(self) -> str:
        """The journal file, with the XDG default applied."""
        return self.journal or default_journal_path()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every ``FAILOVER_*`` variable (unset ones take their defaults).

        Raises:
            ConfigError: naming the variable and its accepted values.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, spec in SETTINGS_TABLE.items():
            variable = ENV_PREFIX + name.upper()
            raw = env.get(variable)
            if raw is None or (raw.strip() == "" and name != "backends"):
                continue
            values[name] = _parse(spec, raw, label=variable)
        if "backends" not in values:
            raise ConfigError(
                f"{ENV_PREFIX}BACKENDS is not set: give comma-separated backend URLs in "
                "priority order, e.g. FAILOVER_BACKENDS=s3://a,az://b,gs://c"
            )
        return cls(**values)

    @classmethod
    def from_urls(cls, urls: Iterable[str] | str, **options: Any) -> Settings:
        """Build settings from backend URLs and keyword options (names as in the table).

        Options may be typed values (``timeout_seconds=2.5``) or strings as in the
        environment (``write_policy="all"``). URLs are validated as in
        ``FAILOVER_BACKENDS``; a string without ``://`` is taken as the name of a
        backend passed to :class:`~failover.Storage` directly, and not parsed.

        Raises:
            ConfigError: for an unknown option or a bad URL or value, naming the keyword
                (``urls`` for the URLs).
        """
        items = [urls] if isinstance(urls, str) else urls
        values = {
            "backends": _parse(
                SETTINGS_TABLE["backends"],
                items,
                label="urls",
                parse=lambda given: _backend_list(given, names_allowed=True),
            ),
            **_parse_options(options),
        }
        return cls(**values)

    def with_options(self, **options: Any) -> Settings:
        """Return a copy with some options changed (validated like :meth:`from_urls`).

        An option given as ``None`` goes back to its default.
        """
        values = _parse_options(options)
        defaults = {f.name: f.default for f in fields(self)}
        return replace(self, **{name: values.get(name, defaults[name]) for name in options})


def _parse_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Parse keyword options by their lower-case names (``None`` ones are left out).

    Raises:
        ConfigError: for an unknown option, or a bad value (naming the keyword).
    """
    values: dict[str, Any] = {}
    for name, value in options.items():
        spec = SETTINGS_TABLE.get(name)
        if spec is None or name == "backends":
            known = ", ".join(n for n in SETTINGS_TABLE if n != "backends")
            raise ConfigError(f"unknown option {name!r}; options are: {known}")
        if value is not None:
            values[name] = _parse(spec, value, label=name, parse=_option_parser(name, spec))
    return values


def _option_parser(name: str, spec: _Spec) -> Callable[[Any], Any]:
    """Parse a keyword option: a typed value, or a string as in the environment."""

    def parse(value: object) -> Any:
        if name == "encryption_key" and not isinstance(value, str):
            return _key_provider(value)
        if name == "breaker_storage" and isinstance(value, BreakerStorageURL):
            return value
        if isinstance(value, bool) or not isinstance(value, (str, int, float, os.PathLike)):
            raise ConfigError(f"a {type(value).__name__} is not accepted")
        return spec.parse(str(os.fspath(value)) if isinstance(value, os.PathLike) else str(value))

    return parse


def _key_provider(value: object) -> KeyProvider:
    from failover.segmentation.keys import KeyProvider  # noqa: PLC0415

    if not isinstance(value, KeyProvider):
        raise ConfigError(
            f"a {type(value).__name__} is neither a str in the {ENV_PREFIX}ENCRYPTION_KEY "
            "format nor a KeyProvider (current() and get(key_id))"
        )
    return value


def _parse(
    spec: _Spec, raw: object, *, label: str, parse: Callable[[Any], Any] | None = None
) -> Any:
    """Parse one setting; a bad value raises a ConfigError naming ``label``.

    The one place where parse errors become messages: ``label`` is the variable
    (``from_env``) or the keyword (``from_urls``), then what is wrong (the parser's
    :class:`ConfigError` message, else the value itself unless it may hold a secret),
    then the accepted values. The parser's error is chained, except a plain
    ``ValueError`` from the parser of a secret (its message might quote the value).

    Args:
        spec: the setting.
        raw: the value, a str as in the environment (or what ``parse`` takes).
        label: the variable or keyword to name.
        parse: instead of ``spec.parse`` (e.g. for typed keyword values).
    """
    parser: Callable[[Any], Any] = parse or spec.parse
    try:
        return parser(raw)
    except ValueError as exc:  # ConfigError included
        if isinstance(exc, ConfigError):
            error = ConfigError(f"{label}: {exc}; expected {spec.accepted}")
        elif spec.secret:
            raise ConfigError(f"{label} is invalid; expected {spec.accepted}") from None
        else:
            text = raw if isinstance(raw, str) else repr(raw)
            shown = text if len(text) <= 60 else text[:57] + "..."
            error = ConfigError(f"{label}={shown!r} is invalid; expected {spec.accepted}")
        raise error from exc
