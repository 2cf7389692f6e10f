"""Liveness/readiness: 200 only when the gateway, every service, NATS and MongoDB answer; 503 naming
what is missing otherwise (for `modelhub up`, compose health checks and load balancers)."""

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from modelhub_gateway import readiness
from modelhub_gateway.api.deps import Broker, Settings, Store

router = APIRouter(tags=["health"])


class HealthOut(BaseModel):
    status: str = Field(description="ok, or degraded")
    services: dict[str, bool] = Field(description="each service: answered a ping over NATS")
    nats: bool
    mongo: bool
    missing: list[str] = Field(description="what did not answer (empty when ok)")
    members_missing: list[str] = Field(
        default_factory=list,
        description="on clusters: the NATS servers (`nats:<server name>`) and MongoDB members (`mongo:<host:port>`) "
        "that are down while a majority serves (still 200: the hub works; one more lost would stop it)",
    )
    models: str = Field(
        description="how models run: `jailed` (bubblewrap), or `UNSEALED: why` (the hub was started "
        "with --allow-unsealed where bubblewrap cannot jail them)"
    )


def models_state(settings) -> str:
    """What /health and the web UI say of the models' jail."""
    if settings.models_unsealed:
        return f"UNSEALED: {settings.models_unsealed}"
    if settings.allow_unsealed:
        return "UNSEALED where a replica node cannot run bubblewrap (--allow-unsealed)"
    return "jailed"


@router.get(
    "/health",
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "something the hub needs did not answer"}},
)
async def health(broker: Broker, store: Store, settings: Settings) -> JSONResponse:
    """Public: 200 when the gateway, every service, NATS and MongoDB answer; 503 with what is
    missing otherwise."""
    state, members_missing = await asyncio.gather(
        readiness.check(broker, store), readiness.missing_members(broker, store)
    )
    missing = state.missing
    body = HealthOut(
        status="degraded" if missing else "ok",
        services=state.services,
        nats=state.nats,
        mongo=state.mongo,
        missing=missing,
        members_missing=members_missing,
        models=models_state(settings),
    )
    return JSONResponse(body.model_dump(), status_code=503 if missing else 200)
