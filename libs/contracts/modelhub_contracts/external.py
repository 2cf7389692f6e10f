"""Commands other systems send on the bus as a user (docs/API.md, "Other systems on the bus").

A command is a NATS request on `modelhub.ext.cmd.*` carrying the user's API token in the
`Authorization: Bearer <token>` header. The gateway (which holds the users) checks the token and
applies exactly the rules of the HTTP route with the same meaning, as that user, then emits the
internal events itself; the reply is an `RpcReply` (`status` as in HTTP, `detail`, `data`). The
embedded stack's `integration` NATS user may publish only these subjects and read only its own
inbox (`_INBOX_ext.integration.>`), so it can neither publish internal events nor read other
clients' traffic, and a token decides what each command may do.
"""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidatorFunctionWrapHandler

TOKEN_HEADER = "Authorization"
# Replies go only to inboxes under this prefix: a command whose reply subject is anything else (an
# internal subject, say) is dropped, so a caller cannot make the gateway publish where it may not.
INBOX_PREFIX = "_INBOX_ext"


class Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ExternalSample(Command):
    filepath: str = Field(description="absolute path of the sample's file")
    fields: dict[str, Any] = Field(default_factory=dict, description="the sample's own fields")


class AddSamples(Command):
    """Add samples to a dataset the user owns (as POST /datasets/{name}/samples)."""

    dataset: str = Field(description="dataset name")
    samples: list[ExternalSample] = Field(description="1 to 10,000 samples")


class SubmitJob(Command):
    """Run a deployment over a dataset (as POST /datasets/{name}/jobs); the reply's data is the job."""

    dataset: str = Field(description="dataset name (owned by the user)")
    deployment: str = Field(description="a running deployment of a model the user may run")
    outputs: dict[str, str] = Field(description="model output name -> sample field to write")
    inputs: dict[str, str] = Field(default_factory=dict, description="model input name -> sample field")


class GetJob(Command):
    """A job's status and counts (as GET /jobs/{id}): how the caller follows its progress."""

    job_id: str = Field(description="the id a SubmitJob reply gave")


class Malformed:
    """A command body that did not validate: the handler replies 422 with `errors` instead of
    FastStream dropping it unanswered (the caller would only see a timeout)."""

    def __init__(self, error: ValidationError | ValueError) -> None:
        self.error = error

    def detail(self) -> str:
        if isinstance(self.error, ValidationError):
            return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in self.error.errors())
        return str(self.error)


def lenient(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """A pydantic wrap validator: the command, or Malformed (the schema stays the command's)."""
    try:
        return handler(value)
    except (ValidationError, ValueError) as exc:
        return Malformed(exc)
