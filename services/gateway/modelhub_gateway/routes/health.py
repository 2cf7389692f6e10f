"""Liveness/readiness: the gateway asks every service over NATS."""

import asyncio

from fastapi import APIRouter

from modelhub_contracts import subjects
from modelhub_gateway.deps import Broker

router = APIRouter(tags=["health"])


async def _ping(broker, service: str) -> bool:
    try:
        await broker.request(None, subjects.RPC_PING.format(service=service), timeout=1.0)
        return True
    except Exception:  # no responder, timeout or a closed connection all mean "not ready"
        return False


@router.get("/health")
async def health(broker: Broker) -> dict:
    """Public: 200 with each service's readiness; `status` is ok only when all are ready."""
    others = [s for s in subjects.SERVICES if s != "gateway"]
    ready = await asyncio.gather(*(_ping(broker, s) for s in others))
    services = {"gateway": True, **dict(zip(others, ready))}
    return {"status": "ok" if all(services.values()) else "degraded", "services": services}
