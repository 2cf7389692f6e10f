"""Folding task outcomes into the per-sample ledger, at a cost that grows with the batch, not the job.

The ledger (`job_samples`, one row per job and sample) stays the truth; the job's `succeeded` and
`failed` follow it by increments. A batch's rows are first inserted as new (most outcomes are a
sample's first); a row that exists already is read once, the batch's outcomes are merged into it
in memory (a success always wins; a failure replaces only a failure of the same or an older
attempt, or a failure a retry runs again, `ok: None`), and only a row that changes is
written, with a filter on the state it was read in. So every counted change is a real transition
of one row, made by exactly one writer: a redelivered event changes no row and counts nothing, and
a row changed by someone else meanwhile is read again and merged again.

Crash safety without transactions: before touching the ledger, the fold marks each job it will
count (`recount_pending`); the increment clears the mark in the same update. A crash or a lost
MongoDB between the rows and the increment leaves the mark, and the next fold that touches the
job (the unacked batch comes back) recounts it from the ledger once, instead of adding. A job is
also recounted from the ledger when its counts say it is done, so a job completes on exact counts.

Several gateways (`--gateways N`) fold at once: each transition of a row is made, and counted, by
exactly one of them, so their increments add up exactly; each marks its folds under its own name
and recounts only after a cut fold of its own (`one_at_a_time` serialises one gateway's folds
of the same job; folds of different jobs run side by side). That recount is stored only if it is
not older than the stored counts; if another gateway is between its rows and its increment for the
same job at that moment, the job's counts can run ahead by that increment until the job completes
(the completing recount is exact).
"""

import asyncio
import contextlib
import weakref
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from pymongo import ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError

from modelhub_contracts.events import SampleAnnotated
from modelhub_gateway.store import GatewayStore

DUPLICATE_KEY = 11000
# A row that changes under the fold (another gateway, a retry reopening it) is read again; a
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


@dataclass(frozen=True)
class Row:
    """A ledger row's counted state: ok True (succeeded), False (failed), None (a retry runs it)."""

    ok: bool | None
    attempt: int
    error: str | None = None


@dataclass(frozen=True)
class Outcome:
    job_id: str
    sample_id: str
    ok: bool
    attempt: int
    error: str | None


class Raced(Exception):
    """Ledger rows kept changing under the fold; the batch is retried later."""


def merge(row: Row | None, outcome: Outcome) -> Row | None:
    """The row after an outcome: a success always wins and is never undone; a failure lands on no
    row, a failure of the same or an older attempt, or a sample a retry runs (`ok: None`) of an
    attempt not newer than the outcome's."""
    if row is not None and row.ok is True:
        return row
    if outcome.ok:
        return Row(True, outcome.attempt)
    if row is None or row.attempt <= outcome.attempt:
        return Row(False, outcome.attempt, outcome.error)
    return row


def outcomes_of(events: list[SampleAnnotated]) -> dict[str, list[Outcome]]:
    """Ledger key -> the batch's outcomes for it, in arrival order."""
    by_key: dict[str, list[Outcome]] = defaultdict(list)
    for event in events:
        for s in event.samples:
            by_key[f"{event.job_id}:{s.sample_id}"].append(
                Outcome(event.job_id, s.sample_id, s.ok, event.attempt, s.error)
            )
    return by_key


def delta(before: Row | None, after: Row) -> tuple[int, int]:
    """(succeeded, failed) change of a job when one of its rows goes from `before` to `after`."""
    old = before.ok if before else None
    return (after.ok is True) - (old is True), (after.ok is False) - (old is False)


