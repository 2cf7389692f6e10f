"""Who may do what with a model: none < run < edit < owner. The admin counts as owner."""

from fastapi import HTTPException

RANK = {"none": 0, "run": 1, "edit": 2, "owner": 3}


def level(model: dict, user: dict) -> int:
    """The caller's access rank on a model document."""
    if user.get("is_admin") or model["owner"] == user["username"]:
        return RANK["owner"]
    sharing = model.get("sharing") or {}
    personal = (sharing.get("users") or {}).get(user["username"], "none")
    return max(RANK[sharing.get("everyone", "none")], RANK[personal])


def require(model: dict | None, user: dict, need: str, name: str) -> dict:
    """Return the model if the caller has `need` on it; 404 when it is invisible, 403 when not enough."""
    if model is None or level(model, user) == 0:
        raise HTTPException(404, f"model '{name}' not found")
    if level(model, user) < RANK[need]:
        raise HTTPException(403, f"you may not {'change' if need != 'run' else 'run'} model '{name}'")
    return model


def owns(doc: dict, user: dict) -> bool:
    """Datasets and jobs: visible to their owner and the admin only."""
    return bool(user.get("is_admin")) or doc.get("owner") == user["username"]
