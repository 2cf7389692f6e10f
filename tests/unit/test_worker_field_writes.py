"""The worker's field writes when MongoDB fails: a multi-document update is not retried by the
driver, so the worker tries it once more on what the driver retries for single-document writes,
and otherwise lets the error through (the task is retried). The writes themselves run against a
real MongoDB in tests/integration/test_field_writes.py."""

from typing import Any, cast

import pytest
from pymongo.errors import AutoReconnect, OperationFailure

from modelhub_worker.store import Lease, WorkerStore


class Samples:
    """A samples collection whose update_many raises the given errors in turn, then succeeds."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.updates: list[tuple[dict, list]] = []
        self.bulks = 0

    async def update_many(self, query: dict, pipeline: list) -> None:
        self.updates.append((query, pipeline))
        if self.errors:
            raise self.errors.pop(0)

    async def bulk_write(self, ops: list, ordered: bool) -> None:
        self.bulks += 1


def store_with(samples: Samples) -> WorkerStore:
    store = WorkerStore.__new__(WorkerStore)
    store.samples = cast(Any, samples)
    return store


FIELDS = {"s1": {"n": 1}, "s2": {"n": 2}}


async def test_a_lost_connection_is_tried_once_more():
    samples = Samples(AutoReconnect("connection reset"))
    await store_with(samples).write_fields(FIELDS, Lease({"job_id": "j"}))
    assert len(samples.updates) == 2 and samples.bulks == 0
    assert samples.updates[0] == samples.updates[1]  # the same statement: same values, same lineage


async def test_an_error_labelled_retryable_is_tried_once_more():
    # e.g. a server shutting down (ShutdownInProgress): an OperationFailure, not a lost connection
    error = OperationFailure("shutting down", code=91, details={"code": 91, "errorLabels": ["RetryableWriteError"]})
    assert error.has_error_label("RetryableWriteError")
    samples = Samples(error)
    await store_with(samples).write_fields(FIELDS, Lease({"job_id": "j"}))
    assert len(samples.updates) == 2


async def test_a_second_failure_reaches_the_task():
    samples = Samples(AutoReconnect("down"), AutoReconnect("still down"))
    with pytest.raises(AutoReconnect):
        await store_with(samples).write_fields(FIELDS, Lease({"job_id": "j"}))
    assert len(samples.updates) == 2 and samples.bulks == 0


async def test_other_errors_are_not_tried_again():
    samples = Samples(OperationFailure("bad", code=2))
    with pytest.raises(OperationFailure):
        await store_with(samples).write_fields(FIELDS, Lease({"job_id": "j"}))
    assert len(samples.updates) == 1 and samples.bulks == 0


async def test_a_statement_over_the_size_limit_is_written_per_sample():
    samples = Samples(OperationFailure("too large", code=10334))
    await store_with(samples).write_fields(FIELDS, Lease({"job_id": "j"}))
    assert len(samples.updates) == 1 and samples.bulks == 1