async def fold(store: GatewayStore, events: list[SampleAnnotated]) -> dict[str, tuple[int, int]]:
    """Write the batch's outcomes into the ledger; returns each job's (succeeded, failed) change,
    counted from the rows this call changed (nothing for a redelivered batch)."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    # The first round assumes no row exists yet (a first delivery of a first attempt, the common
    # case): the rows are inserted without reading them first, and an insert that meets an
    # existing row fails (duplicate key) and is read and merged in the next rounds.
    if (new := _new_rows(events)) is not None:
        lost = await _insert(store, new, counts)
        pending = {key: outs for key, outs in outcomes_of(events).items() if key in lost} if lost else {}
        first_round = 1
    else:  # a sample twice in the batch (a redelivery beside its first delivery): merged first
        pending = outcomes_of(events)
        first_round = 0
    for round_ in range(first_round, MAX_ROUNDS + 1):
        if not pending:
            return {job: (s, f) for job, (s, f) in counts.items()}
        rows = (
            {}
            if round_ == 0
            else {
                doc["_id"]: Row(doc.get("ok"), doc.get("attempt", 0), doc.get("error"))
                async for doc in store.ledger.find(
                    {"_id": {"$in": list(pending)}}, projection={"ok": 1, "attempt": 1, "error": 1}
                )
            }
        )
        changes = {}
        for key, outcomes in pending.items():
            row = rows.get(key)
            for outcome in outcomes:
                row = merge(row, outcome)
            if row != rows.get(key):
                changes[key] = (rows.get(key), row, outcomes[0])
        done = await _write(store, changes, counts)
        pending = {key: pending[key] for key in changes if key not in done}
    raise Raced(f"{len(pending)} ledger rows changed under the fold {MAX_ROUNDS} times")


def _new_rows(events: list[SampleAnnotated]) -> list[dict] | None:
    """The batch's outcomes as new ledger rows (what merge() makes of one outcome on no row),
    built straight from the events: the fold's common case without an Outcome, a Row and a merge
    per sample, which would be most of the fold's CPU. None when a sample appears twice in the batch."""
    rows: dict[str, dict] = {}
    for event in events:
        job_id, attempt = event.job_id, event.attempt
        for s in event.samples:
            key = f"{job_id}:{s.sample_id}"
            if key in rows:
                return None
            rows[key] = _row_doc(key, job_id, s.sample_id, attempt, s.ok, None if s.ok else s.error)
    return list(rows.values())


def _row_doc(key: str, job_id: str, sample_id: str, attempt: int, ok: bool | None, error: str | None) -> dict:
    """A ledger row as stored."""
    return {"_id": key, "job_id": job_id, "sample_id": sample_id, "attempt": attempt, "ok": ok, "error": error}


async def _insert(store: GatewayStore, docs: list[dict], counts: dict[str, list[int]]) -> set[str]:
    """Insert new rows, counting each one inserted; returns the keys of those that met an existing
    row (duplicate key): they are read and merged next."""
    if not docs:
        return set()
    lost: set[int] = set()
    try:
        await store.ledger.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        # A write concern error (a replica set that could not confirm the rows) is raised too: the
        # rows may be rolled back, so nothing is counted; the job's mark makes the next fold that
        # touches it recount from the ledger (module docstring).
        if exc.details.get("writeConcernErrors") or any(
            e["code"] != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])
        ):
            raise
        lost = {e["index"] for e in exc.details["writeErrors"]}
    for i, doc in enumerate(docs):
        if i not in lost:
            _count(counts, doc["job_id"], (doc["ok"] is True, doc["ok"] is False))  # delta(None, row)
    return {docs[i]["_id"] for i in lost}


async def _write(store: GatewayStore, changes: dict, counts: dict[str, list[int]]) -> set[str]:
    """Insert the new rows, update the changed ones on the state they were read in; count each
    row written. Returns the keys written (the others changed meanwhile: read them again)."""
    new = [(key, after, o) for key, (before, after, o) in changes.items() if before is None]
    docs = [_row_doc(key, o.job_id, o.sample_id, after.attempt, after.ok, after.error) for key, after, o in new]
    written = {key for key, _, _ in new} - await _insert(store, docs, counts)
    # updates, one bulk per (job, transition) so that each bulk's modified count is exact
    groups: dict[tuple, list[tuple[str, Row, Row]]] = defaultdict(list)
    for key, (before, after, o) in changes.items():
        if before is not None:
            groups[(o.job_id, before.ok, after.ok)].append((key, before, after))
    for (job_id, _, _), items in groups.items():
        ops = [
            UpdateOne(
                {"_id": key, "ok": before.ok, "attempt": before.attempt},
                {"$set": {"ok": after.ok, "attempt": after.attempt, "error": after.error}},
            )
            for key, before, after in items
        ]
        result = await store.ledger.bulk_write(ops, ordered=False)
        s, f = delta(items[0][1], items[0][2])
        _count(counts, job_id, (s * result.modified_count, f * result.modified_count))
        if result.modified_count == len(ops):
            written.update(key for key, _, _ in items)
        # else some rows changed meanwhile and were not written: all of the group are read again;
        # those written now merge to no change, the others are merged afresh
    return written


def _count(counts: dict[str, list[int]], job_id: str, change: tuple[int, int]) -> None:
    counts[job_id][0] += change[0]
    counts[job_id][1] += change[1]


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
                projection={"compacted_attempt": 1, "compacting": 1, "recount_pending": 1},
                return_document=ReturnDocument.BEFORE,
            )
            for job_id in job_ids
        )
    )
    return {doc["_id"]: doc for doc in before if doc is not None}


async def mark(store: GatewayStore, job_ids: list[str], who: str) -> None:
    """Before the rows: these jobs' counts are about to follow them (see the module docstring)."""
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
