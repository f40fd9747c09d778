"""What botocore's transport and credential errors mean, shared by S3 and Lambda.

Imported only by modules that already need boto3 (the ``aws`` extra), never by
``import failover``.
"""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from failover.errors import BackendError, BackendTimeout, BackendUnavailable, PermissionDeniedError

__all__ = ["CREDENTIALS_HELP", "transport_error"]

#: What to do when no AWS credentials are found.
CREDENTIALS_HELP = (
    "no usable AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
    "(and AWS_SESSION_TOKEN for temporary credentials), or AWS_PROFILE, or run with an "
    "IAM role (boto3 credential chain)"
)


def transport_error(exc: BotoCoreError, *, service: str, backend: str) -> BackendError | None:
    """Map a botocore error that is not the service's own answer.

    Args:
        exc: what botocore raised.
        service: the service's name for messages ("S3", "Lambda").
        backend: the backend or target name.

    Returns:
        ``BackendTimeout`` for connect/read timeouts, ``PermissionDeniedError`` when no
        credentials are found, ``BackendUnavailable`` when the service cannot be reached
        (refused, reset, closed mid-response, DNS or TLS failure, truncated body), or
        None for anything else (client-side validation: the caller decides).
    """
    if isinstance(exc, (ReadTimeoutError, ConnectTimeoutError)):
        return BackendTimeout(f"{service} did not answer in time: {exc}", backend=backend)
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError)):
        return PermissionDeniedError(f"{CREDENTIALS_HELP} ({type(exc).__name__})", backend=backend)
    if isinstance(exc, (BotoConnectionError, HTTPClientError, IncompleteReadError)):
        return BackendUnavailable(
            f"cannot reach {service}: {type(exc).__name__}: {exc}", backend=backend
        )
    return None
