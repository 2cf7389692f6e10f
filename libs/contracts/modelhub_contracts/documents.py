"""The MongoDB documents that more than one service reads or writes, typed once, with the status
values they move through and which service owns which field.

TypedDicts and StrEnums on purpose: they cost nothing at runtime (a document read from MongoDB is
used as it comes, no validation on the hot paths of predict and the job fold), and a StrEnum member
*is* its string, so what is stored, compared and answered is unchanged ("running" == RUNNING).
Status sets are defined here and nowhere else; `tests/unit/test_documents.py` fails when a status
string literal appears in a service's source outside this module.

Owners, by collection:
- `users`: the gateway (bootstrap, create, rotate, disable); services read `username`/`is_admin`.
- `models`, `versions`, `alias_history`: the registry (the gateway reads them and sends the registry
  commands).
- `deployments`: split like a Kubernetes object: the gateway writes the spec, the deployer the status.
- `datasets`, `samples`: the gateway; the worker writes a job's outputs into `fields`/`lineage`.
- `jobs`: the gateway writes the job and its counts; the scheduler reads it; the worker holds
  its write lease (`active_writes`).
"""

from datetime import datetime
from enum import StrEnum
from typing import Any, NotRequired, TypedDict


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Only(StrEnum):
    """Which of a dataset's samples a job runs (`POST /datasets/{name}/jobs`'s `only`)."""

    ALL = "all"
    MISSING = "missing"  # those lacking any of the mapped output fields
    STALE = "stale"  # those, and those whose field another model or version wrote (lineage)


class DeploymentStatus(StrEnum):
    PENDING = "pending"
    DEPLOYING = "deploying"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


# --- named sets of job states ---------------------------------------------------------------------
# A job in one of these has ended: it shows no queue, it may be retried (failed) or deleted with its dataset.
TERMINAL: tuple[JobStatus, ...] = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)
# A job in one of these still counts its samples; the fold may close it.
OPEN: tuple[JobStatus, ...] = (JobStatus.QUEUED, JobStatus.RUNNING)
# A job in one of these takes no more writes from the worker (a failed one may still be retried,
# and a retry's tasks must be able to write).
CLOSED: tuple[JobStatus, ...] = (JobStatus.CANCELLED, JobStatus.COMPLETED)

# --- named sets of deployment states --------------------------------------------------------------
# A deployment in one of these holds its model and version: they cannot be deleted (registry).
ACTIVE_DEPLOYMENT_STATES: tuple[DeploymentStatus, ...] = (
    DeploymentStatus.PENDING,
    DeploymentStatus.DEPLOYING,
    DeploymentStatus.RUNNING,
    DeploymentStatus.STOPPING,
)
# A deployment in one of these may be replaced by a new one of the same name (gateway).
REUSABLE: tuple[DeploymentStatus, ...] = (DeploymentStatus.STOPPED, DeploymentStatus.FAILED)
# A deployment in one of these will not run tasks again (scheduler).
GONE: tuple[DeploymentStatus, ...] = (DeploymentStatus.STOPPING, DeploymentStatus.STOPPED, DeploymentStatus.FAILED)
# A deployment in one of these may be (re)deployed by the deployer.
DEPLOYABLE: tuple[DeploymentStatus, ...] = (
    DeploymentStatus.PENDING,
    DeploymentStatus.DEPLOYING,
    DeploymentStatus.RUNNING,
)
# A deployment in one of these may be stopped (everything but stopped).
STOPPABLE: tuple[DeploymentStatus, ...] = (
    DeploymentStatus.PENDING,
    DeploymentStatus.DEPLOYING,
    DeploymentStatus.RUNNING,
    DeploymentStatus.FAILED,
    DeploymentStatus.STOPPING,
)
# A deployment in one of these has (or is getting) Serve replicas that answer (worker, telemetry).
SERVING: tuple[DeploymentStatus, ...] = (DeploymentStatus.DEPLOYING, DeploymentStatus.RUNNING)
# A deployment in one of these holds replicas on the Ray cluster (the telemetry gauge counts them).
ON_CLUSTER: tuple[DeploymentStatus, ...] = (
    DeploymentStatus.DEPLOYING,
    DeploymentStatus.RUNNING,
    DeploymentStatus.STOPPING,
)


# --- documents ------------------------------------------------------------------------------------
# Fields written when the document is inserted are required; NotRequired marks those written later
# (or not by every version).
# A projection reads part of a document: such reads stay plain dicts, not these types.


class Actor(TypedDict):
    """What the access rule needs of a user (`access.load_user` reads just this); a User is one."""

    username: str  # gateway
    is_admin: bool  # gateway


class User(TypedDict):
    """The caller, as the gateway authenticated it (`deps.CurrentUser`)."""

    _id: str  # gateway: the lower-cased username
    username: str  # gateway: as the person spelled it
    is_admin: bool  # gateway
    token_hash: str  # gateway: sha256 of the bearer token, never the token
    created_at: datetime  # gateway
    disabled: NotRequired[bool]  # gateway: off-boarded; the name stays taken
    disabled_at: NotRequired[datetime]  # gateway


class Sharing(TypedDict):
    everyone: str  # registry: "none" | "run" | "edit"
    users: dict[str, str]  # registry: username -> "run" | "edit"


class Model(TypedDict):
    _id: str  # registry: the lower-cased name (names are unique case-insensitively)
    name: str  # registry
    description: str  # registry
    tags: list[str]  # registry
    owner: str  # registry
    sharing: Sharing  # registry
    version_count: int  # registry: version numbers are never reused
    created_at: datetime  # registry
    updated_at: datetime  # registry
    aliases: NotRequired[dict[str, int]]  # registry: alias -> the version it points to
    alias_seq: NotRequired[int]  # registry: alias changes so far (orders the history)
    alias_outbox: NotRequired[list["AliasChange"]]  # registry: changes made, not yet in alias_history


