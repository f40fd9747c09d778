"""Exceptions raised by failover.

Every exception the library raises derives from :class:`FailoverError`::

    FailoverError
    ├── ConfigError (ValueError)            bad setting, URL or environment variable
    ├── InvalidKeyError (ValueError)        key rejected before any network call
    ├── InvalidMetadataError (ValueError)   user metadata that not every cloud can store
    ├── NotFoundError (FileNotFoundError)   the object does not exist (an answer, not a failure)
    ├── IntegrityError                      bytes do not match their sha256 on every replica
    ├── AllBackendsFailed                   no backend could serve the call; .errors per backend
    ├── BackendSkipped                      in AllBackendsFailed.errors: why one was not tried
    ├── QuorumNotReached                    too few acknowledgements: outcome unknown
    ├── Superseded                          a newer version of the key won: this write lost
    └── BackendError                        one backend's failure, mapped from its SDK
        ├── TransientError                  worth retrying or failing over
        │   ├── BackendUnavailable          connection refused, reset or DNS failure
        │   ├── BackendTimeout              connect/read timeout or deadline reached
        │   ├── ThrottledError              429, 503, SlowDown
        │   └── ServerError                 other 5xx
        └── PermanentError                  retrying cannot help
            ├── PermissionDeniedError       401/403, bad or missing credentials
            ├── PreconditionFailedError     conditional write lost (412/409)
            ├── BucketNotFoundError         the bucket/container/directory itself is missing
            └── BackendRequestError         any other 4xx the backend rejected

Backends map their SDK's exceptions into the ``BackendError`` branch, chaining the
original (``raise mapped from exc``). A missing *object* is ``NotFoundError`` (with the
backend's name in ``.backend``); it is deliberately not a ``BackendError`` so that no
policy ever counts it as a failure.

No message, ``repr`` or log line built from these exceptions contains a credential.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = [
    "AllBackendsFailed",
    "BackendError",
    "BackendRequestError",
    "BackendSkipped",
    "BackendTimeout",
    "BackendUnavailable",
    "BucketNotFoundError",
    "ConfigError",
    "FailoverError",
    "IntegrityError",
    "InvalidKeyError",
    "InvalidMetadataError",
    "NotFoundError",
    "PermanentError",
    "PermissionDeniedError",
    "PreconditionFailedError",
    "QuorumNotReached",
    "ServerError",
    "Superseded",
    "ThrottledError",
    "TransientError",
    "is_transient",
]


class FailoverError(Exception):
    """Root of every exception raised by failover."""


class ConfigError(FailoverError, ValueError):
    """A setting, backend URL or ``FAILOVER_*`` environment variable is invalid.

    The message names the setting and the values it accepts.
    """


class InvalidKeyError(FailoverError, ValueError):
    """An object key breaks the key rules; raised before any network call."""


class InvalidMetadataError(FailoverError, ValueError):
    """User metadata that cannot be stored identically on every cloud."""


class NotFoundError(FailoverError, FileNotFoundError):
    """The object does not exist.

    Attributes:
        key: the object key.
        backend: name of the backend that answered, or ``None`` when the answer
            summarises several backends.
    """

    def __init__(self, key: str, *, backend: str | None = None) -> None:
        where = f" on backend {backend!r}" if backend else ""
        super().__init__(f"object {key!r} not found{where}")
        self.key = key
        self.backend = backend


class IntegrityError(FailoverError):
    """Stored bytes do not match their recorded sha256 (on every replica tried)."""


class BackendError(FailoverError):
    """One backend failed; subclasses say whether retrying can help.

    Attributes:
        backend: name of the backend, when known.
    """

    transient: bool = False

    def __init__(self, message: str, *, backend: str | None = None) -> None:
        prefix = f"[{backend}] " if backend else ""
        super().__init__(prefix + message)
        self.backend = backend


class TransientError(BackendError):
    """A failure that may go away: retry with backoff, or fail over."""

    transient = True


class BackendUnavailable(TransientError):
    """The backend refused or reset the connection, or its name did not resolve."""


class BackendTimeout(TransientError):
    """The backend did not answer within the timeout or the call's deadline."""


class ThrottledError(TransientError):
    """The backend is throttling (HTTP 429, 503, S3 ``SlowDown``)."""


class ServerError(TransientError):
    """The backend answered with a 5xx server error."""


class PermanentError(BackendError):
    """A failure that retrying the same request cannot fix."""


