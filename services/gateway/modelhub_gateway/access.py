"""The gateway's face of the shared access rule: NotFound (404) for what the caller may not see,
Forbidden (403) for what it may see but not change."""

from modelhub_contracts.access import RANK, level, owns, refusal
from modelhub_contracts.documents import Actor, Model

__all__ = ["RANK", "level", "owns", "require"]


def require(model: Model | None, user: Actor, need: str, name: str) -> Model:
    """Return the model if the caller has `need` on it; NotFound when it is invisible, Forbidden when
    not enough."""
    if refused := refusal(model, user, need, name):
        raise refused
    assert model is not None  # refusal() refuses a missing model
    return model
