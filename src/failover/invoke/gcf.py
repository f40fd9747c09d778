"""Google Cloud Functions and Cloud Run over HTTPS, authenticated with a Google ID token.

URL: ``gcf+https://REGION-PROJECT.cloudfunctions.net/FUNCTION`` (or a Cloud Run
``https://SERVICE-HASH-REGION.a.run.app/path``), optionally ``audience=`` when the
receiving service expects another audience than the URL without its query.

The token comes from google-auth (``failover[gcp]``):
``google.oauth2.id_token.fetch_id_token_credentials(audience)`` finds Application
Default Credentials (a service-account key file in ``GOOGLE_APPLICATION_CREDENTIALS``,
or the metadata server on Google Cloud), and the credentials are refreshed only when
their token expires (ID tokens live one hour). It is sent as
``Authorization: Bearer <token>``. A public function (``allUsers`` invoker) needs no
token: use a plain ``https://`` URL.

Tests and unusual set-ups inject ``token_provider`` (any callable returning a token);
failures to get a token are mapped in :meth:`GoogleIdTokenAuth._map_errors`.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from failover.errors import (
    BackendError,
    BackendUnavailable,
    ConfigError,
    PermissionDeniedError,
)
from failover.invoke.errors import excerpt
from failover.invoke.http import HttpTarget

if TYPE_CHECKING:
    from failover.invoke._url import TargetURL

__all__ = ["GoogleFunctionTarget", "GoogleIdTokenAuth", "TokenProvider"]

#: Returns a bearer token for one attempt.
TokenProvider = Callable[[], str]


class GoogleIdTokenAuth:
    """``Authorization: Bearer <ID token>`` for one audience, refreshed when it expires.

    Args:
        audience: the token's audience (the receiving function's URL).
        token_provider: returns a token; default: google-auth's ID-token credentials.
        timeout_seconds: timeout of each token request google-auth makes.
    """

    def __init__(
        self,
        audience: str,
        *,
        token_provider: TokenProvider | None = None,
        timeout_seconds: float = 10.0,
    ) -> None:
        if not audience:
            raise ConfigError("GoogleIdTokenAuth needs an audience (the function's URL)")
        self._audience = audience
        self._provider = token_provider
        self._timeout = timeout_seconds
        self._credentials: Any = None
        self._lock = threading.Lock()

    @property
    def audience(self) -> str:
        """The audience tokens are requested for."""
        return self._audience

    def __repr__(self) -> str:
        return f"GoogleIdTokenAuth(audience={self._audience!r})"

    def __call__(self) -> Mapping[str, str]:
        """Return the ``Authorization`` header, fetching a token when needed.

        Raises:
            PermissionDeniedError: no credentials, or they were refused.
            BackendUnavailable: the token service could not be reached.
        """
        with self._map_errors():
            token = self._provider() if self._provider is not None else self._google_token()
        return {"Authorization": f"Bearer {token}"}

    def _google_token(self) -> str:
        # Imported here: a target with an injected provider needs no google-auth.
        transport: Any = importlib.import_module("google.auth.transport.requests")
        id_token: Any = importlib.import_module("google.oauth2.id_token")
        session = transport.Request()
        timeout = self._timeout

        def request(*args: Any, **kwargs: Any) -> Any:
            # google-auth's default timeout for token requests is 120 s.
            kwargs["timeout"] = timeout
            return session(*args, **kwargs)

        # One refresh at a time: the others wait for its token instead of each
        # asking the token service.
        with self._lock:
            if self._credentials is None or not self._credentials.valid:
                if self._credentials is None:
                    self._credentials = id_token.fetch_id_token_credentials(
                        self._audience, request=request
                    )
                self._credentials.refresh(request)
            token: str = self._credentials.token
        return token

    @contextlib.contextmanager
    def _map_errors(self) -> Iterator[None]:
        """Translate google-auth's exceptions (and a provider's) into failover's."""
        try:
            yield
        except BackendError:
            raise
        except Exception as exc:
            what = f"{type(exc).__name__}: {excerpt(str(exc).encode())}"
            # google.auth.exceptions: TransportError (token service unreachable) and a
            # RefreshError marked retryable are transient; DefaultCredentialsError and
            # other refusals are this target's credentials problem.
            if _is_transport_error(exc):
                raise BackendUnavailable(f"cannot get an ID token: {what}") from exc
            raise PermissionDeniedError(
                f"cannot get an ID token for {self._audience}: {what}"
            ) from exc


class GoogleFunctionTarget(HttpTarget):
    """A Google Cloud Function or Cloud Run service that requires an ID token.

    Args:
        url: the function's URL.
        audience: the token audience (default: ``url`` without its query).
        token_provider: returns a token (default: google-auth, see the module docs).
        name: the target's name (default: ``gcf:<host><path>``).
        timeout_seconds: the longest connect and read timeout of one attempt.
        max_connections: keep-alive connections kept.
    """

    def __init__(
        self,
        url: str,
        *,
        audience: str | None = None,
        token_provider: TokenProvider | None = None,
        name: str | None = None,
        timeout_seconds: float = 10.0,
        max_connections: int = 16,
    ) -> None:
        if token_provider is None:
            missing = [m for m in ("google.auth", "requests") if not _installed(m)]
            if missing:
                raise ConfigError(
                    f"gcf+https:// targets need {', '.join(missing)} for ID tokens: "
                    "pip install 'failover[gcp]'"
                )
        parts = urlsplit(url)
        self.auth = GoogleIdTokenAuth(
            audience or urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")),
            token_provider=token_provider,
            timeout_seconds=timeout_seconds,
        )
        super().__init__(
            url,
            name=name,
            auth=self.auth,
            timeout_seconds=timeout_seconds,
            max_connections=max_connections,
        )
        if name is None:
            self._name = "gcf:" + self._name.partition(":")[2]

    @classmethod
    def from_url(
        cls, url: TargetURL, *, timeout_seconds: float, max_connections: int
    ) -> GoogleFunctionTarget:
        """Build from a parsed ``gcf+https://…[?audience=…]`` URL."""
        return cls(
            url.endpoint,
            audience=url.params.get("audience"),
            name=url.name,
            timeout_seconds=timeout_seconds,
            max_connections=max_connections,
        )


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # the parent package is missing
        return False


def _is_transport_error(exc: Exception) -> bool:
    if getattr(exc, "retryable", False):
        return True
    try:
        from google.auth import exceptions  # noqa: PLC0415 - optional dependency
    except ImportError:
        return False
    return isinstance(exc, exceptions.TransportError)
