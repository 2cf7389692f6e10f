"""Folding task outcomes into the job ledger, at a cost that grows with the batch's tasks, not the job.

The ledger (`job_chunks`) holds one record per job, task and chunk (`_id` "job:task:chunk"; a
task's outcomes travel in fixed chunks by position, so a chunk always covers the same samples,
whoever publishes it): how many of its samples succeeded, and only its failed samples with their
errors (`failures`), and the samples a retry has taken away from it (`retried`). A sample of a
folded chunk that is not among its failures or retried has succeeded. The ledger stays the truth;
the job's `succeeded` and `failed` follow it by increments.

A batch's chunks are first inserted as new (most outcomes are a chunk's first delivery), a task's
512 samples in one small document; a record that exists already is read once, the batch's outcomes
are merged into it in memory (`merge`: a success always wins over a failure; a failure changes
nothing, since the sample either failed already or succeeded), and only a record that changes is
written, with a filter on the state it was read in (its `failed`, which every change lowers). So
every counted change is a real transition of one record, made by exactly one writer: a redelivered
event changes nothing and counts nothing, and a record changed by someone else meanwhile is read
again and merged again. A task belongs to one attempt (its id holds it); a retry takes its older
attempts' failures away from their records (`take_for_retry`), so that a late outcome of an older
attempt changes nothing and the retry's own records count those samples, with the newer error.

Crash safety without transactions: before touching the ledger, the fold marks each job it will
count (`recount_pending`); the increment clears the mark in the same update. A crash or a lost
MongoDB between the records and the increment leaves the mark, and the next fold that touches the
job (the unacked batch comes back) recounts it from the ledger once, instead of adding. A job is
also recounted from the ledger (`counted`, a sum over its records) when its counts say it is
done, so a job completes on exact counts.

Several gateways (`--gateways N`) fold at once: each transition of a record is made, and counted,
by exactly one of them, so their increments add up exactly; each marks its folds under its own
name and recounts only after a cut fold of its own (`one_at_a_time` serialises one gateway's folds
of the same job; folds of different jobs run side by side). That recount is stored only if it is
not older than the stored counts; if another gateway is between its records and its increment for
the same job at that moment, the job's counts can run ahead by that increment until the job
completes (the completing recount is exact).

Hubs before this ledger kept one row per sample (`job_samples`); `adopt_sample_rows` turns the rows
a hub upgraded in place still holds into records at the gateway's start (docs/operations.md).
"""

import asyncio
import contextlib
import logging
import weakref
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from pymongo import ReturnDocument
from pymongo.errors import BulkWriteError

from modelhub_contracts.events import OUTCOMES_PER_EVENT, SampleAnnotated
from modelhub_gateway.store import GatewayStore

log = logging.getLogger(__name__)

DUPLICATE_KEY = 11000
# A record that changes under the fold (another gateway, a retry taking its failures) is read again; a
# batch that loses this many rounds is NAKed and comes back later.
MAX_ROUNDS = 5


@dataclass
class _JobLock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0  # folds holding or waiting for it


_locks: "weakref.WeakKeyDictionary[GatewayStore, dict[tuple[asyncio.AbstractEventLoop, str], _JobLock]]" = (
    weakref.WeakKeyDictionary()
)


@asynccontextmanager
async def one_at_a_time(store: GatewayStore, job_ids: Iterable[str]) -> AsyncIterator[None]:
    """Serialise the folds (and a retry's recount) of the same jobs in one gateway: a fold holds
    the lock of every job in its batch (taken in sorted order, so two folds never wait on each
    other in a cycle); folds of other jobs run beside it. One lock per job and store (a gateway
    process holds one store) and per event loop, dropped when no fold holds or waits for it."""
    by_key = _locks.setdefault(store, {})
    loop = asyncio.get_running_loop()
    entries: list[tuple[tuple[asyncio.AbstractEventLoop, str], _JobLock]] = []
    try:
        for job_id in sorted(set(job_ids)):
            key = (loop, job_id)
            entry = by_key.setdefault(key, _JobLock())
            entry.users += 1
            entries.append((key, entry))
        async with contextlib.AsyncExitStack() as held:
            for _, entry in entries:
                await held.enter_async_context(entry.lock)
            yield
    finally:
        for key, entry in entries:
            entry.users -= 1
            if not entry.users:
                by_key.pop(key, None)


