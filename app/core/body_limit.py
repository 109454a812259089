"""ASGI middleware refusing request bodies over ``max_body_bytes`` with 413, before any parsing."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .exceptions import RequestBodyTooLargeError
from .problem import PROBLEM_MEDIA_TYPE, problem_type

__all__ = ["BodySizeLimitMiddleware"]


class _TooLarge(RequestBodyTooLargeError):
    """Raised from ``receive`` when the streamed body passes the limit."""


class BodySizeLimitMiddleware:
    """Answer 413 problem+json when ``Content-Length`` or the streamed body exceeds ``max_body_bytes``."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                too_large = int(declared) > self.max_body_bytes
            except ValueError:
                too_large = False
            if too_large:
                await self._refuse(scope, send)
                return
        received = 0
        state = {"too_large": False, "started": False, "replaced": False}

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    state["too_large"] = True
                    raise _TooLarge(f"request bodies are limited to {self.max_body_bytes} bytes")
            return message

        async def guarded_send(message: Message) -> None:
            # The framework may turn the receive error into its own 400; answer 413 instead.
            if state["replaced"]:
                return
            if message["type"] == "http.response.start":
                if state["too_large"]:
                    state["replaced"] = True
                    await self._refuse(scope, send)
                    return
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _TooLarge:
            if not state["started"] and not state["replaced"]:
                await self._refuse(scope, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        body = json.dumps(
            {
                "type": problem_type("request-too-large"),
                "title": "Request body too large",
                "status": 413,
                "detail": f"request bodies are limited to {self.max_body_bytes} bytes",
                "instance": scope.get("path"),
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
