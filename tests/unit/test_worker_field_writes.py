"""The worker's field writes when MongoDB fails: a multi-document update is not retried by the
driver, so the worker tries it once more on what the driver retries for single-document writes,
and otherwise lets the error through (the task is retried); a statement over the size limit is
written again per sample, and only that statement. The writes themselves run against a real
MongoDB in tests/integration/test_field_writes.py."""

from typing import Any, cast

import pytest
from pymongo import UpdateMany, UpdateOne
from pymongo.errors import AutoReconnect, BulkWriteError, OperationFailure

from modelhub_worker.store import STATEMENT_SAMPLES, Lease, WorkerStore


class Samples:
    """A samples collection whose bulk_write raises the given errors in turn, then succeeds."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.bulks: list[list] = []

    async def bulk_write(self, ops: list, ordered: bool) -> None:
        assert ordered is False
        self.bulks.append(ops)
        if self.errors:
            raise self.errors.pop(0)

    def kinds(self) -> list[str]:
        """Each bulk's kind: 'pipeline' (UpdateMany statements) or 'per-sample' (UpdateOne)."""
        return ["pipeline" if all(isinstance(op, UpdateMany) for op in ops) else "per-sample" for ops in self.bulks]


def store_with(samples: Samples) -> WorkerStore:
    store = WorkerStore.__new__(WorkerStore)
    store.samples = cast(Any, samples)
    return store


FIELDS = {"s1": {"n": 1}, "s2": {"n": 2}}


async def test_a_lost_connection_is_tried_once_more():
    samples = Samples(AutoReconnect("connection reset"))
    await store_with(samples).write_fields(FIELDS, Lease({"job_id": "j"}))
    assert samples.kinds() == ["pipeline", "pipeline"]
    assert samples.bulks[0] == samples.bulks[1]  # the same statements: same values, same lineage


async def test_an_error_labelled_retryable_is_tried_once_more():
    # e.g. a server shutting down (ShutdownInProgress): an OperationFailure, not a lost connection
    error = OperationFailure("shutting down", code=91, details={"code": 91, "errorLabels": ["RetryableWriteError"]})
    assert error.has_error_label("RetryableWriteError")
    samples = Samples(error)
    await store_with(samples).write_fields(FIELDS, Lease({"job_id": "j"}))
    assert samples.kinds() == ["pipeline", "pipeline"]


async def test_a_second_failure_reaches_the_task():
    samples = Samples(AutoReconnect("down"), AutoReconnect("still down"))
    with pytest.raises(AutoReconnect):
        await store_with(samples).write_fields(FIELDS, Lease({"job_id": "j"}))
    assert samples.kinds() == ["pipeline", "pipeline"]


async def test_other_errors_are_not_tried_again():
    samples = Samples(OperationFailure("bad", code=2))
    with pytest.raises(OperationFailure):
        await store_with(samples).write_fields(FIELDS, Lease({"job_id": "j"}))
    assert samples.kinds() == ["pipeline"]


async def test_a_statement_over_the_size_limit_is_written_per_sample():
    samples = Samples(OperationFailure("too large", code=10334))
    await store_with(samples).write_fields(FIELDS, Lease({"job_id": "j"}))
    assert samples.kinds() == ["pipeline", "per-sample"]
    assert [op._filter for op in samples.bulks[1]] == [{"_id": "s1"}, {"_id": "s2"}]


async def test_a_task_is_one_command_of_statements_of_at_most_statement_samples():
    fields: dict[str, dict] = {f"s{i}": {"n": i} for i in range(2 * STATEMENT_SAMPLES + 1)}
    fields["x"] = {"label": "other field set"}
    samples = Samples()
    await store_with(samples).write_fields(fields, Lease({"job_id": "j"}))
    [ops] = samples.bulks
    assert [len(op._filter["_id"]["$in"]) for op in ops] == [STATEMENT_SAMPLES, STATEMENT_SAMPLES, 1, 1]
    assert sorted(sid for op in ops for sid in op._filter["_id"]["$in"]) == sorted(fields)


async def test_only_the_statements_over_the_size_limit_are_written_again_per_sample():
    fields = {f"s{i}": {"n": i} for i in range(2 * STATEMENT_SAMPLES)}
    error = BulkWriteError({"writeErrors": [{"index": 1, "code": 10334, "errmsg": "too large"}], "nModified": 64})
    samples = Samples(error)
    await store_with(samples).write_fields(fields, Lease({"job_id": "j"}))
    assert samples.kinds() == ["pipeline", "per-sample"]
    again = [op._filter["_id"] for op in samples.bulks[1]]
    assert again == list(fields)[STATEMENT_SAMPLES:]  # the second statement's samples, each alone
    assert all(isinstance(op, UpdateOne) for op in samples.bulks[1])


async def test_a_bulk_error_that_is_not_about_size_reaches_the_task():
    error = BulkWriteError({"writeErrors": [{"index": 0, "code": 2, "errmsg": "bad"}]})
    samples = Samples(error)
    with pytest.raises(BulkWriteError):
        await store_with(samples).write_fields(FIELDS, Lease({"job_id": "j"}))
    assert samples.kinds() == ["pipeline"]
