"""Events that cross service boundaries. Frozen, past tense, each with an id for idempotency."""

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# How long a batch of online samples that is not full may wait for more (a deployment option).
# Only waited while the deployment is busy: a lone request is sent at once (see the worker's
# online.py); Serve's own @serve.batch on the replica waits at most this too.
DEFAULT_BATCH_WAIT_MS = 2.0
# How long an autoscaled deployment's load stays under its replicas' before Serve removes one
# (Serve's downscale_delay_s, and its default); with min_replicas 0, idle that long it has none.
DEFAULT_SCALE_DOWN_DELAY_S = 600.0


def _new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


# The version of the event contract (docs/asyncapi.yaml) that an event was written against. The rule:
# adding an optional field (one with a default that keeps the old meaning) does not change it; a
# change an older consumer would misread -- a field removed, renamed, retyped, made required, or
# given another meaning -- bumps it by one for that event class (override `schema_version`'s
# default there), and consumers keep reading the older version until no publisher sends it.
SCHEMA_VERSION = 1


class Event(BaseModel):
    """An event on the JetStream stream (`modelhub.evt.>`)."""

    model_config = ConfigDict(frozen=True)

    schema_version: int = Field(
        default=SCHEMA_VERSION,
        ge=1,
        description="version of this event's contract; bumped only by incompatible changes",
    )
    event_id: str = Field(default_factory=_new_id, description="unique id; also the Nats-Msg-Id")
    occurred_at: datetime = Field(default_factory=utcnow, description="when it happened (UTC)")


class DeploymentRequested(Event):
    # 2: num_gpus became a number from 0 to 1 (was 0 or 1); min_replicas/max_replicas added.
    # A version-1 event reads the same (its num_gpus is an integer, no autoscaling).
    # scale_down_delay_s is an optional addition (no bump, by the rule above): an event without it
    # reads as Serve's default, DEFAULT_SCALE_DOWN_DELAY_S.
    schema_version: int = Field(
        default=2, ge=1, description="version of this event's contract; bumped only by incompatible changes"
    )
    deployment: str = Field(description="deployment name, also the Ray Serve application name")
    model: str = Field(description="model name")
    version: int = Field(description="model version number")
    package_object: str = Field(description="object name of the zip in the packages object store")
    package_sha256: str = Field(description="sha256 of the zip, checked after download")
    mini_batch: int = Field(description="max samples per Model.predict call (@serve.batch)")
    num_replicas: int = Field(description="Serve replicas (with autoscaling: how many to start with)")
    num_gpus: float = Field(description="GPUs per replica, 0 to 1 (a fraction shares a GPU)")
    custom_env: bool = Field(description="build runtime_env from requirements.txt / environment.yml")
    requested_by: str = Field(description="acting user")
    batch_wait_ms: float = Field(
        default=DEFAULT_BATCH_WAIT_MS, description="longest a batch that is not full waits for more samples"
    )
    min_replicas: int | None = Field(default=None, description="autoscaling: fewest replicas (with max_replicas)")
    max_replicas: int | None = Field(default=None, description="autoscaling: most replicas; None: num_replicas, fixed")
    scale_down_delay_s: float | None = Field(
        default=None,
        description="autoscaling: seconds of too little load before a replica goes (Serve's downscale_delay_s); "
        "None: DEFAULT_SCALE_DOWN_DELAY_S",
    )


class DeploymentStopRequested(Event):
    deployment: str = Field(description="deployment name")
    requested_by: str = Field(description="acting user")


class JobSubmitted(Event):
    job_id: str = Field(description="job id")
    attempt: int = Field(default=1, description="1 for the first run, +1 per retry")
    dataset: str = Field(description="dataset name")
    deployment: str = Field(description="deployment (Serve application) to call")
    inputs: dict[str, str] = Field(description="model input name -> sample field ('filepath' included)")
    outputs: dict[str, str] = Field(description="model output name -> sample field to write")
    output_types: dict[str, str] = Field(description="model output name -> schema type")
    mini_batch: int = Field(
        description="samples per Model.predict call; the scheduler's tasks are whole mini-batches "
        "(8, as many as fit 512 samples, at least one; up to 2,048 samples on a deployment measured fast)"
    )
    sample_ids: list[str] | None = Field(
        default=None,
        description="only these samples (a retry's failed ones, an incremental run's selection); None: all",
    )
    submitted_by: str = Field(description="acting user")
    until_sample_id: str | None = Field(default=None, description="the dataset's last sample id at submission")
    part: int = Field(
        default=0,
        description="sample ids (a retry's, an incremental run's) travel in parts; tasks of each get its number",
    )
    traceparent: str | None = Field(default=None, description="W3C trace context of the submit: the job's trace")


class JobScheduled(Event):
    job_id: str = Field(description="job id")
    attempt: int = Field(description="attempt number")
    num_tasks: int = Field(description="tasks published")
    num_samples: int = Field(description="samples covered by those tasks")


class JobRefused(Event):
    job_id: str = Field(description="job id")
    attempt: int = Field(description="attempt number")
    reason: str = Field(description="why the scheduler would not run it (e.g. the acting user's rights)")


class JobCancelled(Event):
    """Informational: a user cancelled the job (the gateway publishes it once the cancel is recorded).
    No modelhub service consumes it -- workers and the scheduler read the job's `cancel_requested`
    flag in MongoDB, which is what stops its writes -- it is published for other systems on the bus
    (with interest retention, the stream keeps it only while some consumer of it exists)."""

    job_id: str = Field(description="job id")
    requested_by: str = Field(description="acting user")


