"""Users and tokens."""

from fastapi import APIRouter, Depends, Response

from modelhub_contracts.errors import Conflict
from modelhub_gateway import auth, lifecycle
from modelhub_gateway.api.deps import AdminUser, CurrentUser, Store, current_user, known_query
from modelhub_gateway.api.errors import errors
from modelhub_gateway.schemas import NamePath, UserCreate, UserList, UserPublic, UserToken

router = APIRouter(
    prefix="/users",
    tags=["users"],
    dependencies=[Depends(current_user), Depends(known_query)],
    responses=errors(400, 401, 422),
)


@router.post("", status_code=201, response_model=UserToken, responses=errors(403, 409, 413))
async def create_user(body: UserCreate, _: AdminUser, store: Store) -> UserToken:
    """Create a user and return its token (admin only; 409 if the name is taken)."""
    token = await auth.create_user(store, body.username)
    if token is None:
        raise Conflict(f"user '{body.username}' already exists")
    return UserToken(username=body.username, token=token)


@router.get("", response_model=UserList, responses=errors(403))
async def list_users(_: AdminUser, store: Store) -> UserList:
    """Every user, disabled ones included (admin only)."""
    return UserList(items=[UserPublic.model_validate(u) for u in await lifecycle.list_users(store)])


@router.delete("/{username}", status_code=204, response_class=Response, responses=errors(403, 404, 409))
async def disable_user(username: NamePath, _: AdminUser, store: Store) -> Response:
    """Off-board a user (admin only): every token of theirs answers 401 from the next request, the
    name stays reserved, and what they own stays. 404 if there is no such (enabled) user."""
    await lifecycle.disable_user(store, username)
    return Response(status_code=204)


@router.get("/me")
async def me(user: CurrentUser) -> dict:
    """The caller."""
    return {"username": user["username"], "is_admin": bool(user.get("is_admin"))}


@router.post("/me/token", response_model=UserToken)
async def rotate(user: CurrentUser, store: Store) -> UserToken:
    """Replace the caller's token; the old one stops working at once."""
    return UserToken(username=user["username"], token=await auth.rotate_token(store, user["username"]))
