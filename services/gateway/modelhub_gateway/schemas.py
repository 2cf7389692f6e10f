"""HTTP request/response models (separate from events and from stored documents)."""

from datetime import datetime
from typing import Any, Literal

from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, field_validator

from modelhub_contracts.names import NAME_PATTERN, NAME_RULE, valid_name

Name = Annotated[str, Field(pattern=NAME_PATTERN, description=NAME_RULE), AfterValidator(valid_name)]


def _check_fields(fields: dict[str, Any], where: str = "fields") -> None:
    for key, value in fields.items():
        if key.startswith("$") or "." in key or not key:
            raise ValueError(f"{where}: field name '{key}' may not be empty, contain '.' or start with '$'")
        if isinstance(value, dict):
            _check_fields(value, f"{where}.{key}")


class UserCreate(BaseModel):
    username: Name


class UserToken(BaseModel):
    username: str
    token: str


class ModelCreate(BaseModel):
    name: Name
    description: str = Field("", max_length=10_000)
    tags: list[str] = Field(default_factory=list, max_length=100)


class ModelPatch(BaseModel):
    description: str | None = Field(None, max_length=10_000)
    tags: list[str] | None = Field(None, max_length=100)


class Sharing(BaseModel):
    everyone: Literal["none", "run", "edit"] = "none"
    users: dict[str, Literal["run", "edit"]] = Field(default_factory=dict)


class VersionPublic(BaseModel):
    version: int
    sha256: str
    size_bytes: int
    schema_: dict = Field(alias="schema", serialization_alias="schema")
    created_at: datetime
    created_by: str


class ModelPublic(BaseModel):
    name: str
    description: str
    tags: list[str]
    owner: str
    created_at: datetime
    updated_at: datetime
    sharing: Sharing
    versions: list[VersionPublic]


class ModelList(BaseModel):
    items: list[ModelPublic]


class DeploymentCreate(BaseModel):
    name: Name
    version: int | None = Field(None, ge=1)
    model_type: str = "inference"
    mini_batch: int = Field(1, ge=1, le=4096)
    num_replicas: int = Field(1, ge=1, le=64)
    num_gpus: int = Field(0, ge=0, le=1)
    custom_env: bool = False


class TaskQueue(BaseModel):
    """Tasks (each at most mini_batch samples) planned and not yet done: `waiting` for a place in
    the deployment's window, `in_flight` sent to the workers and not yet announced done."""

    waiting: int = 0
    in_flight: int = 0


class DeploymentPublic(BaseModel):
    name: str
    model: str
    version: int
    model_type: str
    mini_batch: int
    num_replicas: int
    num_gpus: int
    custom_env: bool
    status: Literal["pending", "deploying", "running", "failed", "stopping", "stopped"]
    error: str | None
    ready_replicas: int
    created_by: str
    created_at: datetime
    updated_at: datetime
    queue: TaskQueue = Field(default_factory=TaskQueue,
                             description="tasks of every job on the deployment, waiting and in flight")


class DeploymentList(BaseModel):
    items: list[DeploymentPublic]


class PredictIn(BaseModel):
    inputs: dict[str, list[Any]]


class PredictOut(BaseModel):
    outputs: dict[str, list[Any]]


class DatasetCreate(BaseModel):
    name: Name
    description: str = Field("", max_length=10_000)


class DatasetPublic(BaseModel):
    name: str
    description: str = ""
    owner: str
    num_samples: int
    created_at: datetime


class DatasetList(BaseModel):
    items: list[DatasetPublic]


class SampleIn(BaseModel):
    filepath: str = Field(min_length=1, max_length=4096)
    fields: dict[str, Any] = Field(default_factory=dict)

    @field_validator("filepath")
    @classmethod
    def absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("filepath must be an absolute path")
        return value

    @field_validator("fields")
    @classmethod
    def safe_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        _check_fields(value)
        return value


class SamplesIn(BaseModel):
    samples: list[SampleIn] = Field(min_length=1, max_length=10_000)


class SamplesAdded(BaseModel):
    added: int


class SamplePublic(BaseModel):
    id: str
    filepath: str
    fields: dict[str, Any]


class SamplePage(BaseModel):
    items: list[SamplePublic]
    total: int


class JobCreate(BaseModel):
    deployment: str = Field(min_length=1)
    outputs: dict[str, str] = Field(min_length=1)
    inputs: dict[str, str] = Field(default_factory=dict)


class JobPublic(BaseModel):
    id: str
    dataset: str
    deployment: str
    model: str
    version: int
    inputs: dict[str, str]
    outputs: dict[str, str]
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

