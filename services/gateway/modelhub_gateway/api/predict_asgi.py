"""Online predict's lean HTTP path: `POST /api/v1/deployments/{name}/predict` answered by a small
ASGI layer in front of FastAPI's router. It exists only for speed: FastAPI's machinery around this
one call (dependency solving, route matching, exception middleware, response building) costs more
CPU than the call itself, and this is the one route that carries load (bench/README.md).

One code path underneath: a request it answers goes through `OnlinePredict.answer`, the very call
the FastAPI route (api/routes/predict.py) makes, after the same token lookup (`auth.authenticate`
on the bearer token as `HTTPBearer` reads it), the same name pattern and the same body model
(`PredictIn`); its refusals are that call's domain errors, through `errors.as_http` into the shape
the app's handlers give. `tests/unit/test_gateway_predict_parity.py` checks that both paths answer
alike.

Whatever it does not answer itself (no or unknown token, a name or body that does not validate,
another content type) goes on, body included, to the FastAPI route, which answers it: 401 and 422
bodies come from one place. It sits inside the concurrency, token (`gate.TokenGate`: a request with
a body and no valid token never reaches it), body-size and read-cache middlewares and inside the
tracing middleware, so those apply to it as to the route; it reads no body before its own token
check either.
"""

import json
import re
from collections.abc import Callable, Mapping

from fastapi import HTTPException
from faststream.nats import NatsBroker
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelhub_contracts.errors import DomainError
from modelhub_contracts.names import NAME_PATTERN
from modelhub_gateway import auth
from modelhub_gateway.api import errors
from modelhub_gateway.online import OnlinePredict
from modelhub_gateway.schemas import PredictIn
from modelhub_gateway.store import GatewayStore

_NAME = re.compile(NAME_PATTERN)
_JSON = b"application/json"


class LeanPredict:
    """ASGI middleware: answers `POST {prefix}/deployments/{name}/predict` through
    `OnlinePredict.answer`, as the route does (see the module doc)."""

    def __init__(
        self, app: ASGIApp, prefix: str, store: GatewayStore, broker: NatsBroker, online: Callable[[], OnlinePredict]
    ) -> None:
        self.app, self.store, self.broker, self.online = app, store, broker, online
        self._path = re.compile(rf"^{re.escape(prefix)}/deployments/([^/]+)/predict$")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = self._path.match(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if match is None:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])  # the last value of a repeated header, as Starlette's .get
        token = _bearer(headers.get(b"authorization"))
        user = await auth.authenticate(self.store, token) if token else None
        name = match.group(1)
        if user is None or not _NAME.match(name) or not _is_json(headers.get(b"content-type")):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        try:
            request = PredictIn.model_validate_json(body)
        except ValidationError:
            await self.app(scope, _replay(body, receive), send)
            return
        try:
            result = await self.online().answer(self.store, self.broker, user, name, request)
        except DomainError as error:  # every refusal: online.py and rpc.call raise domain errors only
            exc = errors.as_http(error)
            await _answer(send, exc.status_code, _error_body(exc), exc.headers)
            return
        await _answer(send, 200, result.model_dump_json().encode())


def _bearer(authorization: bytes | None) -> str | None:
    """The token as FastAPI's HTTPBearer(auto_error=False) reads it: `<scheme> <credentials>`, the
    scheme `bearer` in any case."""
    if not authorization:
        return None
    scheme, _, credentials = authorization.decode("latin-1").partition(" ")
    return credentials if scheme.lower() == "bearer" and credentials else None


def _is_json(content_type: bytes | None) -> bool:
    return content_type is not None and content_type.split(b";")[0].strip().lower() == _JSON


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client went away; what came is validated (and fails) as the route would
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the already-read body once, then whatever the connection says next."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _error_body(exc: HTTPException) -> bytes:
    """As the app's HTTPException handler: `{"detail": ...}`, and the validation shape for a 422."""
    content = (
        errors.validation_body(exc.detail)
        if exc.status_code == 422 and isinstance(exc.detail, str)
        else {"detail": exc.detail}
    )
    return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()


async def _answer(send: Send, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
    raw = [(b"content-type", _JSON), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