@dataclass
class _Folds:
    """One job's folds in one gateway: whose turn it is, and the events waiting for a fold."""

    turn: asyncio.Lock = field(default_factory=asyncio.Lock)
    waiting: list[tuple[list[SampleAnnotated], asyncio.Future]] = field(default_factory=list)
    users: int = 0


_folds: "weakref.WeakKeyDictionary[GatewayStore, dict[tuple[asyncio.AbstractEventLoop, str, str | None], _Folds]]" = (
    weakref.WeakKeyDictionary()
)


async def together(
    store: GatewayStore,
    job_id: str,
    events: list[SampleAnnotated],
    fold_job: Callable[[list[SampleAnnotated]], Awaitable[None]],
    folder: str | None = None,
) -> None:
    """Fold one job's events with `fold_job`, one fold of the job at a time (under one_at_a_time);
    the batches of the job that arrived while a fold of it ran are folded together in the next
    fold (a group commit: one mark, one insert, one count for all of them, instead of each waiting
    for the one before it, which would stretch the time between a job's last outcome and its
    completion by a fold per batch). Returns once this call's events are folded,
    raising what their fold raised. Per gateway name (`folder`): a fold counts under one name."""
    loop = asyncio.get_running_loop()
    by_key = _folds.setdefault(store, {})
    key = (loop, job_id, folder)
    entry = by_key.setdefault(key, _Folds())
    entry.users += 1
    done = loop.create_future()
    done.add_done_callback(_retrieved)  # a caller cancelled while it waited never reads it
    entry.waiting.append((events, done))
    try:
        async with entry.turn:  # FIFO: the first waiter folds everything that waits by then
            if not done.done():
                taken, entry.waiting = entry.waiting, []
                try:
                    async with one_at_a_time(store, [job_id]):
                        await fold_job([event for batch, _ in taken for event in batch])
                except Exception as exc:
                    _settle(taken, exc)
                except BaseException:  # cancelled (the gateway stopping): the others' batches come again
                    _settle(taken, RuntimeError("the fold was cancelled"))
                    raise
                else:
                    _settle(taken, None)
        await done
    finally:
        entry.users -= 1
        if not entry.users and by_key.get(key) is entry:
            del by_key[key]


def _settle(taken: list[tuple[list[SampleAnnotated], asyncio.Future]], error: BaseException | None) -> None:
    for _, done in taken:
        if not done.done():
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)


def _retrieved(done: asyncio.Future) -> None:
    if not done.cancelled():
        done.exception()


class Raced(Exception):
    """Ledger records kept changing under the fold; the batch is retried later."""


class BeforeReopen(Exception):
    """Outcomes of a retry's attempt came before the retry reopened the job (it publishes its
    tasks first, then takes the older attempts' failures away): the batch is retried later, when
    those failures no longer count, so the samples are never counted by both attempts at once."""


@dataclass
class Chunk:
    """A task chunk's outcomes as one batch carries them: each sample's outcome (a success wins
    over a failure in the same batch; of two failures, the first one's error is kept)."""

    job_id: str
    attempt: int
    outcomes: dict[str, tuple[bool, str | None]]

    def succeeded(self) -> set[str]:
        return {sample for sample, (ok, _) in self.outcomes.items() if ok}

    def doc(self, key: str) -> dict:
        """The chunk's record when it is the first to arrive."""
        failures = [{"sample_id": s, "error": e} for s, (ok, e) in self.outcomes.items() if not ok]
        return _record(key, self.job_id, self.attempt, len(self.outcomes), failures)


