"""Process plumbing shared by the NATS services: readiness pings and logging."""

from faststream.nats import NatsBroker

from modelhub_contracts import bus, logs, subjects


def answer_pings(broker: NatsBroker, service: str) -> None:
    """Answer `modelhub.rpc.ping.<service>`: the gateway's health route asks every service."""

    subject = subjects.RPC_PING.format(service=service)

    @broker.subscriber(subject, title=bus.receiving(service, subject),
                       description="readiness ping from the gateway's health route")
    async def ping() -> dict:
        return {"service": service, "ready": True}


def configure_logging(service: str) -> None:
    """JSON lines on stdout (modelhub_contracts.logs)."""
    logs.configure_logging(service)
