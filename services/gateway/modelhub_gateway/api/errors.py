"""The shapes of error answers, and the helper routes use to declare the ones they can give.

Every error is `{"detail": "what went wrong"}`, as docs/API.md promises. A 422 also carries
`errors`, the issues one by one (`loc`, `msg`, `type`, as FastAPI's validation lists them): a
request FastAPI refuses and a value a route refuses with a sentence answer in that one shape, so a
generated client sees one shape per status.

Under `/v2` (the Open Inference Protocol) errors are OIP's: `{"error": "what went wrong"}`, and
the protocol has no 422 or 409: a request it cannot take is a 400 and a model that is not running
is unavailable (503), as KServe answers. `answer` picks the shape by path; the app's handlers, the
body caps, the token gate and the lean predict path all answer through it.
"""

import math
import re
from typing import Any

from fastapi import HTTPException
from pydantic import BaseModel, Field

from modelhub_contracts.errors import DomainError
from modelhub_gateway.oip.protocol import OipErrorOut

OIP_PATH = re.compile(r"^/v2(/|$)")
OIP_STATUS = {422: 400, 409: 503}


class ErrorOut(BaseModel):
    detail: str = Field(description="what went wrong, in a sentence")


class Issue(BaseModel):
    loc: list[str | int] = Field(
        description="where: e.g. ['body', 'name'] or ['query', 'limit']; empty for the request as a whole"
    )
    msg: str
    type: str


class ValidationErrorOut(BaseModel):
    detail: str = Field(description="the issues in one readable line")
    errors: list[Issue] = Field(description="each issue: where, what, and its kind")


DESCRIPTIONS = {
    400: "The request is malformed (e.g. the uploaded file is not a valid model package).",
    401: "Missing or invalid bearer token.",
    403: "You may see this, but not do this to it.",
    404: "No such thing, or you may not see it.",
    409: "It conflicts with the current state (a name taken, something still running or in use).",
    413: "The request or the file is too large.",
    415: "The file is not of a kind this route can read.",
    422: "The request is well-formed but its values are not acceptable.",
    429: "Too many requests in progress; retry after the Retry-After seconds.",
    500: "The service failed; nothing was kept.",
    502: "The model failed on this input.",
    503: "A service behind the gateway did not answer; try again.",
    504: "The deployment did not answer in time.",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses, each with its model and meaning."""
    return {
        code: {"model": ValidationErrorOut if code == 422 else ErrorOut, "description": DESCRIPTIONS[code]}
        for code in codes
    }


def oip_errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses of an OIP route (`{"error"}`)."""
    return {
        code: {"model": OipErrorOut, "description": OIP_DESCRIPTIONS.get(code, DESCRIPTIONS[code])} for code in codes
    }


OIP_DESCRIPTIONS = {
    400: "The request is malformed, or its tensors do not fit the model (names, datatypes, shapes).",
    503: "The model (deployment) is not running, or a service behind the gateway did not answer.",
}


def answer(path: str, status: int, detail: Any) -> tuple[int, dict[str, Any]]:
    """The status and JSON body of an error answer to a request for `path`: OIP's under `/v2`,
    else `{"detail"}` (with the validation shape for a 422 given as a sentence)."""
    if OIP_PATH.match(path):
        return OIP_STATUS.get(status, status), {"error": detail if isinstance(detail, str) else str(detail)}
    if status == 422 and isinstance(detail, str):
        return status, validation_body(detail)
    return status, {"detail": detail}


def validation_body(message: str, issues: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A 422 answer: the sentence, and the issues (a route's own sentence is its one issue)."""
    return {
        "detail": message,
        "errors": issues if issues is not None else [{"loc": [], "msg": message, "type": "value_error"}],
    }


def as_http(error: DomainError) -> HTTPException:
    """The HTTP answer a domain error stands for: its status and sentence, and Retry-After (whole
    seconds, rounded up) when it said when to retry. The app's handler and online predict's lean
    path both answer through this."""
    headers = {"Retry-After": str(math.ceil(error.retry_after))} if error.retry_after else None
    return HTTPException(error.status, error.message, headers=headers)
