"""HTTP face of the shared access rule: 404 for what the caller may not see, 403 for what it
may see but not change."""

from fastapi import HTTPException

from modelhub_contracts.access import RANK, level, owns, refusal

__all__ = ["RANK", "level", "owns", "require"]


def require(model: dict | None, user: dict, need: str, name: str) -> dict:
    """Return the model if the caller has `need` on it; 404 when it is invisible, 403 when not enough."""
    if refused := refusal(model, user, need, name):
        raise HTTPException(*refused)
    assert model is not None  # refusal() answers 404 for a missing model
    return model
