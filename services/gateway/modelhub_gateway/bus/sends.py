"""What the gateway sends on the bus: each subject declared on its broker with its payload type
(modelhub_runtime.bus), so that the AsyncAPI document shows the gateway's `send` operations, and
the `Publish` the use cases send events through."""

from functools import partial

from faststream.nats import NatsBroker

from modelhub_contracts import subjects
from modelhub_contracts.events import (
    AddVersion,
    CreateModel,
    DeleteModel,
    DeleteVersion,
    DeploymentRequested,
    DeploymentStopRequested,
    Event,
    JobCancelled,
    JobSubmitted,
    PredictRequest,
    RemoveAlias,
    SetAlias,
    SetSharing,
    UpdateModel,
)
from modelhub_gateway.deployments import Publish
from modelhub_runtime import bus
from modelhub_runtime.messaging import publish_event

SERVICE = "gateway"


def declare(broker: NatsBroker) -> None:
    """Declare every event the gateway publishes and every command it requests."""
    send = partial(bus.declare, broker, SERVICE)
    send(subjects.DEPLOYMENT_REQUESTED, DeploymentRequested, "a user asked for a deployment (POST .../deployments)")
    send(subjects.DEPLOYMENT_STOP_REQUESTED, DeploymentStopRequested, "a user asked to stop a deployment")
    send(subjects.JOB_SUBMITTED, JobSubmitted, "a job (or a retry's part) to plan into tasks")
    send(subjects.JOB_CANCELLED, JobCancelled, JobCancelled.__doc__ or "")
    send(subjects.RPC_CREATE_MODEL, CreateModel, "request/reply: create a model (reply: RpcReply)")
    send(subjects.RPC_UPDATE_MODEL, UpdateModel, "request/reply: change a model's description/tags")
    send(subjects.RPC_DELETE_MODEL, DeleteModel, "request/reply: delete a model")
    send(subjects.RPC_SET_SHARING, SetSharing, "request/reply: replace a model's sharing")
    send(subjects.RPC_ADD_VERSION, AddVersion, "request/reply: check an uploaded package and add it as a version")
    send(subjects.RPC_DELETE_VERSION, DeleteVersion, "request/reply: delete a version no deployment uses")
    send(subjects.RPC_SET_ALIAS, SetAlias, "request/reply: point a model's alias at a version")
    send(subjects.RPC_REMOVE_ALIAS, RemoveAlias, "request/reply: remove a model's alias")
    send(subjects.RPC_PREDICT, PredictRequest, "request/reply: online predict on a running deployment")
    for service in subjects.SERVICES:
        if service != SERVICE:
            send(subjects.RPC_PING.format(service=service), None, f"request/reply: is {service} ready?")


def publisher(broker: NatsBroker) -> Publish:
    """What the use cases publish through: `publish_event` on the broker (its declared
    publishers, the bus contract); tests hand the use cases a list's append instead."""

    async def publish(subject: str, event: Event) -> None:
        await publish_event(broker, subject, event)

    return publish
