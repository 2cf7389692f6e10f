"""A job's batches that wait for its running fold are folded together in the next fold (one mark,
one insert, one count for all of them); each caller returns once its own events are folded, or
raises what their fold raised. Folding itself (exact counts against a real MongoDB) is in
tests/integration/test_ledger_fold.py."""

import asyncio
from typing import cast

import pytest
from waiting import until

from modelhub_contracts.events import SampleAnnotated, SampleOutcome
from modelhub_gateway.progress import ledger
from modelhub_gateway.store import GatewayStore


class Store:
    """Only an identity: `together` keys its queues by store."""


def event(job_id: str, task: int) -> SampleAnnotated:
    return SampleAnnotated(
        job_id=job_id, attempt=1, task_id=f"t{task}", samples=[SampleOutcome(sample_id=f"s{task}", ok=True)]
    )


def callers(store: GatewayStore) -> int:
    """Calls of `together` on this store that have queued their events (folding or waiting)."""
    return sum(entry.users for entry in ledger._folds.get(store, {}).values())


class Folds:
    """A fold_job that records the tasks of each fold and holds each fold until released."""

    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.fail = fail

    async def __call__(self, batch: list[SampleAnnotated]) -> None:
        self.batches.append([e.task_id for e in batch])
        self.started.set()
        await self.release.wait()
        if self.fail and len(self.batches) > 1:
            raise RuntimeError("MongoDB went away")


async def test_batches_waiting_for_a_fold_of_their_job_are_folded_together_next():
    store, folds = cast(GatewayStore, Store()), Folds()
    first = asyncio.create_task(ledger.together(store, "j", [event("j", 0)], folds))
    await folds.started.wait()
    waiting = [asyncio.create_task(ledger.together(store, "j", [event("j", n)], folds)) for n in (1, 2, 3)]
    await until(lambda: callers(store) == 4)  # every call has queued its events
    assert folds.batches == [["t0"]] and not any(t.done() for t in [first, *waiting])
    folds.release.set()
    await asyncio.wait_for(asyncio.gather(first, *waiting), 1)
    assert folds.batches == [["t0"], ["t1", "t2", "t3"]]
    assert not ledger._folds.get(store)  # nothing kept once no fold of the job runs or waits


async def test_other_jobs_are_not_held_back():
    store, held, other = cast(GatewayStore, Store()), Folds(), Folds()
    other.release.set()
    first = asyncio.create_task(ledger.together(store, "j", [event("j", 0)], held))
    await held.started.wait()
    await asyncio.wait_for(ledger.together(store, "k", [event("k", 1)], other), 1)
    assert other.batches == [["t1"]] and not first.done()
    held.release.set()
    await first


async def test_batches_folded_under_another_gateway_name_are_not_mixed_in():
    store, folds = cast(GatewayStore, Store()), Folds()
    first = asyncio.create_task(ledger.together(store, "j", [event("j", 0)], folds))
    await folds.started.wait()
    waiting = [
        asyncio.create_task(ledger.together(store, "j", [event("j", 1)], folds, folder="gw-b")),
        asyncio.create_task(ledger.together(store, "j", [event("j", 2)], folds)),
    ]
    await until(lambda: callers(store) == 3)  # every call has queued its events
    folds.release.set()
    await asyncio.wait_for(asyncio.gather(first, *waiting), 1)
    assert sorted(folds.batches) == [["t0"], ["t1"], ["t2"]]  # a fold counts under one name


async def test_every_batch_of_a_failed_fold_raises_its_error():
    store, folds = cast(GatewayStore, Store()), Folds(fail=True)
    first = asyncio.create_task(ledger.together(store, "j", [event("j", 0)], folds))
    await folds.started.wait()
    waiting = [asyncio.create_task(ledger.together(store, "j", [event("j", n)], folds)) for n in (1, 2)]
    await until(lambda: callers(store) == 3)  # every call has queued its events
    folds.release.set()
    await first  # its own fold succeeded
    for task in waiting:  # folded together, failed together: both are redelivered
        with pytest.raises(RuntimeError, match="MongoDB went away"):
            await task
    assert folds.batches == [["t0"], ["t1", "t2"]]


async def test_a_cancelled_fold_fails_the_batches_it_took():
    store, folds = cast(GatewayStore, Store()), Folds()
    first = asyncio.create_task(ledger.together(store, "j", [event("j", 0)], folds))
    await folds.started.wait()
    folds.started.clear()
    second = asyncio.create_task(ledger.together(store, "j", [event("j", 1)], folds))
    third = asyncio.create_task(ledger.together(store, "j", [event("j", 2)], folds))
    await until(lambda: callers(store) == 3)  # every call has queued its events
    first.cancel()  # the gateway stopping mid-fold
    await folds.started.wait()  # the next in turn folds what waits
    assert folds.batches == [["t0"], ["t1", "t2"]]
    second.cancel()
    for task in (first, second):
        with pytest.raises(asyncio.CancelledError):
            await task
    with pytest.raises(RuntimeError, match="cancelled"):
        await third
    assert not ledger._folds.get(store)
