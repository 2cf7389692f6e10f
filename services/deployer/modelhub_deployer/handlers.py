"""Thin JetStream subscribers: typed event in, one use-case call, explicit ack.

Deploying can take minutes (pulling a package, building a conda env, starting replicas), far
beyond a consumer's ack_wait. Instead of keeping the message alive with in_progress(), the use
case records `deploying` in Mongo and runs the deployment as a background task tracked by name;
the message is acked once that is recorded. Nothing is lost if the deployer dies mid-deploy:
`Deployer.reconcile()` redeploys every document still `pending`/`deploying` on the next start.
"""

import logging

from faststream import AckPolicy
from faststream.nats import NatsBroker
from faststream.nats.annotations import NatsMessage

from modelhub_contracts import subjects
from modelhub_contracts.events import DeploymentRequested, DeploymentStopRequested
from modelhub_deployer.authz import EventAuthorizer
from modelhub_deployer.deploy import Deployer, DeploySpec
from modelhub_runtime import bus
from modelhub_runtime.logs import log_ids
from modelhub_runtime.messaging import EVENTS_STREAM, settle

log = logging.getLogger(__name__)


def register(broker: NatsBroker, deployer: Deployer, authz: EventAuthorizer) -> None:
    """Subscribe the deployer's durable consumers on the events stream."""

    @broker.subscriber(
        subjects.DEPLOYMENT_REQUESTED,
        stream=EVENTS_STREAM,
        durable=subjects.DURABLE_DEPLOYER_REQUESTS,
        ack_policy=AckPolicy.MANUAL,
        title=bus.receiving("deployer", subjects.DEPLOYMENT_REQUESTED),
    )
    async def on_deployment_requested(event: DeploymentRequested, message: NatsMessage) -> None:
        """Start deploying if the acting user may run the model; acked once recorded."""
        with log_ids(deployment=event.deployment):
            await _requested(event, message)

    async def _requested(event: DeploymentRequested, message: NatsMessage) -> None:
        if refusal := await authz.deploy_refusal(event):
            await settle(message, deployer.refuse(event.deployment, refusal))
            return
        await settle(message, deployer.request(DeploySpec.from_event(event)))

    @broker.subscriber(
        subjects.DEPLOYMENT_STOP_REQUESTED,
        stream=EVENTS_STREAM,
        durable=subjects.DURABLE_DEPLOYER_STOPS,
        ack_policy=AckPolicy.MANUAL,
        title=bus.receiving("deployer", subjects.DEPLOYMENT_STOP_REQUESTED),
    )
    async def on_deployment_stop_requested(event: DeploymentStopRequested, message: NatsMessage) -> None:
        """Stop (cancelling a deploy in flight) if the acting user may; acked once `stopped`."""
        if refusal := await authz.stop_refusal(event):
            log.warning("refused a stop request: %s", refusal)
            await message.ack()
            return
        await settle(message, deployer.stop(event.deployment))
