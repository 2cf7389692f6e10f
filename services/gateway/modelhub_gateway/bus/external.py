"""Commands from other systems on the bus, as a user (modelhub_contracts.external).

Each command calls the use case of the HTTP route with the same meaning, as the user whose token
the command carries: the same checks, the same refusals (401, 403, 404, 409, 422), the same
internal events afterwards. A refusal is a reply like any other, with the status and the reason.
"""

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi.encoders import jsonable_encoder
from faststream.nats import NatsBroker
from faststream.nats.annotations import NatsMessage
from pydantic import ValidationError, WrapValidator

from modelhub_contracts import subjects
from modelhub_contracts.documents import User
from modelhub_contracts.errors import DomainError
from modelhub_contracts.events import RpcReply
from modelhub_contracts.external import INBOX_PREFIX, TOKEN_HEADER, AddSamples, GetJob, Malformed, SubmitJob, lenient
from modelhub_gateway import auth, datasets, jobs
from modelhub_gateway.bus.sends import publisher
from modelhub_gateway.datasets import owned_dataset, owned_job
from modelhub_gateway.schemas import JobCreate, JobPublic, SamplesAdded, SamplesIn
from modelhub_gateway.store import GatewayStore
from modelhub_runtime import bus
from modelhub_runtime.messaging import refused

log = logging.getLogger(__name__)
SERVICE = "gateway"
Work = Callable[[User], Awaitable[Any]]


async def answer(
    store: GatewayStore, authorization: str | None, command: Any, work: Work, status: int = 200
) -> RpcReply:
    """Run `work` as the user whose bearer token came with the command; every refusal as a reply
    (`status` on success: the HTTP route's own, 201 or 202 where it answers so)."""
    if isinstance(command, Malformed):
        return RpcReply(status=422, detail=f"malformed command: {command.detail()}")
    scheme, _, token = (authorization or "").partition(" ")
    user = await auth.authenticate(store, token.strip()) if scheme.lower() == "bearer" and token.strip() else None
    if user is None:
        return RpcReply(status=401, detail=f"missing or invalid token: send '{TOKEN_HEADER}: Bearer <API token>'")
    try:
        return RpcReply(status=status, data=jsonable_encoder(await work(user)))
    except DomainError as exc:
        return refused(exc)
    except ValidationError as exc:
        return RpcReply(status=422, detail=Malformed(exc).detail())


def register(broker: NatsBroker, store: GatewayStore) -> None:
    """Subscribe the external commands (a queue group: one gateway answers each)."""
    reply = bus.declare(
        broker,
        SERVICE,
        subjects.EXT_REPLIES,
        RpcReply,
        "the answer to an external command, on the caller's inbox (status as in HTTP)",
    )

    publish = publisher(broker)

    async def respond(message: NatsMessage, command: Any, work: Work, status: int = 200) -> None:
        inbox = message.reply_to or ""
        if not inbox.startswith(INBOX_PREFIX + "."):
            log.warning(
                "dropped a command on %s: its reply subject %r is not under %s.",
                message.raw_message.subject,
                inbox,
                INBOX_PREFIX,
            )
            return
        result = await answer(store, (message.headers or {}).get(TOKEN_HEADER), command, work, status)
        await reply.publish(result, subject=inbox)

    def subscriber(subject: str, description: str):
        return broker.subscriber(
            subject, queue=SERVICE, no_reply=True, title=bus.receiving(SERVICE, subject), description=description
        )

    @subscriber(subjects.EXT_ADD_SAMPLES, "add samples to a dataset, as the user whose token the command carries")
    async def on_add_samples(command: Annotated[AddSamples, WrapValidator(lenient)], message: NatsMessage) -> None:
        """As POST /datasets/{name}/samples; data: {"added": n}."""

        async def add(user: User) -> SamplesAdded:
            samples = SamplesIn.model_validate({"samples": [s.model_dump() for s in command.samples]})
            dataset = await owned_dataset(store, user, command.dataset)
            return SamplesAdded(added=await datasets.add_samples(store, dataset, samples.samples))

        await respond(message, command, add, status=201)

    @subscriber(subjects.EXT_SUBMIT_JOB, "run a deployment over a dataset, as the user; data: the job")
    async def on_submit_job(command: Annotated[SubmitJob, WrapValidator(lenient)], message: NatsMessage) -> None:
        """As POST /datasets/{name}/jobs: JobSubmitted goes out once the job is recorded."""

        async def submit(user: User) -> JobPublic:
            body = JobCreate(deployment=command.deployment, outputs=command.outputs, inputs=command.inputs)
            dataset = await owned_dataset(store, user, command.dataset)
            return jobs.public(await jobs.submit_job(store, publish, user, dataset, body))

        await respond(message, command, submit, status=202)

    @subscriber(subjects.EXT_GET_JOB, "a job's status and counts, as the user; data: the job")
    async def on_get_job(command: Annotated[GetJob, WrapValidator(lenient)], message: NatsMessage) -> None:
        """As GET /jobs/{id}: how the caller follows its job's progress."""

        async def get(user: User) -> JobPublic:
            return await jobs.with_queue(store, await owned_job(store, user, command.job_id))

        await respond(message, command, get)