class PermissionDeniedError(PermanentError):
    """Credentials are missing, wrong or lack permission (HTTP 401/403)."""


class PreconditionFailedError(PermanentError):
    """A conditional write lost: the object changed or already exists (412/409)."""


class BucketNotFoundError(PermanentError):
    """The bucket, container or directory itself does not exist."""


class BackendRequestError(PermanentError):
    """The backend rejected the request (a 4xx not covered by a narrower class)."""


class BackendSkipped(FailoverError):
    """A backend was not tried (breaker open, deadline reached); the message says which."""


class AllBackendsFailed(FailoverError):
    """No backend could serve the call.

    Attributes:
        errors: one entry for every configured backend: the exception it raised, or
            why it was not tried (breaker open, deadline reached).
    """

    def __init__(self, operation: str, errors: Mapping[str, BaseException]) -> None:
        self.operation = operation
        self.errors: dict[str, BaseException] = dict(errors)
        details = "; ".join(
            f"{name}: {type(err).__name__}: {err}" for name, err in self.errors.items()
        )
        super().__init__(f"{operation} failed on every backend ({details})")


class QuorumNotReached(FailoverError):
    """Fewer replicas acknowledged a write than the write policy requires: outcome unknown.

    The write is *not* known to have failed. The replicas in ``succeeded`` hold it (a
    read may return it), the others are recorded in the repair journal, and repair will
    copy it to them unless a later write or delete of the key supersedes it. To settle
    the key, write or delete it again; to learn what the replicas hold now, read it.

    Attributes:
        key: the key written.
        operation: ``"put"`` or ``"delete"`` (or ``"head"``: a ``consistency="latest"``
            read that a majority did not answer).
        version: the version stamp of the write (``None`` when not known).
        succeeded: names of the backends that acknowledged (and so hold the write).
        failed: backend name to the exception it raised (or why it was not tried).
        required: how many acknowledgements were needed.
    """

    def __init__(
        self,
        key: str,
        *,
        required: int,
        succeeded: Iterable[str],
        failed: Mapping[str, BaseException],
        operation: str = "put",
        version: str | None = None,
    ) -> None:
        self.key = key
        self.operation = operation
        self.version = version
        self.required = required
        self.succeeded: tuple[str, ...] = tuple(succeeded)
        self.failed: dict[str, BaseException] = dict(failed)
        details = "; ".join(
            f"{name}: {type(err).__name__}: {err}" for name, err in self.failed.items()
        )
        stamp = f" (version {version})" if version else ""
        held = ", ".join(self.succeeded) or "none"
        if operation not in ("put", "delete"):  # a read that needed a majority of answers
            super().__init__(
                f"{operation} of {key!r}: {len(self.succeeded)} of the {required} answers "
                f"required (answered: {held}; failed: {details})"
            )
            return
        super().__init__(
            f"{operation} of {key!r}{stamp}: outcome unknown, acknowledged by "
            f"{len(self.succeeded)} of the {required} replicas required "
            f"(held by: {held}; not confirmed: {details}). "
            "It may be visible to reads and is repaired onto the other replicas unless "
            "superseded; write or delete the key again to settle it"
        )


class Superseded(FailoverError):
    """A write lost to a newer version of the key: what it wrote is not the key's value.

    Last writer wins by version stamp. When a replica that acknowledged already held a
    newer (trusted) version, this write is not the key's value on the replicas, now or
    after repair; it is never reported as a success.

    Attributes:
        key: the key written.
        version: this write's version stamp.
        current: the newer version that won.
        backend: a replica holding ``current``.
    """

    def __init__(self, key: str, *, version: str, current: str, backend: str) -> None:
        self.key = key
        self.version = version
        self.current = current
        self.backend = backend
        super().__init__(
            f"put of {key!r} (version {version}) lost to the newer version {current} "
            f"already on {backend}: read the key to see its value, and write again if "
            "yours must win"
        )


def is_transient(exc: BaseException) -> bool:
    """Tell whether a failure is worth a retry or a failover.

    Args:
        exc: an exception raised by a backend.

    Returns:
        True for :class:`TransientError` and for bare ``TimeoutError`` /
        ``ConnectionError`` that escaped a backend's mapping; False otherwise.
    """
    if isinstance(exc, BackendError):
        return exc.transient
    return isinstance(exc, (TimeoutError, ConnectionError))
