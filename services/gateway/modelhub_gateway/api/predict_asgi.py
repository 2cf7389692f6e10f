"""Online predict's lean HTTP path: `POST /api/v1/deployments/{name}/predict` and OIP's
`POST /v2/models/{name}[/versions/{version}]/infer` answered by a small ASGI layer in front of
FastAPI's router. It exists only for speed: FastAPI's machinery around this one call (dependency
solving, route matching, exception middleware, response building) costs more CPU than the call
itself, and these are the routes that carry load (bench/README.md).

One code path underneath: a predict it answers goes through `OnlinePredict.answer`, an infer
through `oip.models.infer` (whose samples go through `OnlinePredict.predict`), the very calls the
FastAPI routes (api/routes/predict.py, api/routes/oip.py) make, after the same token lookup
(`auth.authenticate` on the bearer token as `HTTPBearer` reads it), the same name pattern and, for
predict, the same body model (`PredictIn`); its refusals are those calls' domain errors, through
`errors.as_http` and `errors.answer` into the shape the app's handlers give (OIP's under /v2).
`tests/unit/test_gateway_predict_parity.py` and `tests/unit/test_gateway_oip_parity.py` check that
both paths answer alike.

Whatever it does not answer itself (no or unknown token, a name that is no name; for predict, a
body that does not validate or another content type) goes on, body included, to the FastAPI
route, which answers it: 401 and 422 (OIP: 400) bodies come from one place. It sits inside the
concurrency, token (`gate.TokenGate`: a request with a body and no valid token never reaches it),
body-size and read-cache middlewares and inside the tracing middleware, so those apply to it as to
the routes; it reads no body before its own token check either.
"""

import json
import re
from collections.abc import Callable, Mapping

from faststream.nats import NatsBroker
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelhub_contracts.documents import User
from modelhub_contracts.errors import DomainError
from modelhub_contracts.names import NAME_PATTERN
from modelhub_gateway import auth
from modelhub_gateway.api import errors
from modelhub_gateway.oip import codec, models
from modelhub_gateway.oip.protocol import HEADER_LENGTH
from modelhub_gateway.online import OnlinePredict
from modelhub_gateway.schemas import PredictIn
from modelhub_gateway.store import GatewayStore

_NAME = re.compile(NAME_PATTERN)
_JSON = b"application/json"
OIP_INFER = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?/infer$")
_HEADER_LENGTH = HEADER_LENGTH.lower().encode()


class LeanPredict:
    """ASGI middleware: answers `POST {prefix}/deployments/{name}/predict` through
    `OnlinePredict.answer` and `POST /v2/models/{name}[/versions/{version}]/infer` through
    `oip.models.infer`, as the routes do (see the module doc)."""

    def __init__(
        self, app: ASGIApp, prefix: str, store: GatewayStore, broker: NatsBroker, online: Callable[[], OnlinePredict]
    ) -> None:
        self.app, self.store, self.broker, self.online = app, store, broker, online
        self._path = re.compile(rf"^{re.escape(prefix)}/deployments/([^/]+)/predict$")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        predict = self._path.match(path)
        match = predict or OIP_INFER.match(path)
        if match is None:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])  # the last value of a repeated header, as Starlette's .get
        token = _bearer(headers.get(b"authorization"))
        user = await auth.authenticate(self.store, token) if token else None
        name = match.group(1)
        if user is None or not _NAME.match(name):
            await self.app(scope, receive, send)
        elif predict:
            await self._predict(scope, receive, send, headers, user, name)
        else:
            await self._infer(scope, receive, send, headers, user, name, match.group(2))

    async def _predict(self, scope: Scope, receive: Receive, send: Send, headers: dict, user: User, name: str) -> None:
        if not _is_json(headers.get(b"content-type")):
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
            await _refuse(scope, send, error)
            return
        await _answer(send, 200, result.model_dump_json().encode())

    async def _infer(
        self, scope: Scope, receive: Receive, send: Send, headers: dict, user: User, name: str, version: str | None
    ) -> None:
        body = await _read_body(receive)
        try:
            encoded = await models.infer(
                self.online(),
                self.store,
                self.broker,
                user,
                name,
                version,
                body,
                _text(headers.get(_HEADER_LENGTH)),
                _text(headers.get(b"content-encoding")),
            )
        except DomainError as error:  # every refusal: the codec, online.py and rpc.call raise domain errors only
            await _refuse(scope, send, error)
            return
        await _answer(send, 200, encoded.body, codec.content_headers(encoded))


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


async def _refuse(scope: Scope, send: Send, error: DomainError) -> None:
    """As the app's handlers: the error's status and sentence in the path's shape, its Retry-After."""
    exc = errors.as_http(error)
    status, content = errors.answer(scope["path"], exc.status_code, exc.detail)
    body = json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()
    await _answer(send, status, body, exc.headers)


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


async def _answer(send: Send, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
    """The response; JSON unless `headers` give another content-type."""
    given = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    raw = [(b"content-length", str(len(body)).encode()), *given]
    if not any(name == b"content-type" for name, _ in given):
        raw.append((b"content-type", _JSON))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