class AliasChange(TypedDict):
    """One change of a model's alias, as `alias_history` keeps it (append-only, never rewritten)."""

    _id: str  # registry: "<model id>/<seq>"
    model_id: str  # registry
    alias: str  # registry
    version: int | None  # registry: None when the alias was removed
    set_by: str  # registry: the acting user
    set_at: datetime  # registry
    seq: int  # registry: the model's alias_seq for this change: history order


class Version(TypedDict):
    _id: str  # registry: "<model id>/<version>"
    model_id: str  # registry
    version: int  # registry
    sha256: str  # registry
    size_bytes: int  # registry
    schema: dict[str, Any]  # registry: the model schema (model_schema.py)
    # registry: what runs the package (package.py): "python", "mlflow" or "onnx"; absent on versions
    # stored before formats existed, which are all "python"
    format: NotRequired[str]
    package_object: str  # registry: the object name in the packages bucket
    created_at: datetime  # registry
    created_by: str  # registry
    environment_files: NotRequired[list[str]]  # registry: environment.yml / requirements.txt it holds
    deleting: NotRequired[bool]  # registry: a delete checks the aliases (no alias may be set to it meanwhile)


class DeploymentEnvironment(TypedDict):
    """How a custom_env deployment's environment is built (the deployer's environments.py)."""

    route: str  # "pip" | "conda"
    file: str  # the package file it comes from: "environment.yml" | "requirements.txt"
    packages: list[str]  # pip requirement lines (pip) or conda dependencies (conda)
    skipped: list[str]  # conda dependencies the nodes' Python already provides (pip route)
    reason: str  # why this route: conda found or not, requirements.txt used or not


class Deployment(TypedDict):
    _id: str  # gateway: the deployment name
    name: str  # gateway (spec)
    model: str  # gateway (spec): the model's name as its owner spelled it
    version: int  # gateway (spec)
    alias: NotRequired[str | None]  # gateway (spec): the alias `version` was resolved from, if any
    model_type: str  # gateway (spec)
    num_replicas: int  # gateway (spec)
    min_replicas: int | None  # gateway (spec)
    max_replicas: int | None  # gateway (spec)
    scale_down_delay_s: NotRequired[float | None]  # gateway (spec): with max_replicas (older documents lack it)
    num_gpus: float  # gateway (spec)
    mini_batch: int  # gateway (spec)
    batch_wait_ms: float  # gateway (spec)
    max_in_flight: int  # gateway (spec)
    custom_env: bool  # gateway (spec): the package's own environment
    package_object: str  # gateway (spec), copied from the version
    package_sha256: str  # gateway (spec), copied from the version
    created_by: str  # gateway
    created_at: datetime  # gateway
    status: DeploymentStatus  # gateway sets pending (create) and stopping (stop); the deployer every other move
    error: str | None  # deployer (the gateway writes None at create)
    ready_replicas: int  # deployer (the gateway writes 0 at create)
    updated_at: datetime  # gateway and deployer, with each status move
    serve_secret: NotRequired[str]  # deployer: the replicas' shared secret, never shown by the API
    model_process: NotRequired[dict[str, Any]]  # deployer: a replica's {jailed, restarts, last_death}
    environment: NotRequired[DeploymentEnvironment | None]  # deployer, per deploy: None without custom_env


class Dataset(TypedDict):
    _id: str  # gateway: the dataset name
    name: str  # gateway
    description: str  # gateway
    owner: str  # gateway
    num_samples: int  # gateway
    created_at: datetime  # gateway


class Sample(TypedDict):
    _id: str  # gateway: an ObjectId string (insertion-ordered)
    dataset: str  # gateway
    filepath: str  # gateway
    fields: dict[str, Any]  # gateway (added samples) and worker (a job's outputs)
    lineage: NotRequired[dict[str, Any]]  # worker: which job, model, version, deployment wrote each field


class Job(TypedDict):
    _id: str  # gateway: a uuid hex
    dataset: str  # gateway
    until_sample_id: str | None  # gateway: the job covers the samples up to this one
    deployment: str  # gateway
    model: str  # gateway
    version: int  # gateway
    inputs: dict[str, str]  # gateway: model input -> sample field
    outputs: dict[str, str]  # gateway: model output -> sample field
    only: NotRequired[Only]  # gateway: which samples it runs (absent: all; see the gateway's incremental.py)
    status: JobStatus  # gateway (submit, fold, cancel, retry); the scheduler and worker read it
    attempt: int  # gateway: 1, then +1 per retry
    total: int  # gateway
    succeeded: int  # gateway: derived from the ledger, never incremented
    failed: int  # gateway: derived from the ledger
    progress: float  # gateway
    error: str | None  # gateway (a JobRefused reason)
    created_by: str  # gateway
    owner: str  # gateway
    created_at: datetime  # gateway
    started_at: datetime | None  # gateway
    finished_at: datetime | None  # gateway
    cancel_requested: NotRequired[bool]  # gateway: the scheduler stops planning it, the worker writing it
    active_writes: NotRequired[int]  # worker: its write lease (a cancel waits for it to drain)
    counted_attempt: NotRequired[int]  # gateway (ledger fold)
    recount_pending: NotRequired[dict[str, bool]]  # gateway (ledger fold): which folder owes a recount
    folded_by: NotRequired[list[str]]  # gateway (ledger fold)
