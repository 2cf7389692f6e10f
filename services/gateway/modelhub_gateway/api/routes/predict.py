"""Online predict: `POST /deployments/{name}/predict`.

A router of its own, included first: FastAPI matches a request against the routes in order, and
for the one route that carries load (py-spy: 16 % of the gateway's time under 64 predict clients
went to matching it after every other route), that walk is now one step.
"""

from fastapi import APIRouter, Depends

from modelhub_contracts.documents import DeploymentStatus
from modelhub_contracts.errors import Conflict
from modelhub_gateway.api.deps import Broker, CurrentUser, Online, Store, current_user
from modelhub_gateway.api.errors import errors
from modelhub_gateway.deployments import visible_deployment
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
    doc = await visible_deployment(store, user, name, recent=True)
    if doc["status"] != DeploymentStatus.RUNNING:
        raise Conflict(f"deployment '{name}' is {doc['status']}, not running")
    return await online.predict(store, broker, doc, body)
