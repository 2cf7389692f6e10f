"""Domain errors: what a use case raises when it refuses, knowing nothing of HTTP or NATS.

The kinds are few on purpose (cosmicpython's `InvalidSku`, widened): the thing is not there or may
not be seen (`NotFound`), it may be seen but not done (`Forbidden`), it conflicts with the current
state (`Conflict`), or the request's values are not acceptable (`Invalid`); two more say the request
met a bound rather than a rule: it is too large for one message (`TooLarge`), or too much is in flight
(`Busy`, with when to retry). Each carries the status
code that RPC replies (`RpcReply.status`) and the gateway's HTTP answers use for it, so an error
raised in the registry reaches the HTTP caller as the same kind, with the same sentence: the
registry replies with `messaging.refused(error)`, the gateway's `rpc.call` raises `from_reply`
again, and the gateway's one exception handler answers it.
"""


class DomainError(Exception):
    """A refusal with a sentence for the user. `status` is its wire code (HTTP and RPC replies)."""

    status: int = 400

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after

    def __str__(self) -> str:
        return self.message


class NotFound(DomainError):
    """No such thing, or the caller may not see it (the two are not told apart: names do not leak)."""

    status = 404


class Forbidden(DomainError):
    """The caller may see it, but not do this to it."""

    status = 403


class Conflict(DomainError):
    """It conflicts with the current state: a name taken, something still running or in use."""

    status = 409


class Invalid(DomainError):
    """The request is well-formed but its values are not acceptable."""

    status = 422


class TooLarge(DomainError):
    """The request is larger than one message may carry: send less per request."""

    status = 413


class Busy(DomainError):
    """Over a bound on work in flight: refused at once, to retry after `retry_after` seconds."""

    status = 429


KINDS: dict[int, type[DomainError]] = {
    kind.status: kind for kind in (NotFound, Forbidden, Conflict, Invalid, TooLarge, Busy)
}


def from_status(status: int, message: str, retry_after: float | None = None) -> DomainError:
    """The domain error an RPC reply's status stands for; a status of no named kind (500, 503, ...)
    keeps its code on a plain `DomainError`."""
    kind = KINDS.get(status)
    if kind is not None:
        return kind(message, retry_after=retry_after)
    error = DomainError(message, retry_after=retry_after)
    error.status = status  # an instance's own code, for the kinds not named above
    return error
