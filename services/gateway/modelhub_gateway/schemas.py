"""HTTP request/response models (separate from events and from stored documents)."""

from datetime import datetime
from typing import Any, Literal

from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, field_validator

from modelhub_contracts.events import DEFAULT_BATCH_WAIT_MS
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


DEFAULT_MAX_IN_FLIGHT = 256
MAX_IN_FLIGHT_RULE = ("online predict samples this deployment takes at once (per gateway); past it a "
                      "request is answered 429 with Retry-After at once instead of waiting in a queue")
BATCH_WAIT_RULE = ("milliseconds a batch of online samples that is not full may wait for more while the "
                   "deployment is busy (a lone request on an idle deployment is sent at once)")
DEFAULT_PREDICT_TIMEOUT_S = 60.0
MAX_PREDICT_TIMEOUT_S = 300.0


class DeploymentCreate(BaseModel):
    name: Name
    version: int | None = Field(None, ge=1)
    model_type: str = "inference"
    mini_batch: int = Field(1, ge=1, le=4096)
    num_replicas: int = Field(1, ge=1, le=64)
    num_gpus: int = Field(0, ge=0, le=1)
    custom_env: bool = False
    batch_wait_ms: float = Field(DEFAULT_BATCH_WAIT_MS, ge=0, le=1000, description=BATCH_WAIT_RULE)
    max_in_flight: int = Field(DEFAULT_MAX_IN_FLIGHT, ge=1, le=100_000, description=MAX_IN_FLIGHT_RULE)


class DeploymentPublic(BaseModel):
    name: str
    model: str
    version: int
    model_type: str
    mini_batch: int
    num_replicas: int
    num_gpus: int
    custom_env: bool
    batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS  # documents written before these options had them
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    status: Literal["pending", "deploying", "running", "failed", "stopping", "stopped"]
    error: str | None
    ready_replicas: int
    created_by: str
    created_at: datetime
    updated_at: datetime


class DeploymentList(BaseModel):
    items: list[DeploymentPublic]


class PredictIn(BaseModel):
    inputs: dict[str, list[Any]]
    timeout_s: float = Field(DEFAULT_PREDICT_TIMEOUT_S, gt=0, le=MAX_PREDICT_TIMEOUT_S,
                             description="answer 504 and cancel the request after this many seconds")


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


class JobList(BaseModel):
    items: list[JobPublic]


class Failure(BaseModel):
    sample_id: str
    error: str


class FailureList(BaseModel):
    items: list[Failure]

