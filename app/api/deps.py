"""Request dependencies as ``Annotated`` aliases: settings, Redis, the model registry, the calling client."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from redis import Redis

from octopi_core.settings import Settings

from ..core.exceptions import NotAuthenticatedError
from ..core.ratelimit import check_rate_limit
from ..core.security import authenticate

if TYPE_CHECKING:
    from octopi_core.registry import Registry

__all__ = ["SettingsDep", "RedisDep", "RegistryDep", "ClientDep", "IdempotencyKeyDep", "get_registry"]

_bearer = HTTPBearer(
    auto_error=False, description="an API key, when the service is configured with OCTOPI_API_KEYS"
)
_registry_lock = threading.Lock()


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _redis(request: Request) -> Redis:
    return request.app.state.redis


def get_registry(request: Request) -> Registry:
    """The model registry, created on first use (importing it loads torch, so the gateway defers it)."""
    state = request.app.state
    if getattr(state, "registry", None) is None:
        with _registry_lock:
            if getattr(state, "registry", None) is None:
                from octopi_core.registry import Registry

                state.registry = Registry(state.settings.registry_uri)
    return state.registry


SettingsDep = Annotated[Settings, Depends(_settings)]
RedisDep = Annotated[Redis, Depends(_redis)]
RegistryDep = Annotated["Registry", Depends(get_registry)]


def _client(
    request: Request,
    settings: SettingsDep,
    connection: RedisDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """Authenticate the caller (when keys are configured) and count the request against its rate limit.

    Failed authentications are counted per peer address (the one behind a trusted proxy, else the socket
    peer); past ``auth_failures_per_minute`` the address gets 429 until the minute ends, even with a
    valid key, so keys cannot be guessed at speed.
    """
    peer = request.client.host if request.client else None
    header = f"{credentials.scheme} {credentials.credentials}" if credentials else None
    if not settings.api_keys:
        client_id = authenticate(settings, header, peer)
    else:
        failures = f"auth-failures:{peer or 'unknown'}"
        limit, what = settings.auth_failures_per_minute, "failed authentications"
        check_rate_limit(connection, failures, limit, cost=0, what=what)
        try:
            client_id = authenticate(settings, header, peer)
        except NotAuthenticatedError:
            check_rate_limit(connection, failures, limit, what=what)  # 429 instead of 401 past the limit
            raise
    check_rate_limit(connection, client_id, settings.rate_limit_per_minute)
    return client_id


ClientDep = Annotated[str, Depends(_client)]
IdempotencyKeyDep = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="repeat a request with the same key to get the same job back instead of a new one",
    ),
]
