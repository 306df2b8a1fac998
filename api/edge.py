"""The HTTP edge, as one pure ASGI middleware (no per-request ``BaseHTTPMiddleware`` cost):

* security headers on every answer (``nosniff``, no framing, a CSP on ``/ui/``);
* request headers and body bounded (431 / 413 problem+json);
* any exception nothing else handled becomes a 500 problem+json (traceback in the log only).

It sits inside the request-id middleware, so every answer it writes carries ``X-Request-ID``.
"""

from __future__ import annotations

import json
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .problems import MEDIA_TYPE, TYPE_BASE

log = logging.getLogger("tierflow")

SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
# the page's own scripts and styles only
UI_CSP = (
    b"content-security-policy",
    b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
)
API_CSP = (b"content-security-policy", b"frame-ancestors 'none'")


class BodyTooLarge(Exception):
    """Raised from ``receive`` when a streamed body goes past the limit."""


class Edge:
    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int = 1 << 20, max_header_bytes: int = 16 << 10
    ) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.max_headers = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = [*SECURITY_HEADERS, UI_CSP if scope["path"].startswith("/ui") else API_CSP]
        started = False
        overflowed = False  # the body went past the limit while the app was reading it

        async def send_secured(message: Message) -> None:
            nonlocal started
            if overflowed:  # the app answered its read failing (FastAPI: a 400); ours wins
                if not started:
                    started = True
                    await _problem(send, 413, *self._too_large(None), extra=extra)
                return
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        header_bytes = 0
        length: int | None = None
        for name, value in scope["headers"]:
            header_bytes += len(name) + len(value) + 4
            if name == b"content-length":
                length = int(value) if value.isdigit() else None
        if header_bytes > self.max_headers:
            await _problem(
                send_secured,
                431,
                "headers-too-large",
                "Request header fields too large",
                f"request headers take {header_bytes} bytes; the limit is {self.max_headers}",
            )
            return
        if length is not None and length > self.max_body:
            await _problem(send_secured, 413, *self._too_large(length))
            return

        received = 0

        async def receive_bounded() -> Message:
            nonlocal received, overflowed
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    overflowed = True
                    raise BodyTooLarge
            return message

        try:
            await self.app(scope, receive_bounded, send_secured)
        except BodyTooLarge:
            if started:
                raise
            await _problem(send_secured, 413, *self._too_large(None))
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if started:
                raise
            await _problem(
                send_secured,
                500,
                "internal",
                "Internal error",
                "the server failed to answer this request; it was logged with its request id",
            )

    def _too_large(self, length: int | None) -> tuple[str, str, str]:
        size = f"{length} bytes" if length is not None else "more"
        return (
            "body-too-large",
            "Request body too large",
            f"the request body has {size}; the limit is {self.max_body} bytes",
        )


async def _problem(
    send: Send,
    status: int,
    slug: str,
    title: str,
    detail: str,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = json.dumps(
        {"type": TYPE_BASE + slug, "title": title, "status": status, "detail": detail}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *(extra or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
