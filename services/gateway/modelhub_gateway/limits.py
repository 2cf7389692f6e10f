"""A cap on request bodies, enforced before a route reads them (one for every route, and a
smaller one for online predict, whose body must fit one NATS message).

A declared `Content-Length` over the cap is refused with 413 without reading a byte; a body
without one (chunked) is counted as it streams in and refused once it passes the cap.
"""

import re

from fastapi import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MiB = 1024 * 1024
# Room for the multipart framing and the schema field around the largest accepted package.
UPLOAD_OVERHEAD_BYTES = MiB


class BodyTooLarge(HTTPException):
    """An HTTPException, so that FastAPI's body parsing lets it through as a 413 unchanged."""

    def __init__(self, limit: int, advice: str = "") -> None:
        super().__init__(413, f"request body is over the {limit}-byte limit" + (f"; {advice}" if advice else ""))


class BodySizeLimit:
    """ASGI middleware: 413 for any HTTP request (or only those whose path matches `paths`)
    whose body is larger than `max_bytes`; `advice` ends the message."""

    def __init__(self, app: ASGIApp, max_bytes: int, paths: re.Pattern | None = None, advice: str = "") -> None:
        self.app, self.max_bytes, self.paths, self.advice = app, max_bytes, paths, advice

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.paths is not None and not self.paths.match(scope["path"])):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is None:
            await self._counted(scope, receive, send)
        elif declared > self.max_bytes:
            await _refuse(send, BodyTooLarge(self.max_bytes, self.advice))
        else:
            await self.app(scope, receive, send)

    async def _counted(self, scope: Scope, receive: Receive, send: Send) -> None:
        received, started = 0, False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise BodyTooLarge(self.max_bytes, self.advice)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLarge as exc:
            if started:
                raise
            await _refuse(send, exc)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length itself; count instead
    return None


async def _refuse(send: Send, exc: BodyTooLarge) -> None:
    # Connection: close, since the unread rest of the body cannot be left on the connection.
    response = JSONResponse({"detail": exc.detail}, status_code=413, headers={"Connection": "close"})
    await response(scope={"type": "http"}, receive=_no_body, send=send)


async def _no_body() -> Message:
    return {"type": "http.disconnect"}


class ConcurrencyLimit:
    """ASGI middleware: at most `max_requests` requests whose path matches `paths` in progress at
    once; one more is answered 429 with Retry-After at once, before anything else is done for it.

    It comes before authentication on purpose: under a flood the gateway's own work per request
    (token and deployment lookups in MongoDB) is what queues, so a bound checked after that work
    would never be reached and every client would wait its turn in an unbounded queue (1,000
    clients waited up to 16 s). It reveals nothing: the count is not per deployment or user."""

    def __init__(self, app: ASGIApp, max_requests: int, paths: re.Pattern, retry_after_s: int = 1) -> None:
        self.app, self.max_requests, self.paths, self.retry_after_s = app, max_requests, paths, retry_after_s
        self.in_progress = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.paths.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        if self.in_progress >= self.max_requests:
            response = JSONResponse(
                {
                    "detail": f"the gateway has {self.in_progress} predict requests in progress "
                    f"(its limit); retry after {self.retry_after_s} s"
                },
                status_code=429,
                headers={"Retry-After": str(self.retry_after_s)},
            )
            await response(scope, receive, send)
            return
        self.in_progress += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_progress -= 1
