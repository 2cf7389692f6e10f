"""Caps on request bodies, enforced before a route reads them: each route's own where it has one
(a model upload, online predict, samples added or deleted in bulk), one for every other route.

A declared `Content-Length` over the cap is refused with 413 without reading a byte; a body
without one (chunked) is counted as it streams in and refused once it passes the cap. A request
to a route that needs a token has shown a valid one by then: `gate.TokenGate` sits in front.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass

from fastapi import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelhub_gateway.api import errors

MiB = 1024 * 1024
# Room for the multipart framing and the schema field around the largest accepted package.
UPLOAD_OVERHEAD_BYTES = MiB


class BodyTooLarge(HTTPException):
    """An HTTPException, so that FastAPI's body parsing lets it through as a 413 unchanged."""

    def __init__(self, limit: int, advice: str = "") -> None:
        super().__init__(413, f"request body is over the {limit}-byte limit" + (f"; {advice}" if advice else ""))


@dataclass(frozen=True)
class BodyCap:
    """The largest body of a `method` request whose path matches `path`; `advice` ends the 413's sentence."""

    method: str
    path: re.Pattern[str]
    max_bytes: int
    advice: str = ""


class BodySizeLimit:
    """ASGI middleware: 413 for an HTTP request whose body is over its cap: the first of `caps`
    that matches the request, else `max_bytes`."""

    def __init__(self, app: ASGIApp, max_bytes: int, caps: Sequence[BodyCap] = ()) -> None:
        self.app, self.caps, self.default = app, tuple(caps), BodyCap("", re.compile(""), max_bytes)

    def cap(self, scope: Scope) -> BodyCap:
        method, path = scope["method"], scope["path"]
        return next((c for c in self.caps if c.method == method and c.path.match(path)), self.default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        length = body_length(scope) if scope["type"] == "http" else 0
        if length == 0:
            await self.app(scope, receive, send)
            return
        cap = self.cap(scope)
        if length is None:
            await self._counted(scope, receive, send, cap)
        elif length > cap.max_bytes:
            await refuse(scope, send, BodyTooLarge(cap.max_bytes, cap.advice))
        else:
            await self.app(scope, receive, send)

    async def _counted(self, scope: Scope, receive: Receive, send: Send, cap: BodyCap) -> None:
        received, started = 0, False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > cap.max_bytes:
                raise BodyTooLarge(cap.max_bytes, cap.advice)
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
            await refuse(scope, send, exc)


def body_length(scope: Scope) -> int | None:
    """The body's declared length: 0 when the request carries none, None when its length is not
    known before it is read (chunked, or a malformed length, which the server refuses itself)."""
    length, chunked = 0, False
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                return None
        elif name == b"transfer-encoding":
            chunked = True  # it overrides Content-Length (RFC 9112 6.3)
    return None if chunked else length


async def refuse(scope: Scope, send: Send, exc: HTTPException) -> None:
    """Answer `exc` as the app's handler would, without reading the body. Connection: close, since
    the unread rest of the body cannot be left on the connection."""
    headers = {**(exc.headers or {}), "Connection": "close"}
    status, content = errors.answer(scope["path"], exc.status_code, exc.detail)
    response = JSONResponse(content, status_code=status, headers=headers)
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
            status, content = errors.answer(
                scope["path"],
                429,
                f"the gateway has {self.in_progress} predict requests in progress "
                f"(its limit); retry after {self.retry_after_s} s",
            )
            response = JSONResponse(content, status_code=status, headers={"Retry-After": str(self.retry_after_s)})
            await response(scope, receive, send)
            return
        self.in_progress += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_progress -= 1
