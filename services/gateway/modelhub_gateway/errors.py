"""The shapes of error answers, and the helper routes use to declare the ones they can give.

Every error is `{"detail": "what went wrong"}`, except 422, which always has FastAPI's validation
shape (a list of issues, each with `loc`, `msg` and `type`) plus a one-line `message`: a 422 that a
route raises with a sentence is wrapped into that shape too, so a generated client sees one shape
per status.
"""

from typing import Any

from pydantic import BaseModel, Field


class ErrorOut(BaseModel):
    detail: str = Field(description="what went wrong, in a sentence")


class Issue(BaseModel):
    loc: list[str | int] = Field(description="where: e.g. ['body', 'name'] or ['query', 'limit']; empty for the request as a whole")
    msg: str
    type: str


class ValidationErrorOut(BaseModel):
    detail: list[Issue]
    message: str = Field(description="the issues in one readable line")


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
    return {code: {"model": ValidationErrorOut if code == 422 else ErrorOut, "description": DESCRIPTIONS[code]}
            for code in codes}


def validation_body(message: str) -> dict[str, Any]:
    """A route's own 422 sentence in the validation shape."""
    return {"detail": [{"loc": [], "msg": message, "type": "value_error"}], "message": message}
