"""Incremental runs: which of a dataset's samples a job with `only: missing | stale` runs.

`missing`: the samples lacking any of the job's output fields. `stale`: those, and the samples
whose field was written (its lineage) by another model, or another version of the deployment's
model. A field a user gave a sample (no lineage) is there and is nobody's output: it is neither
missing nor stale.

The selection is fixed when the job is submitted: its sample ids travel to the scheduler in the
job's JobSubmitted events (parts of `jobs.ID_PART_SIZE`, as a retry's failed samples do), and the
job's `total` is their number. Handing the scheduler the filter instead would let its answer move
under the job: the job's own writes (a plan redone after a crash would skip the samples already
written) and any other job writing the same field would make the planned samples differ from the
counted ones, and the ledger's exact counts would never reach `total`.

Both questions are answered from one index per output field, `(dataset, lineage.<field>.model,
lineage.<field>.version, _id)`, built (in the background) the first time a job that writes the
field is submitted to this gateway (`GatewayStore.index_writers`). A sample's selection is a union of
disjoint ranges of that index, up to the job's last sample id: no lineage and no field (missing),
another model (before or after the deployment's, by name), the same model at an older or a newer
version. Each range but the first is counted and read from the index alone; the first fetches
the samples that have no lineage for the field (normally just the missing ones) to check that the
field is absent. So the work grows with the samples selected, not with the dataset. When some
output's ranges hold every sample, the job runs as `all` (no ids to send), which keeps the common
"everything is stale after a new version" case as cheap as a plain job.
"""

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

from modelhub_contracts.documents import Deployment, Only


class SelectionStore(Protocol):
    """What the selection reads (`GatewayStore` in the app, a fake in tests)."""

    async def writer_indexes(self) -> set[str]: ...
    async def count_samples(self, query: dict[str, Any]) -> int: ...
    async def sample_ids(self, query: dict[str, Any]) -> list[str]: ...


@dataclass(frozen=True)
class Selection:
    """What a job runs: `total` samples, these ids, or (None) every sample up to its last one."""

    total: int
    sample_ids: list[str] | None = None


def ranges(dataset: str, until: str, field: str, deployment: Deployment, only: Only) -> list[dict[str, Any]]:
    """The selection for one output field, as disjoint queries (each a range of the field's index).

    `$lt`/`$gt` rather than `$ne`: a comparison with a string (a number) matches only strings
    (numbers), so neither range takes in the samples without lineage, and each is one interval of
    the index, which MongoDB counts without reading a document."""
    base: dict[str, Any] = {"dataset": dataset, "_id": {"$lte": until}}
    model_path, version_path = f"lineage.{field}.model", f"lineage.{field}.version"
    found = [{**base, model_path: None, f"fields.{field}": {"$exists": False}}]
    if only == Only.STALE:
        model, version = deployment["model"], deployment["version"]
        found += [
            {**base, model_path: {"$lt": model}},
            {**base, model_path: {"$gt": model}},
            {**base, model_path: model, version_path: {"$lt": version}},
            {**base, model_path: model, version_path: {"$gt": version}},
        ]
    return found


async def select(
    store: SelectionStore,
    dataset: str,
    until: str | None,
    every: int,
    deployment: Deployment,
    fields: list[str],
    only: Only,
) -> Selection:
    """The samples a job runs, out of the `every` samples up to `until` (the dataset's last one)."""
    if only == Only.ALL or until is None or every == 0:
        return Selection(every)
    by_field = {field: ranges(dataset, until, field, deployment, only) for field in fields}
    if await _some_field_selects_all(store, by_field, every):
        return Selection(every)
    ids: set[str] = set()
    for queries in by_field.values():
        ids.update(await store.sample_ids({"$or": queries}))
    if len(ids) == every:
        return Selection(every)
    return Selection(len(ids), sorted(ids))


async def _some_field_selects_all(store: SelectionStore, by_field: dict[str, list[dict]], every: int) -> bool:
    """One field whose ranges hold every sample selects them all. Only asked where the field's
    index exists (and only as counts): without it, each range would read the whole dataset."""
    indexed = await store.writer_indexes()
    for field, queries in by_field.items():
        if field in indexed and sum(await asyncio.gather(*(store.count_samples(q) for q in queries))) == every:
            return True
    return False