class TaskScheduled(Event):
    task_id: str = Field(description="deterministic: {job_id}.{attempt}.{index}")
    job_id: str = Field(description="job id")
    attempt: int = Field(description="attempt number")
    dataset: str = Field(description="dataset name")
    deployment: str = Field(description="deployment to call")
    sample_ids: list[str] = Field(description="samples of this task: one or more mini-batches")
    inputs: dict[str, str] = Field(description="model input name -> sample field")
    outputs: dict[str, str] = Field(description="model output name -> sample field")
    output_types: dict[str, str] = Field(description="model output name -> schema type")
    mini_batch: int | None = Field(
        default=None,
        description="samples per Model.predict call: the task's samples "
        "go to the deployment in calls of at most this many "
        "(None: all of them in one call)",
    )
    traceparent: str | None = Field(
        default=None,
        description="W3C trace context of the job's trace (tasks are "
        "published long after the submit, from a stored queue)",
    )


class SampleOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    sample_id: str = Field(description="sample id")
    ok: bool = Field(description="True: fields written; False: failed with error")
    error: str | None = Field(default=None, description="why it failed")


# Outcomes one SampleAnnotated carries at most: with errors capped at MAX_ERROR_CHARS, a full
# event stays far under NATS's 1 MiB payload limit whatever the task's mini_batch (up to 4096).
OUTCOMES_PER_EVENT = 512
MAX_ERROR_CHARS = 600


class SampleAnnotated(Event):
    """A task's outcomes, one per sample, in the task's sample order. A task of more than
    OUTCOMES_PER_EVENT samples announces them in `chunks` events, chunk k holding the samples
    k*OUTCOMES_PER_EVENT onwards (fixed by position, so whoever publishes chunk k, the worker or
    the dead-letter handler, publishes it for the same samples under the same event id)."""

    job_id: str = Field(description="job id")
    attempt: int = Field(description="attempt number")
    task_id: str = Field(description="task that produced it")
    samples: list[SampleOutcome] = Field(description="each sample's outcome")
    chunk: int = Field(default=0, description="which part of the task's outcomes this is (0-based)")
    chunks: int = Field(default=1, description="how many parts the task's outcomes travel in")


# Read by the scheduler, which gets every chunk of every task: FastStream decoding and validating a
# SampleAnnotated's 512 outcomes took ~1.4 ms a message, this head (through messaging's `reads`)
# ~0.6 ms, on FastStream's test broker (bench/README.md: the scheduler's share of the stack's CPU).
class SampleAnnotatedHead(BaseModel):
    """The part of a SampleAnnotated that the scheduler reads: which task, and which of its parts.
    The same message on the same subject; its outcomes are skipped, not decoded."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    task_id: str = Field(description="task that produced it")
    chunk: int = Field(default=0, description="which part of the task's outcomes this is (0-based)")
    chunks: int = Field(default=1, description="how many parts the task's outcomes travel in")


class RpcReply(BaseModel):
    """Reply to a request/reply command: `status` mirrors the HTTP status the gateway returns."""

    status: int = Field(default=200, description="HTTP-like status code")
    detail: str | None = Field(default=None, description="error message when status >= 400")
    data: Any = Field(default=None, description="the command's result document")
    retry_after: float | None = Field(default=None, description="seconds to wait before retrying (with 429)")


class PredictRequest(BaseModel):
    """Online predict: the gateway has checked the caller and the inputs; the worker runs them."""

    deployment: str = Field(description="deployment name")
    inputs: dict[str, list[Any]] = Field(description="input name -> values, one per sample")
    output_types: dict[str, str] = Field(description="declared output types, checked per value")
    mini_batch: int = Field(default=1, description="the deployment's largest Model.predict batch")
    num_replicas: int = Field(default=1, description="the deployment's replicas (bounds its calls in flight)")
    batch_wait_ms: float = Field(
        default=DEFAULT_BATCH_WAIT_MS, description="longest a batch that is not full waits for more samples"
    )
    timeout_s: float = Field(default=60.0, description="answer 504 and cancel the Serve calls after this")


class CreateModel(BaseModel):
    name: str
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    owner: str


class UpdateModel(BaseModel):
    name: str
    description: str | None = None
    tags: list[str] | None = None
    acting_user: str


class DeleteModel(BaseModel):
    name: str
    acting_user: str


class DeleteVersion(BaseModel):
    name: str = Field(description="model name")
    version: int = Field(ge=1, description="the version to delete")
    acting_user: str


class SetAlias(BaseModel):
    name: str = Field(description="model name")
    alias: str = Field(description="the alias to point (names.ALIAS_PATTERN)")
    version: int = Field(ge=1, description="the version it points to from now on")
    acting_user: str


class RemoveAlias(BaseModel):
    name: str = Field(description="model name")
    alias: str = Field(description="the alias to remove")
    acting_user: str


class SetSharing(BaseModel):
    name: str
    everyone: Literal["none", "run", "edit"] = "none"
    users: dict[str, Literal["run", "edit"]] = Field(default_factory=dict)
    acting_user: str


class AddVersion(BaseModel):
    name: str = Field(description="model name")
    upload_object: str = Field(description="object name of the uploaded zip in the packages store")
    filename: str = Field(default="package.zip", description="the uploaded file's name, used in error messages")
    model_schema: dict[str, Any] | None = Field(
        default=None,
        description="the model schema (API.md section 4); None: derived from an MLflow model's signature",
    )
    local_inputs: list[str] = Field(
        default_factory=list, description="without a schema: the MLflow signature's string inputs that are `local`"
    )
    output_types: dict[str, str] = Field(
        default_factory=dict, description="without a schema: the MLflow signature's outputs' types (else `json`)"
    )
    acting_user: str
