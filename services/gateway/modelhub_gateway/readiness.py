"""Whether the hub can answer: every service (a ping over NATS), NATS and MongoDB, each asked
with a short timeout. `GET /api/v1/health` and OIP's `GET /v2/health/ready` both read it; /health
also names the cluster members that are down (`missing_members`)."""

import asyncio
from dataclasses import dataclass

from faststream.nats import NatsBroker
from nats.errors import NoRespondersError

from modelhub_contracts import subjects
from modelhub_gateway.store import GatewayStore
from modelhub_runtime import bus, cluster, mongo

TIMEOUT = 1.0
# A subject nobody serves: a connected NATS answers "no responders" at once.
NOBODY = "modelhub.rpc.health.nobody"


@dataclass(frozen=True)
class Readiness:
    services: dict[str, bool]
    nats: bool
    mongo: bool

    @property
    def missing(self) -> list[str]:
        """What did not answer (empty when the hub is ready)."""
        parts = [*self.services.items(), ("nats", self.nats), ("mongo", self.mongo)]
        return [name for name, ok in parts if not ok]


async def check(broker: NatsBroker, store: GatewayStore) -> Readiness:
    """Ask every service, NATS and MongoDB at once; the gateway itself is answering."""
    others = [s for s in subjects.SERVICES if s != "gateway"]
    *ready, nats_ok, mongo_ok = await asyncio.gather(*(_ping(broker, s) for s in others), _nats(broker), _mongo(store))
    return Readiness({"gateway": True, **dict(zip(others, ready, strict=True))}, nats_ok, mongo_ok)


async def missing_members(broker: NatsBroker, store: GatewayStore) -> list[str]:
    """Which cluster members are down (best effort: a probe that fails names nothing more)."""
    nats_down, mongo_down = await asyncio.gather(
        asyncio.wait_for(cluster.missing_nats_members(broker, subjects.STREAM), TIMEOUT),
        asyncio.wait_for(mongo.missing_members(store.db), TIMEOUT),
        return_exceptions=True,
    )
    nats_names = nats_down if isinstance(nats_down, list) else []
    mongo_names = mongo_down if isinstance(mongo_down, list) else []
    return [f"nats:{n}" for n in nats_names] + [f"mongo:{m}" for m in mongo_names]


async def _ping(broker: NatsBroker, service: str) -> bool:
    try:
        await bus.publisher(broker, subjects.RPC_PING.format(service=service)).request(None, timeout=TIMEOUT)
        return True
    except Exception:  # no responder, timeout or a closed connection all mean "not ready"
        return False


async def _nats(broker: NatsBroker) -> bool:
    # a probe of the connection, not a message of the bus's contract: it is not declared
    try:
        await broker.request(None, NOBODY, timeout=TIMEOUT)
        return True  # someone answered after all: NATS is up
    except NoRespondersError:
        return True
    except Exception:  # timeout or closed connection: the bus is not reachable
        return False


async def _mongo(store: GatewayStore) -> bool:
    try:
        await asyncio.wait_for(store.db.command("ping"), TIMEOUT)
        return True
    except Exception:  # timeout, refused connection, auth failure: not usable
        return False