def key_of(event: SampleAnnotated) -> str:
    """A chunk's ledger key: a task's chunk always covers the same samples (by position), whoever
    publishes it, and a task belongs to one attempt (its id holds it)."""
    return f"{event.job_id}:{event.task_id}:{event.chunk}"


def chunks_of(events: list[SampleAnnotated]) -> dict[str, Chunk]:
    """Ledger key -> the batch's outcomes for that chunk, a chunk carried twice merged into one."""
    chunks: dict[str, Chunk] = {}
    for event in events:
        key = key_of(event)
        chunk = chunks.get(key)
        if chunk is None:
            chunks[key] = Chunk(event.job_id, event.attempt, {s.sample_id: (s.ok, s.error) for s in event.samples})
            continue
        for s in event.samples:
            if s.ok or s.sample_id not in chunk.outcomes:
                chunk.outcomes[s.sample_id] = (s.ok, s.error)
    return chunks


def merge(record: dict, chunk: Chunk) -> tuple[list[dict], int]:
    """What a chunk's outcomes change in its record: (the record's failures after them, how many
    of its failures became successes). A sample of the record that is not among its failures has
    succeeded, or a retry has taken it (`retried`: a newer attempt's tasks own it): so a failure
    changes nothing, and a success changes only a failure, which it always wins over."""
    failures = record.get("failures") or []
    if not failures:
        return failures, 0
    won = chunk.succeeded()
    kept = [f for f in failures if f["sample_id"] not in won]
    return kept, len(failures) - len(kept)


def _record(key: str, job_id: str, attempt: int, samples: int, failures: list[dict]) -> dict:
    """A ledger record as stored: one per job, task and chunk; `failed` is len(failures), kept
    beside them for the recount's sum and as the state a conditional update is made on."""
    return {
        "_id": key,
        "job_id": job_id,
        "attempt": attempt,
        "samples": samples,
        "succeeded": samples - len(failures),
        "failed": len(failures),
        "failures": failures,
    }


