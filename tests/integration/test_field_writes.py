"""The worker's field writes against a real MongoDB: one command per task (a statement per
STATEMENT_SAMPLES samples) gives every sample its own values and lineage, stores any output
literally (never as an expression), leaves samples without outputs alone, and falls back to a
statement per sample for a statement whose outputs are too large for one."""

import uuid

import pytest
from pymongo import AsyncMongoClient, monitoring

from modelhub_worker.store import STATEMENT_SAMPLES, Lease, WorkerStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

WRITER = {"job_id": "job-1", "model": "m", "version": 3, "deployment": "d"}


class UpdateCommands(monitoring.CommandListener):
    """The number of update statements sent to the samples collection, per command."""

    def __init__(self) -> None:
        self.statements: list[int] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "update" and event.command.get("update") == "samples":
            self.statements.append(len(event.command["updates"]))

    def succeeded(self, event) -> None:
        pass

    def failed(self, event) -> None:
        pass


@pytest.fixture
async def samples(stack):
    """A WorkerStore on the stack's MongoDB, the update listener, and the ids of 512 new samples
    (deleted afterwards)."""
    listener = UpdateCommands()
    client = AsyncMongoClient(stack.mongo_url, tz_aware=True, event_listeners=[listener])
    store = WorkerStore(client["modelhub"])
    prefix = uuid.uuid4().hex[:8]
    ids = [f"{prefix}-{i:04d}" for i in range(512)]
    await store.samples.insert_many(
        [{"_id": sid, "dataset": f"writes-{prefix}", "filepath": f"/x/{sid}", "fields": {"text": sid}} for sid in ids]
    )
    try:
        yield store, listener, ids
    finally:
        await store.samples.delete_many({"_id": {"$in": ids}})
        await client.close()


async def docs(store: WorkerStore, ids: list[str]) -> dict[str, dict]:
    return {d["_id"]: d async for d in store.samples.find({"_id": {"$in": ids}})}


async def test_each_sample_gets_its_own_values_and_lineage_in_one_statement(samples):
    store, listener, ids = samples
    await store.write_fields({sid: {"n": i, "label": f"l{i}"} for i, sid in enumerate(ids)}, Lease(WRITER))
    assert listener.statements == [512 // STATEMENT_SAMPLES]  # one command for the task's 512 samples
    got = await docs(store, ids)
    for i, sid in enumerate(ids):
        assert got[sid]["fields"] == {"text": sid, "n": i, "label": f"l{i}"}
        for field in ("n", "label"):
            lineage = dict(got[sid]["lineage"][field])
            assert lineage.pop("at") is not None
            assert lineage == WRITER


async def test_outputs_are_stored_literally_never_read_as_expressions(samples):
    store, _, ids = samples
    hostile = [
        "$_id",
        "$$ROOT",
        {"$literal": 1},
        {"$add": [1, 2]},
        {"a.b": {"$concat": ["x", "y"]}},
        [{"$arrayElemAt": [[1], 0]}, "$fields.text"],
        None,
        {},
        [],
    ]
    values = {sid: {"out": hostile[i % len(hostile)]} for i, sid in enumerate(ids[: len(hostile)])}
    await store.write_fields(values, Lease(WRITER))
    got = await docs(store, list(values))
    assert {sid: got[sid]["fields"]["out"] for sid in values} == {sid: v["out"] for sid, v in values.items()}


async def test_samples_without_outputs_are_left_alone_and_field_sets_are_grouped(samples):
    store, listener, ids = samples
    values = {ids[0]: {"a": 1}, ids[1]: {"a": 2}, ids[2]: {"b": 3}, ids[3]: {}, ids[4]: {"a": 4, "b": 5}}
    await store.write_fields(values, Lease(WRITER))
    assert listener.statements == [3]  # one statement per field set: (a), (b), (a, b); none for {}
    got = await docs(store, ids[:5])
    assert [got[sid]["fields"] for sid in ids[:5]] == [
        {"text": ids[0], "a": 1},
        {"text": ids[1], "a": 2},
        {"text": ids[2], "b": 3},
        {"text": ids[3]},
        {"text": ids[4], "a": 4, "b": 5},
    ]
    assert "lineage" not in got[ids[3]]


async def test_outputs_too_large_for_one_statement_are_written_per_sample(samples):
    store, listener, ids = samples
    big = "v" * 300_000  # 64 x 300 kB: past MongoDB's 16 MB for one statement, fine per sample
    large, small = ids[:STATEMENT_SAMPLES], ids[STATEMENT_SAMPLES : 2 * STATEMENT_SAMPLES]
    values = {sid: {"blob": big + sid, "n": i} for i, sid in enumerate(large)}
    values |= {sid: {"blob": sid, "n": i} for i, sid in enumerate(small)}
    await store.write_fields(values, Lease(WRITER))
    # the task's command (two statements: MongoDB refuses the command, a statement being over its
    # limit), then every sample of the task alone (in as many commands as fit)
    assert listener.statements[0] == 2 and sum(listener.statements[1:]) == len(values)
    got = await docs(store, large + small)
    assert all(got[sid]["fields"] == {"text": sid, **values[sid]} for sid in large + small)
    assert all(got[sid]["lineage"]["blob"]["job_id"] == "job-1" for sid in large + small)
