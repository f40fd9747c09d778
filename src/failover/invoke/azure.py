"""Azure Functions over HTTPS, authenticated with a function key.

URL: ``azfunc+https://APP.azurewebsites.net/api/FUNCTION?key_env=VARIABLE``. The key
(a function, host or master key from the portal or ``az functionapp keys list``) is read
from the environment variable ``VARIABLE`` on every attempt and sent as the
``x-functions-key`` header; Azure's other way, ``?code=`` in the URL, is refused because
URLs end up in logs. The function answers as any HTTP target (see
:mod:`failover.invoke.http`): a function that throws gives HTTP 500, which is a
:class:`~failover.invoke.errors.FunctionError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from failover.invoke.http import HeaderFromEnv, HttpTarget

if TYPE_CHECKING:
    from failover.invoke._url import TargetURL

__all__ = ["FUNCTION_KEY_HEADER", "AzureFunctionTarget"]

#: The header Azure Functions reads the function key from.
FUNCTION_KEY_HEADER = "x-functions-key"


class AzureFunctionTarget(HttpTarget):
    """An HTTP-triggered Azure Function.

    Args:
        url: the function's ``https://APP.azurewebsites.net/api/FUNCTION`` URL.
        key_env: the environment variable holding the function key.
        name: the target's name (default: ``azfunc:<host><path>``).
        timeout_seconds: the longest connect and read timeout of one attempt.
        max_connections: keep-alive connections kept.

    Raises:
        ConfigError: ``key_env`` is not set in the environment, or a bad URL.
    """

    def __init__(
        self,
        url: str,
        *,
        key_env: str,
        name: str | None = None,
        timeout_seconds: float = 10.0,
        max_connections: int = 16,
    ) -> None:
        auth = HeaderFromEnv(FUNCTION_KEY_HEADER, key_env)
        auth.check()
        super().__init__(
            url,
            name=name,
            auth=auth,
            timeout_seconds=timeout_seconds,
            max_connections=max_connections,
        )
        if name is None:
            self._name = "azfunc:" + self._name.partition(":")[2]

    @classmethod
    def from_url(
        cls, url: TargetURL, *, timeout_seconds: float, max_connections: int
    ) -> AzureFunctionTarget:
        """Build from a parsed ``azfunc+https://…?key_env=VARIABLE`` URL.

        Raises:
            ConfigError: the key's environment variable is not set.
        """
        return cls(
            url.endpoint,
            key_env=url.params["key_env"],
            name=url.name,
            timeout_seconds=timeout_seconds,
            max_connections=max_connections,
        )
