"""The gateway's own launcher: serve :func:`app.main.create_app` with uvicorn (``octopi-serve gateway``)."""

from __future__ import annotations

from octopi_core.settings import Settings

__all__ = ["run_gateway"]


def run_gateway(settings: Settings, *, host: str | None = None, port: int | None = None) -> int:
    """Serve the gateway with uvicorn until interrupted.

    Args:
        settings: the service settings (``host`` and ``port`` are the defaults of the arguments below).
        host: listen address (default ``settings.host``).
        port: listen port (default ``settings.port``).

    Returns:
        The process exit status (0 after a clean stop).
    """
    import uvicorn

    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        log_level="info",
        # X-Forwarded-For names the client only when it comes from a listed proxy; uvicorn's own default
        # would trust it from any loopback peer, letting a local client pick its rate-limit identity.
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=list(settings.trusted_proxies) or None,
        access_log=False,
    )
    return 0
