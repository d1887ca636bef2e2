"""Pure ASGI middleware: request ids and the request-body size limit (cheap on the hot path)."""

from __future__ import annotations

import secrets

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rapport.errors import PROBLEM_BASE, PROBLEM_MEDIA_TYPE


class RequestContextMiddleware:
    """Gives every request an id (or keeps a sane one from the client) and echoes it back."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = None
        length = None
        for name, value in scope["headers"]:
            if name == b"x-request-id" and 8 <= len(value) <= 64 and value.isascii():
                candidate = value.decode()
                if candidate.replace("-", "").isalnum():
                    rid = candidate
            elif name == b"content-length":
                length = value
        rid = rid or secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = rid
        rid_header = (b"x-request-id", rid.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), rid_header]
            await send(message)

        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await self._too_large(scope, send_with_id, rid)
            return

        received = 0
        too_large = False

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    too_large = True
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send_with_id)
        except _BodyTooLarge:
            await self._too_large(scope, send_with_id, rid)

    async def _too_large(self, scope: Scope, send: Send, rid: str) -> None:
        body = orjson.dumps(
            {
                "type": PROBLEM_BASE + "payload-too-large",
                "title": "Request body too large",
                "status": 413,
                "detail": f"Request bodies are limited to {self.max_body} bytes.",
                "instance": scope.get("path", ""),
                "request_id": rid,
            }
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    pass