async def fold(store: GatewayStore, events: list[SampleAnnotated]) -> dict[str, tuple[int, int]]:
    """Write the batch's outcomes into the ledger; returns each job's (succeeded, failed) change,
    counted from the records this call inserted or changed (nothing for a redelivered batch)."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    chunks = chunks_of(events)
    pending = set(chunks)
    # The first round assumes no record exists yet (a chunk's first delivery, the common case):
    # the records are inserted without reading them first, and an insert that meets an existing
    # record fails (duplicate key) and is read and merged in the next rounds.
    records: dict[str, dict] = {}
    for round_ in range(MAX_ROUNDS + 1):
        if round_:
            records = {
                doc["_id"]: doc
                async for doc in store.ledger.find(
                    {"_id": {"$in": sorted(pending)}}, projection={"failures": 1, "failed": 1, "samples": 1}
                )
            }
        new = [chunks[key].doc(key) for key in sorted(pending) if key not in records]
        lost = await _insert(store, new, counts)
        missed = await _update(store, {key: records[key] for key in pending if key in records}, chunks, counts)
        pending = lost | missed
        if not pending:
            return {job: (s, f) for job, (s, f) in counts.items()}
    raise Raced(f"{len(pending)} ledger records changed under the fold {MAX_ROUNDS} times")


async def _insert(store: GatewayStore, docs: list[dict], counts: dict[str, list[int]]) -> set[str]:
    """Insert new records, counting each one inserted; returns the keys of those that met an
    existing record (duplicate key): they are read and merged next."""
    if not docs:
        return set()
    lost: set[int] = set()
    try:
        await store.ledger.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        # A write concern error (a replica set that could not confirm the records) is raised too:
        # they may be rolled back, so nothing is counted; the job's mark makes the next fold that
        # touches it recount from the ledger (module docstring).
        if exc.details.get("writeConcernErrors") or any(
            e["code"] != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])
        ):
            raise
        lost = {e["index"] for e in exc.details["writeErrors"]}
    for i, doc in enumerate(docs):
        if i not in lost:
            _count(counts, doc["job_id"], (doc["succeeded"], doc["failed"]))
    return {docs[i]["_id"] for i in lost}


async def _update(
    store: GatewayStore, records: dict[str, dict], chunks: dict[str, Chunk], counts: dict[str, list[int]]
) -> set[str]:
    """Turn the failures that the batch's successes win over into successes, each record on the
    state it was read in (its `failed`, which every change of a record lowers); count each record
    written. Returns the keys not written (changed meanwhile: read them again)."""
    changes = []
    for key, record in records.items():
        if record.get("samples") != len(chunks[key].outcomes):
            log.warning(
                "ledger %s: a chunk of %s samples, its record has %s",
                key,
                len(chunks[key].outcomes),
                record.get("samples"),
            )
        kept, won = merge(record, chunks[key])
        if won:
            changes.append((key, record["failed"], kept, won))
    if not changes:
        return set()
    results = await asyncio.gather(
        *(
            store.ledger.update_one(
                {"_id": key, "failed": failed},
                {"$set": {"failures": kept, "failed": len(kept)}, "$inc": {"succeeded": won}},
            )
            for key, failed, kept, won in changes
        )
    )
    missed = set()
    for (key, _, _, won), result in zip(changes, results, strict=True):
        if result.modified_count:
            _count(counts, chunks[key].job_id, (won, -won))
        else:
            missed.add(key)
    return missed


def _count(counts: dict[str, list[int]], job_id: str, change: tuple[int, int]) -> None:
    counts[job_id][0] += change[0]
    counts[job_id][1] += change[1]


async def counted(store: GatewayStore, job_id: str) -> tuple[int, int]:
    """The job's (succeeded, failed) by its ledger: a sum over its records (a few dozen for a job
    of 20,000 samples, read by the job_id index)."""
    return await summed(store, {"job_id": job_id})


async def summed(store: GatewayStore, records: dict) -> tuple[int, int]:
    """(succeeded, failed) summed over the ledger records that match `records` (one job's)."""
    pipeline = [
        {"$match": records},
        {"$group": {"_id": None, "succeeded": {"$sum": "$succeeded"}, "failed": {"$sum": "$failed"}}},
    ]
    async for doc in await store.ledger.aggregate(pipeline):
        return doc["succeeded"], doc["failed"]
    return 0, 0


async def take_for_retry(store: GatewayStore, job_id: str, attempt: int) -> None:
    """A retry (`attempt`) runs the job's failed samples again: in the records of older attempts
    their failures stop counting and go to `retried` (the retry's tasks own those samples now, so
    a late outcome of the older attempt changes nothing)."""
    await store.ledger.update_many(
        {"job_id": job_id, "attempt": {"$lt": attempt}, "failed": {"$gt": 0}},
        [
            {
                "$set": {
                    "retried": {"$concatArrays": [{"$ifNull": ["$retried", []]}, "$failures.sample_id"]},
                    "failures": [],
                    "failed": 0,
                }
            }
        ],
    )


def mark_key(folder: str | None) -> str:
    """The name a gateway marks its folds under (several gateways fold at once)."""
    return (folder or "gateway").replace(".", "_").replace("$", "_")


async def mark_and_read(store: GatewayStore, job_ids: list[str], who: str) -> dict[str, dict]:
    """mark() each job, returning each job as it was just before (what a fold needs of it: its
    compaction and its marks); a job that does not exist is absent."""
    before = await asyncio.gather(
        *(
            store.jobs.find_one_and_update(
                {"_id": job_id},
                {"$set": {f"recount_pending.{who}": True}},
                projection={"attempt": 1, "compacted_attempt": 1, "compacting": 1, "recount_pending": 1},
                return_document=ReturnDocument.BEFORE,
            )
            for job_id in job_ids
        )
    )
    return {doc["_id"]: doc for doc in before if doc is not None}


async def mark(store: GatewayStore, job_ids: list[str], who: str) -> None:
    """Before the records: these jobs' counts are about to follow them (see the module docstring)."""
    await store.jobs.update_many({"_id": {"$in": job_ids}}, {"$set": {f"recount_pending.{who}": True}})


async def unmark(store: GatewayStore, job_id: str, who: str) -> None:
    await store.jobs.update_one({"_id": job_id}, {"$unset": {f"recount_pending.{who}": ""}})


async def add_counts(
    store: GatewayStore, job_id: str, change: tuple[int, int], who: str, folder: str | None = None
) -> dict | None:
    """Add a job's change, recompute its progress and clear this gateway's mark, in one update;
    returns the job's counts after it (None: the job is gone)."""
    s, f = change
    stages: list[dict] = [
        {
            "$set": {
                "succeeded": {"$add": [{"$ifNull": ["$succeeded", 0]}, s]},
                "failed": {"$add": [{"$ifNull": ["$failed", 0]}, f]},
            }
        },
        {
            "$set": {
                "progress": {
                    "$cond": [
                        {"$gt": ["$total", 0]},
                        {"$round": [{"$divide": [{"$add": ["$succeeded", "$failed"]}, "$total"]}, 6]},
                        1.0,
                    ]
                }
            }
        },
        {"$unset": f"recount_pending.{who}"},
    ]
    if folder:
        stages.append({"$set": {"folded_by": {"$setUnion": [{"$ifNull": ["$folded_by", []]}, [folder]]}}})
    return await store.jobs.find_one_and_update(
        {"_id": job_id},
        stages,
        projection={"succeeded": 1, "failed": 1, "total": 1, "status": 1},
        return_document=ReturnDocument.AFTER,
    )


async def adopt_sample_rows(store: GatewayStore) -> int:
    """Turn the per-sample rows of an older hub (`job_samples`: one row per job and sample, `ok`
    True, False, or None for a failure a retry took) into ledger records, job by job, and delete
    the rows; returns how many jobs were adopted. Run at the gateway's start, before it consumes.

    Each job's rows, by sample id, become records of OUTCOMES_PER_EVENT samples, "job:rows:k", of
    the newest attempt among their rows (which a later retry's `attempt` is above, and which
    compaction's bound covers); all of a job's records are inserted before any of its rows is
    deleted, and an insert that meets an existing record keeps it, so an adoption cut anywhere, or
    run by two gateways at once, ends with each row in exactly one record."""
    adopted = 0
    for job_id in await store.sample_rows.distinct("job_id"):
        docs: list[dict] = []
        rows = store.sample_rows.find({"job_id": job_id}, sort=[("sample_id", 1)], allow_disk_use=True)
        part: list[dict] = []
        async for row in rows:
            part.append(row)
            if len(part) == OUTCOMES_PER_EVENT:
                docs.append(_adopted(job_id, len(docs), part))
                part = []
        if part:
            docs.append(_adopted(job_id, len(docs), part))
        for i in range(0, len(docs), 1_000):
            await _insert(store, docs[i : i + 1_000], defaultdict(lambda: [0, 0]))  # existing ones kept
        await store.sample_rows.delete_many({"job_id": job_id})
        adopted += 1
    return adopted


def _adopted(job_id: str, k: int, rows: list[dict]) -> dict:
    failures = [{"sample_id": r["sample_id"], "error": r.get("error")} for r in rows if r.get("ok") is False]
    record = _record(f"{job_id}:rows:{k}", job_id, max(r.get("attempt", 1) for r in rows), len(rows), failures)
    retried = [r["sample_id"] for r in rows if r.get("ok") is None]
    record["succeeded"] -= len(retried)
    if retried:
        record["retried"] = retried
    return record
