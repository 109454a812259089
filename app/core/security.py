"""API-key authentication and the client identity used for rate limits and idempotency keys."""

from __future__ import annotations

import hashlib
import hmac

from octopi_core.settings import Settings

from .exceptions import NotAuthenticatedError

__all__ = ["authenticate"]


def authenticate(settings: Settings, authorization: str | None, client_host: str | None) -> str:
    """Check the ``Authorization`` header against ``settings.api_keys`` and name the client.

    Args:
        settings: the configured keys (none: every request is accepted).
        authorization: the header value, ``Bearer <key>``.
        client_host: the peer address, used to name anonymous clients.

    Returns:
        ``key:<16 hex of the key's SHA-256>`` for an authenticated client, else ``ip:<address>``.

    Raises:
        NotAuthenticatedError: keys are configured and the header is missing or wrong.
    """
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if settings.api_keys:
        if scheme.lower() != "bearer" or not token:
            raise NotAuthenticatedError("send an API key as 'Authorization: Bearer <key>'")
        given = token.encode()
        if not any(hmac.compare_digest(given, key.get_secret_value().encode()) for key in settings.api_keys):
            raise NotAuthenticatedError("the API key is not valid")
        return "key:" + hashlib.sha256(given).hexdigest()[:16]
    return f"ip:{client_host or 'unknown'}"
