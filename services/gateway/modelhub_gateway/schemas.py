"""HTTP request/response models (separate from events and from stored documents)."""

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from modelhub_contracts.events import DEFAULT_BATCH_WAIT_MS, DEFAULT_SCALE_DOWN_DELAY_S
from modelhub_contracts.model_schema import META_SCHEMA
from modelhub_contracts.names import ALIAS_PATTERN, ALIAS_RULE, NAME_PATTERN, NAME_RULE, valid_name

Name = Annotated[str, Field(pattern=NAME_PATTERN, description=NAME_RULE), AfterValidator(valid_name)]

# A sample field's name: what MongoDB can store and query as a path (no '.', no leading '$', no NUL).
FIELD_NAME_PATTERN = "^[^.$\\u0000][^.\\u0000]{0,255}$"
FieldName = Annotated[str, Field(pattern=FIELD_NAME_PATTERN)]
# A field's value: any JSON (keys inside it are stored as they are; see `valid_unicode` for NUL).
JsonValue = Annotated[Any, Field(description="any JSON value")]

# Path parameters carry their real bounds, so out-of-range input is a 422, never a 500.
NamePath = Annotated[str, Path(pattern=NAME_PATTERN, description=NAME_RULE)]
VersionPath = Annotated[int, Path(ge=1, le=2**63 - 1, description="a version number (1, 2, ...)")]
IdPath = Annotated[str, Path(min_length=1, max_length=64, description="an id the API gave")]
AliasPath = Annotated[str, Path(pattern=ALIAS_PATTERN, description=f"a model's alias: {ALIAS_RULE}")]
# The deploy body's `version` may name an alias instead of a number: "@prod".
AliasRef = Annotated[
    str,
    Field(
        pattern="^@" + ALIAS_PATTERN.removeprefix("^"),
        description="`@` and one of the model's aliases: the version it points to now",
    ),
]
FieldPath = Annotated[
    str, Path(pattern=FIELD_NAME_PATTERN, description="a sample field's name (no '.', not starting with '$')")
]


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def valid_unicode(value: Any) -> Any:
    """JSON may escape half of a surrogate pair (`"\\ud800"`), which is no character at all and
    which MongoDB cannot store: such halves become U+FFFD, in keys and values at any depth, and
    so does a NUL in a key; an integer beyond 64 bits becomes the nearest double."""
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value) if _LONE_SURROGATE.search(value) else value
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        return float(value)  # BSON integers are 64-bit; JSON readers take big numbers as doubles too
    if isinstance(value, dict):  # BSON keys are C strings: a NUL in one cannot be stored either
        return {valid_unicode(k).replace("\x00", "\ufffd"): valid_unicode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [valid_unicode(v) for v in value]
    return value


class Request(BaseModel):
    """A request body: unknown properties are refused (422), as its schema says
    (`additionalProperties: false`); text is made storable (see `valid_unicode`)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _storable_text(cls, data: Any) -> Any:
        return valid_unicode(data)


class UserCreate(Request):
    username: Name


class UserPublic(BaseModel):
    username: str
    is_admin: bool
    created_at: datetime | None = None
    disabled: bool


class UserList(BaseModel):
    items: list[UserPublic]


class UserToken(BaseModel):
    username: str
    token: str


class ModelCreate(Request):
    name: Name
    description: str = Field(default="", max_length=10_000)
    tags: list[str] = Field(default_factory=list, max_length=100)


class ModelPatch(Request):
    description: str | None = Field(default=None, max_length=10_000)
    tags: list[str] | None = Field(default=None, max_length=100)


class Sharing(Request):
    everyone: Literal["none", "run", "edit"] = "none"
    users: dict[Name, Literal["run", "edit"]] = Field(default_factory=dict)


class VersionPublic(BaseModel):
    version: int
    sha256: str
    size_bytes: int
    schema_: dict = Field(alias="schema", serialization_alias="schema")
    format: Literal["python", "mlflow", "onnx"] = Field(
        default="python",
        description="what runs the package: its own Model class (python), or an adapter of the replica's (API.md §3)",
    )
    created_at: datetime
    created_by: str
    environment_files: list[str] | None = Field(
        default=None,
        description="the package's environment.yml / requirements.txt, which custom_env builds from "
        "(null: uploaded before versions recorded it)",
    )


class ModelPublic(BaseModel):
    name: str
    description: str
    tags: list[str]
    owner: str
    created_at: datetime
    updated_at: datetime
    sharing: Sharing
    versions: list[VersionPublic]
    aliases: dict[str, int] = Field(default_factory=dict, description="each alias and the version it points to")


class AliasSet(Request):
    # 2**53 - 1: the largest integer a JSON number carries exactly everywhere (a body's number past
    # 64 bits is refused by the parser before any bound, with another message)
    version: int = Field(ge=1, le=2**53 - 1, description="the version the alias points to from now on")


class AliasPublic(BaseModel):
    alias: str
    version: int
    set_by: str
    set_at: datetime


class AliasChange(BaseModel):
    version: int | None = Field(description="the version it was set to; null: the alias was removed")
    set_by: str
    set_at: datetime


class AliasHistory(BaseModel):
    items: list[AliasChange] = Field(description="every change of the alias, oldest first, removals included")


class ModelList(BaseModel):
    items: list[ModelPublic]


DEFAULT_MAX_IN_FLIGHT = 256
MAX_IN_FLIGHT_RULE = (
    "online predict samples this deployment takes at once (per gateway); past it a "
    "request is answered 429 with Retry-After at once instead of waiting in a queue"
)
BATCH_WAIT_RULE = (
    "milliseconds a batch of online samples that is not full may wait for more while the "
    "deployment is busy (a lone request on an idle deployment is sent at once)"
)
AUTOSCALING_RULE = (
    "with max_replicas, Serve autoscales the replicas between min_replicas (default 1) "
    "and max_replicas on the calls in flight, starting at num_replicas kept in that range; "
    "min_replicas 0 scales to zero when idle (a call wakes it and waits for its replica)"
)
MIN_SCALE_DOWN_DELAY_S = 5.0
SCALE_DOWN_DELAY_RULE = (
    "with max_replicas: seconds of too little load before Serve removes a replica (with "
    "min_replicas 0, of no load before the last one goes: the deployment is scaled to zero)"
)


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema with its `$defs` put in place of the `$ref`s that name them, and without its
    own `$schema`/`$id`: a schema that can sit inside the OpenAPI document (where `#/...` means
    the document)."""
    defs = schema.get("$defs", {})

    def place(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return place(defs[ref.removeprefix("#/$defs/")])
            return {k: place(v) for k, v in node.items() if k not in ("$defs", "$schema", "$id")}
        if isinstance(node, list):
            return [place(v) for v in node]
        return node

    return place(schema)


# The upload's `schema` form field: JSON text (a generated client or fuzzer sends JSON there)
# holding a model schema (API.md section 4)
MODEL_SCHEMA_FIELD: dict[str, Any] = {
    "contentMediaType": "application/json",
    "contentSchema": _inlined(META_SCHEMA),
}

DEFAULT_PREDICT_TIMEOUT_S = 60.0
MAX_PREDICT_TIMEOUT_S = 300.0


class DeploymentCreate(Request):
    # said in the schema too, so that generated clients and fuzzers know it (the validator below
    # also refuses min > max, which JSON Schema cannot compare)
    model_config = ConfigDict(
        json_schema_extra={
            "dependentRequired": {"min_replicas": ["max_replicas"], "scale_down_delay_s": ["max_replicas"]}
        }
    )

    name: Name
    version: Annotated[int, Field(ge=1, le=2**63 - 1)] | AliasRef | None = Field(
        default=None, description="a version number, or `@alias` (resolved now); default: the latest version"
    )
    model_type: str = "inference"
    mini_batch: int = Field(default=1, ge=1, le=4096)
    num_replicas: int = Field(default=1, ge=1, le=64, description="replicas (with autoscaling: how many to start with)")
    num_gpus: float = Field(
        default=0, ge=0, le=1, description="GPUs per replica: 0 to 1 (0.5: two replicas share a GPU)"
    )
    custom_env: bool = False
    batch_wait_ms: float = Field(default=DEFAULT_BATCH_WAIT_MS, ge=0, le=1000, description=BATCH_WAIT_RULE)
    max_in_flight: int = Field(default=DEFAULT_MAX_IN_FLIGHT, ge=1, le=100_000, description=MAX_IN_FLIGHT_RULE)
    min_replicas: int | None = Field(default=None, ge=0, le=64, description=AUTOSCALING_RULE)
    max_replicas: int | None = Field(default=None, ge=1, le=64, description=AUTOSCALING_RULE)
    scale_down_delay_s: float | None = Field(
        default=None,
        ge=MIN_SCALE_DOWN_DELAY_S,
        le=86_400,
        description=f"{SCALE_DOWN_DELAY_RULE}; default {DEFAULT_SCALE_DOWN_DELAY_S:g} with max_replicas",
    )

    @model_validator(mode="after")
    def _autoscaling_bounds(self) -> "DeploymentCreate":
        if self.min_replicas is not None and self.max_replicas is None:
            raise ValueError("min_replicas needs max_replicas (autoscaling between the two)")
        if self.scale_down_delay_s is not None and self.max_replicas is None:
            raise ValueError("scale_down_delay_s needs max_replicas (autoscaling)")
        if self.max_replicas is not None and (self.min_replicas or 0) > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) must not exceed max_replicas ({self.max_replicas})")
        return self


class TaskQueue(BaseModel):
    """Tasks (each at most mini_batch samples) planned and not yet done: `waiting` for a place in
    the deployment's window, `in_flight` sent to the workers and not yet announced done."""

    waiting: int = 0
    in_flight: int = 0


class ModelProcessState(BaseModel):
    jailed: bool = Field(description="the model runs in its bubblewrap jail (false: UNSEALED)")
    restarts: int = Field(description="times the replica that answered last started its model process again")
    last_death: str | None = Field(description="why that model process last died (exit code or signal, its output)")


class EnvironmentState(BaseModel):
    route: Literal["pip", "conda"] = Field(description="how the replicas' environment is built (Ray runtime_env)")
    file: str = Field(description="the package file it comes from: environment.yml or requirements.txt")
    packages: list[str] = Field(description="pip requirement lines (pip) or conda dependencies (conda)")
    skipped: list[str] = Field(default_factory=list, description="conda dependencies the nodes' Python provides")
    reason: str = Field(default="", description="why this route (conda found or not; requirements.txt used or not)")


class DeploymentPublic(BaseModel):
    name: str
    model: str
    version: int
    alias: str | None = Field(default=None, description="the alias `version` was resolved from at deploy, if any")
    model_type: str
    mini_batch: int
    num_replicas: int
    num_gpus: float
    min_replicas: int | None = None
    max_replicas: int | None = None
    scale_down_delay_s: float | None = Field(
        default=None, description=f"{SCALE_DOWN_DELAY_RULE} (null: no autoscaling)"
    )
    custom_env: bool
    batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS  # documents written before these options had them
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    status: Literal["pending", "deploying", "running", "failed", "stopping", "stopped"]
    error: str | None
    ready_replicas: int
    created_by: str
    created_at: datetime
    updated_at: datetime
    queue: TaskQueue = Field(
        default_factory=TaskQueue, description="tasks of every job on the deployment, waiting and in flight"
    )
    model_process: ModelProcessState | None = Field(
        default=None, description="what a replica last said of its model process (deaths and restarts)"
    )
    environment: EnvironmentState | None = Field(
        default=None, description="with custom_env: the route its environment took, once the deployer chose it"
    )


class DeploymentList(BaseModel):
    items: list[DeploymentPublic]


class PredictIn(Request):
    inputs: dict[str, list[Any]]
    timeout_s: float = Field(
        default=DEFAULT_PREDICT_TIMEOUT_S,
        gt=0,
        le=MAX_PREDICT_TIMEOUT_S,
        description="answer 504 and cancel the request after this many seconds",
    )


class PredictOut(BaseModel):
    outputs: dict[str, list[Any]]


class DatasetCreate(Request):
    name: Name
    description: str = Field(default="", max_length=10_000)


class DatasetPublic(BaseModel):
    name: str
    description: str = ""
    owner: str
    num_samples: int
    created_at: datetime


class DatasetList(BaseModel):
    items: list[DatasetPublic]


class SampleIn(Request):
    filepath: str = Field(min_length=1, max_length=4096, pattern="^/", description="an absolute path")
    fields: dict[FieldName, JsonValue] = Field(default_factory=dict)


class SamplesIn(Request):
    samples: list[SampleIn] = Field(min_length=1, max_length=10_000)


class SampleIds(Request):
    ids: list[str] = Field(min_length=1, max_length=10_000, description="ids of samples to delete")


class SamplesDeleted(BaseModel):
    deleted: int


class FieldRemoved(BaseModel):
    removed: int = Field(description="how many samples had the field")


class SamplesAdded(BaseModel):
    added: int


class FieldLineage(BaseModel):
    job_id: str
    model: str
    version: int
    deployment: str
    at: datetime


class SamplePublic(BaseModel):
    id: str
    filepath: str
    fields: dict[str, Any]
    lineage: dict[str, FieldLineage] = Field(
        default_factory=dict,
        description="for each field a job wrote: which job, model, version and deployment wrote it, and when",
    )


class SamplePage(BaseModel):
    items: list[SamplePublic]
    total: int


class LabelCount(BaseModel):
    label: str
    count: int


class FieldWriter(BaseModel):
    job_id: str
    model: str | None = None
    version: int | None = None
    deployment: str | None = None
    output: str
    status: str | None = None
    at: datetime | None = None


class FieldSummary(BaseModel):
    name: str
    samples: int = Field(description="how many samples have this field")
    labels: list[LabelCount] = Field(description="most frequent labels (classification or detections)")
    jobs: list[FieldWriter] = Field(description="jobs that wrote this field, newest first")


class FieldSummaryList(BaseModel):
    items: list[FieldSummary]


ONLY_RULE = (
    "which samples run: `all`; `missing`, those lacking any of the mapped output fields; `stale`, "
    "those and the ones whose field another model or model version wrote (its lineage). `total` "
    "counts what runs; with nothing to run the job is answered completed, total 0"
)
OnlyValue = Literal["all", "missing", "stale"]


class JobCreate(Request):
    deployment: str = Field(min_length=1)
    outputs: dict[str, str] = Field(min_length=1)
    inputs: dict[str, str] = Field(default_factory=dict)
    only: OnlyValue = Field(default="all", description=ONLY_RULE)


class JobPublic(BaseModel):
    id: str
    dataset: str
    deployment: str
    model: str
    version: int
    inputs: dict[str, str]
    outputs: dict[str, str]
    only: OnlyValue = Field(default="all", description=ONLY_RULE)
    status: Literal["queued", "running", "completed", "failed", "cancelled"]
    attempt: int
    total: int
    succeeded: int
    failed: int
    progress: float
    error: str | None = None
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    queue: TaskQueue = Field(default_factory=TaskQueue, description="the job's tasks waiting and in flight")


class JobList(BaseModel):
    items: list[JobPublic]


class Failure(BaseModel):
    sample_id: str
    error: str


class FailureList(BaseModel):
    items: list[Failure]
