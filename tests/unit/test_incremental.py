"""Incremental runs (`only: missing | stale`) on an in-memory samples collection that answers the
selection's MongoDB queries: which samples a job selects, what its total and its JobSubmitted
events carry, and when it runs as a plain job instead."""

from typing import Any, cast, get_args

import pytest
from test_gateway_deployments import Sent, user
from test_gateway_jobs import DATASET, SCHEMA, JobStore, running
from test_gateway_jobs import store as store  # noqa: F401 (the fixture)

from modelhub_contracts.documents import Deployment, JobStatus, Only
from modelhub_contracts.events import JobSubmitted
from modelhub_gateway import incremental, jobs
from modelhub_gateway.schemas import JobCreate, OnlyValue
from modelhub_gateway.store import GatewayStore

_MISSING = object()


def _get(doc: dict, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(doc, dict) or key not in doc:
            return _MISSING
        doc = doc[key]
    return doc


def _same_kind(a: Any, b: Any) -> bool:
    """MongoDB compares a string only with strings, a number only with numbers."""
    return isinstance(a, str) == isinstance(b, str) and isinstance(a, int | float) == isinstance(b, int | float)


def _holds(value: Any, cond: Any) -> bool:
    if not (isinstance(cond, dict) and cond and all(k.startswith("$") for k in cond)):
        return value in (_MISSING, None) if cond is None else value == cond
    for op, arg in cond.items():
        if op == "$exists":
            ok = (value is not _MISSING) == arg
        else:
            ok = value is not _MISSING and _same_kind(value, arg)
            ok = ok and {"$lt": value < arg, "$gt": value > arg, "$lte": value <= arg}[op]
        if not ok:
            return False
    return True


def matches(doc: dict, query: dict) -> bool:
    """The few operators the selection uses, with MongoDB's meaning (null matches a missing field)."""
    return all(
        any(matches(doc, q) for q in cond) if key == "$or" else _holds(_get(doc, key), cond)
        for key, cond in query.items()
    )


class SampleStore(JobStore):
    """JobStore with samples that answer the selection's queries, and a log of what was asked."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.rows: list[dict] = []
        self.indexed: set[str] = set()
        self.counted: list[dict] = []
        self.read: list[dict] = []

    def add(self, fields: dict | None = None, lineage: dict | None = None) -> str:
        sample_id = f"s{len(self.rows):04d}"
        self.rows.append(
            {"_id": sample_id, "dataset": DATASET["_id"], "fields": fields or {}, "lineage": lineage or {}}
        )
        return sample_id

    async def samples_now(self, dataset: str) -> tuple[str | None, int]:
        return (self.rows[-1]["_id"] if self.rows else None), len(self.rows)

    async def writer_indexes(self) -> set[str]:
        return self.indexed

    async def count_samples(self, query: dict[str, Any]) -> int:
        self.counted.append(query)
        return sum(matches(r, query) for r in self.rows)

    async def sample_ids(self, query: dict[str, Any]) -> list[str]:
        self.read.append(query)
        return [r["_id"] for r in self.rows if matches(r, query)]


def by(model: str, version: int) -> dict:
    return {"job_id": "j0", "model": model, "version": version, "deployment": "old", "at": "then"}


@pytest.fixture
def samples(store) -> SampleStore:  # noqa: F811 (the fixture imported above)
    new = SampleStore(*store.models.values(), versions=tuple(store.versions))
    new.deployments = store.deployments
    running(new)
    return new


def zoo(samples: SampleStore) -> dict[str, str]:
    """One sample of each kind, for the output field `pred` (the deployment runs Digits v1)."""
    return {
        "missing": samples.add(),
        "given": samples.add({"pred": "a user's"}),
        "current": samples.add({"pred": 1}, {"pred": by("Digits", 1)}),
        "newer": samples.add({"pred": 1}, {"pred": by("Digits", 2)}),
        "other-before": samples.add({"pred": 1}, {"pred": by("Apples", 1)}),
        "other-after": samples.add({"pred": 1}, {"pred": by("Zebra", 1)}),
        "other-field": samples.add({"x": 1}, {"x": by("Digits", 1)}),
    }


async def submit(samples: SampleStore, only: str, outputs: dict | None = None) -> tuple[dict, Sent]:
    sent = Sent()
    body = JobCreate(deployment="d", outputs=outputs or {"label": "pred"}, only=only)  # type: ignore[arg-type]
    job = await jobs.submit_job(cast(GatewayStore, samples), sent, user("bob"), DATASET, body)
    return cast(dict, job), sent


def ids_sent(sent: Sent) -> list[str]:
    return [i for _, e in sent for i in cast(JobSubmitted, e).sample_ids or []]


@pytest.mark.parametrize("indexed", [True, False])
async def test_missing_runs_only_the_samples_without_the_field_and_counts_them(samples, indexed):
    kinds = zoo(samples)
    samples.indexed = {"pred"} if indexed else set()
    job, sent = await submit(samples, "missing")
    assert ids_sent(sent) == [kinds["missing"], kinds["other-field"]]  # a user's own value is there
    assert (job["total"], job["only"], job["status"]) == (2, Only.MISSING, JobStatus.QUEUED)


async def test_stale_also_runs_what_another_model_or_version_wrote_but_not_its_own(samples):
    kinds = zoo(samples)
    samples.indexed = {"pred"}
    job, sent = await submit(samples, "stale")
    expected = sorted(kinds[k] for k in ("missing", "newer", "other-before", "other-after", "other-field"))
    assert (ids_sent(sent), job["total"]) == (expected, 5)


@pytest.mark.parametrize("only", [Only.MISSING, Only.STALE])
def test_the_ranges_of_a_field_never_overlap_so_their_counts_add_up(samples, only):
    zoo(samples)
    deployment = cast(Deployment, {"model": "Digits", "version": 1})
    queries = incremental.ranges("photos", "s9999", "pred", deployment, only)
    assert all(sum(matches(r, q) for q in queries) <= 1 for r in samples.rows)


async def test_a_sample_added_after_the_submit_is_not_selected(samples):
    samples.add()
    samples.add({"pred": 1}, {"pred": by("Digits", 1)})
    until, every = await samples.samples_now("photos")
    samples.add()  # after the submit's look at the dataset
    deployment = samples.deployments["d"]
    chosen = await incremental.select(samples, "photos", until, every, deployment, ["pred"], Only.MISSING)
    assert (chosen.total, chosen.sample_ids) == (1, ["s0000"])


async def test_with_nothing_to_run_the_job_completes_at_once_and_nothing_is_sent(samples):
    samples.add({"pred": 1}, {"pred": by("Digits", 1)})
    job, sent = await submit(samples, "stale")
    assert (job["status"], job["total"], job["progress"], sent) == (JobStatus.COMPLETED, 0, 1.0, [])


@pytest.mark.parametrize("indexed", [True, False])
async def test_when_every_sample_is_selected_it_runs_as_a_plain_job_without_ids(samples, indexed):
    for _ in range(3):
        samples.add({"pred": 1}, {"pred": by("Digits", 2)})
    samples.indexed = {"pred"} if indexed else set()
    job, sent = await submit(samples, "stale")
    ((_, event),) = sent
    assert (job["total"], cast(JobSubmitted, event).sample_ids) == (3, None)
    assert bool(samples.counted) == indexed  # counted only on the index: never a read of every sample
    assert bool(samples.read) != indexed  # and the ids are not read when the counts said it all


async def test_two_outputs_select_the_samples_lacking_either_once_each(samples):
    samples.add({"pred": 1}, {"pred": by("Digits", 1)})
    samples.add({"pred": 1, "p2": 1}, {"pred": by("Digits", 1), "p2": by("Digits", 1)})
    samples.add({"p2": 1}, {"p2": by("Digits", 1)})
    samples.add()
    outputs = samples.versions[0]["schema"]["outputs"]["properties"]
    samples.versions[0]["schema"] = {
        **SCHEMA,
        "outputs": {"type": "object", "properties": {**outputs, "other": {"type": "number"}}},
    }
    job, sent = await submit(samples, "missing", {"label": "pred", "other": "p2"})
    assert (ids_sent(sent), job["total"]) == (["s0000", "s0002", "s0003"], 3)


async def test_a_large_selection_goes_out_in_parts_that_together_hold_it_once(samples, monkeypatch):
    monkeypatch.setattr(jobs, "ID_PART_SIZE", 2)
    for _ in range(5):
        samples.add()
    samples.add({"pred": 1}, {"pred": by("Digits", 1)})
    job, sent = await submit(samples, "missing")
    events = [cast(JobSubmitted, e) for _, e in sent]
    assert [len(e.sample_ids or []) for e in events] == [2, 2, 1]
    assert len({e.event_id for e in events}) == 3 and [e.part for e in events] == [0, 1, 2]
    assert (sorted(ids_sent(sent)), job["total"]) == ([f"s{i:04d}" for i in range(5)], 5)


async def test_the_fields_a_job_writes_get_their_index_built(samples):
    samples.add()
    await submit(samples, "all")
    assert samples.indexing == ["pred"]


def test_the_http_models_spell_out_the_same_choices_as_the_enum():
    assert set(get_args(OnlyValue)) == {o.value for o in Only}
