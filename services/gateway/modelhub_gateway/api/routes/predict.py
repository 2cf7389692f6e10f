"""Online predict: `POST /deployments/{name}/predict`, the declared route (OpenAPI, FastAPI's
token and body validation and their 401/422 answers).

Its answer is `OnlinePredict.answer`, the same call the lean ASGI path (api/predict_asgi.py) makes
for the requests it answers itself: one implementation of the checks and the answer under both.

A router of its own, included first: FastAPI matches a request against the routes in order, and
for the one route that carries load that walk is one step.
"""

from fastapi import APIRouter, Depends

from modelhub_gateway.api.deps import Broker, CurrentUser, Online, Store, current_user
from modelhub_gateway.api.errors import errors
from modelhub_gateway.schemas import NamePath, PredictIn, PredictOut

router = APIRouter(tags=["deployments"], dependencies=[Depends(current_user)], responses=errors(400, 401, 422))


@router.post(
    "/deployments/{name}/predict", response_model=PredictOut, responses=errors(404, 409, 413, 429, 502, 503, 504)
)
async def predict(
    name: NamePath, body: PredictIn, user: CurrentUser, store: Store, broker: Broker, online: Online
) -> PredictOut:
    """Online inference on a running deployment (needs run). 429 with Retry-After when the
    deployment already has `max_in_flight` samples in flight, 504 after `timeout_s`."""
    return await online.answer(store, broker, user, name, body)
