"""Inference worker settings: the shared ones plus the bounds on what it reads from a replica.

A replica runs a user's model, so its answers are untrusted input: the worker reads no more of
one than `max_answer_bytes` (on the proxy path and the direct path alike) and takes no sample
output over `max_sample_bytes`."""

from pydantic import Field

from modelhub_contracts.direct import MAX_FRAME
from modelhub_runtime.settings import ServiceSettings
from modelhub_worker.serving import MAX_ANSWER_BYTES, MAX_SAMPLE_BYTES


class WorkerSettings(ServiceSettings):
    max_answer_bytes: int = Field(
        default=MAX_ANSWER_BYTES,
        ge=1 << 20,
        le=MAX_FRAME,
        description="the most bytes of one replica answer the worker reads (one call: up to a task's "
        "mini-batches); over it the answer is not read and its samples fail with why",
    )
    max_sample_bytes: int = Field(
        default=MAX_SAMPLE_BYTES,
        ge=1,
        description="the most bytes one sample's output may take as JSON (MongoDB keeps a document "
        "under 16 MiB); over it that sample fails with why",
    )
