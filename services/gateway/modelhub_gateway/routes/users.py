"""Users and tokens."""

from fastapi import APIRouter, Depends, HTTPException

from modelhub_gateway import auth
from modelhub_gateway.deps import AdminUser, CurrentUser, Store, current_user
from modelhub_gateway.schemas import UserCreate, UserToken

router = APIRouter(prefix="/users", tags=["users"], dependencies=[Depends(current_user)])


@router.post("", status_code=201, response_model=UserToken)
async def create_user(body: UserCreate, _: AdminUser, store: Store) -> UserToken:
    """Create a user and return its token (admin only; 409 if the name is taken)."""
    token = await auth.create_user(store, body.username)
    if token is None:
        raise HTTPException(409, f"user '{body.username}' already exists")
    return UserToken(username=body.username, token=token)


@router.get("/me")
async def me(user: CurrentUser) -> dict:
    """The caller."""
    return {"username": user["username"], "is_admin": bool(user.get("is_admin"))}


@router.post("/me/token", response_model=UserToken)
async def rotate(user: CurrentUser, store: Store) -> UserToken:
    """Replace the caller's token; the old one stops working at once."""
    return UserToken(username=user["username"], token=await auth.rotate_token(store, user["username"]))
