"""Who sends a request body is known before a byte of it is read.

Why: FastAPI reads and parses a route's body before it solves the route's dependencies, the
token's `current_user` among them: a 300 MB JSON body sent without a token to `POST /models` took
the gateway from 92 MB to 692 MB of memory, to answer 422. In front of the app and of the body
caps (a caller without a token learns nothing, not even the caps), a request that carries a body
to a route that is not public is answered 401 unless its bearer token is valid, through
`deps.request_user`: the routes' own header parsing, token lookup (and its read cache) and 401
answers. The routes look again (from the read cache); a request without a body is left to them.
"""

import re

from fastapi import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from modelhub_gateway.api.deps import request_user
from modelhub_gateway.api.limits import body_length, refuse
from modelhub_gateway.store import GatewayStore


class TokenGate:
    """ASGI middleware: 401 (with `WWW-Authenticate: Bearer` and `Connection: close`) for a request
    that carries a body, to a path that `public` does not match, without a valid bearer token."""

    def __init__(self, app: ASGIApp, store: GatewayStore, public: re.Pattern[str]) -> None:
        self.app, self.store, self.public = app, store, public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and body_length(scope) != 0 and not self.public.match(scope["path"]):
            try:
                await request_user(self.store, scope)
            except HTTPException as exc:
                await refuse(scope, send, exc)
                return
        await self.app(scope, receive, send)
