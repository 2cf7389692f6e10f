"""The shapes of error answers, and the helper routes use to declare the ones they can give.

Every error is `{"detail": "what went wrong"}`, as docs/API.md promises. A 422 also carries
`errors`, the issues one by one (`loc`, `msg`, `type`, as FastAPI's validation lists them): a
request FastAPI refuses and a value a route refuses with a sentence answer in that one shape, so a
generated client sees one shape per status.
"""

import math
from typing import Any

from fastapi import HTTPException
from pydantic import BaseModel, Field

from modelhub_contracts.errors import DomainError


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
