"""Flow control: each deployment has a bounded window of tasks in flight, shared round-robin
by the jobs running on it, and refilled as their tasks are announced done.

Why: with every task of every job published at once, one queue served them first-in first-out,
so a small job waited behind a big one even on another, idle deployment. Now a deployment's
in-flight tasks never exceed its window (`modelhub_contracts.queue.window`), a job with fewer
tasks in flight gets the next free place first (ties to the job served longest ago), and jobs on
different deployments never share a window (a deployment with a backlog lends part of its window
while one with less work left runs: effective_window). All state is the task queue in MongoDB:
after a restart, `fill` of every deployment resumes where the dead scheduler stopped.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from modelhub_contracts.events import TaskScheduled
from modelhub_scheduler.pace import Pace
from modelhub_scheduler.schedule import TASK_SAMPLES
from modelhub_scheduler.store import QueueStore

log = logging.getLogger(__name__)

Publish = Callable[[TaskScheduled], Awaitable[None]]

# A deployment with a backlog (more tasks left than its window) yields part of its window while
# a deployment with less work left has tasks: shortest-remaining-first between deployments. Both
# run (neither waits for the other); the one with less left gets the stack's CPU first. Measured
# on 2 cores: a 2,000-sample job beside a 60,000-sample one on another deployment took ~3x its
# time alone, each stage (scheduler, workers, Serve's proxy, MongoDB, the fold) shared half and
# half. A quarter of the window still keeps replicas busy: each task is up to 8 mini-batch calls.
YIELD_SHARE = 4
REMAINING_TTL_S = 0.1  # how long a reading of every deployment's tasks left serves fills


# Tasks in flight that keep a deployment's pipeline going: one is read and written while another is
# being called.
PIPELINE_TASKS = 2


def sized_window(window: int, task_samples: int) -> int:
    """The window in tasks of `task_samples`: a window is counted in tasks of up to TASK_SAMPLES,
    and a deployment whose tasks are larger (sized by its pace, schedule.task_size) has as many
    samples in flight, in fewer of them (at least PIPELINE_TASKS). What is in flight is what a job
    arriving on another deployment waits behind (bench/README.md: a full window of tasks of 2,048
    made a small job there about 1.5x slower than this)."""
    if task_samples <= TASK_SAMPLES:
        return window
    return max(PIPELINE_TASKS, window * TASK_SAMPLES // task_samples)


def effective_window(window: int, deployment: str, remaining: dict[str, int]) -> int:
    """The deployment's window, or a quarter of it (at least 1) while it has more than a window
    of tasks left and another deployment with fewer left (but some) has tasks too."""
    mine = remaining.get(deployment, 0)
    if mine > window and any(0 < n < mine for d, n in remaining.items() if d != deployment):
        return max(1, window // YIELD_SHARE)
    return window


def share(free: int, in_flight: dict[str, int], served: dict[str, int], jobs: list[str]) -> dict[str, int]:
    """How many of `free` places each job gets: one at a time to the job with the fewest in flight,
    ties to the job served longest ago (round-robin). Updates `served` (job -> tick of its latest
    place) for the next fill."""
    load = {job: in_flight.get(job, 0) for job in jobs}
    given = dict.fromkeys(jobs, 0)
    tick = max(served.values(), default=0) + 1
    for _ in range(free if jobs else 0):
        job = min(jobs, key=lambda j: (load[j], served.get(j, -1)))
        given[job] += 1
        load[job] += 1
        served[job], tick = tick, tick + 1
    return {job: n for job, n in given.items() if n}


class Dispatcher:
    """Publishes waiting tasks into each deployment's free window places, one fill at a time
    per deployment (this process is the only scheduler of the embedded stack)."""

    def __init__(self, store: QueueStore, publish: Publish, pace: Pace | None = None) -> None:
        self.store, self.publish = store, publish
        self.pace = pace if pace is not None else Pace()  # told of every task sent
        self._task_samples: dict[str, int] = {}  # deployment -> samples of the task it was sent last
        self.locks: dict[str, asyncio.Lock] = {}
        # deployment -> job -> tick of its latest place (round-robin order), for jobs with tasks
        self.served: dict[str, dict[str, int]] = {}
        self.pending: set[str] = set()  # deployments with a poked fill not yet started
        self.background: set[asyncio.Task] = set()
        self._remaining: tuple[float, dict[str, int]] = (-REMAINING_TTL_S, {})

    def poke(self, deployment: str) -> None:
        """Fill the deployment soon, in the background. Pokes that arrive while a fill waits for
        its turn are one fill: a burst of finished tasks costs one round of queries, not one each."""
        if deployment in self.pending:
            return
        self.pending.add(deployment)
        task = asyncio.create_task(self._poked(deployment))
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _poked(self, deployment: str) -> None:
        async with self.locks.setdefault(deployment, asyncio.Lock()):
            self.pending.discard(deployment)
            try:
                await self._fill(deployment)
            except Exception:  # MongoDB or NATS away: the sweep fills it again shortly
                log.exception("filling deployment %s failed", deployment)

    async def remaining(self) -> dict[str, int]:
        """Tasks left (waiting or in flight) per deployment, read at most every REMAINING_TTL_S."""
        at, counts = self._remaining
        if time.monotonic() - at >= REMAINING_TTL_S:
            counts = await self.store.tasks_by_deployment()
            self._remaining = (time.monotonic(), counts)
        return counts

    async def fill(self, deployment: str) -> int:
        """Drop the tasks of cancelled jobs from the deployment's queue, then publish tasks until
        its window is full or it has none waiting; returns how many were published."""
        async with self.locks.setdefault(deployment, asyncio.Lock()):
            queued = await self.store.jobs_with_tasks(deployment)
            if closed := await self.store.closed_jobs(queued):
                await self.store.drop_jobs(closed)
            self.served[deployment] = {
                job: tick
                for job, tick in self.served.get(deployment, {}).items()
                if job in queued and job not in closed
            }
            return await self._fill(deployment)

    async def _fill(self, deployment: str) -> int:
        # The refill after each finished task, and the poke of a job's tasks as they are stored,
        # skip the cancelled-jobs check (fill, from the sweep and after a job is planned, does it;
        # a job cancelled before it is planned is not planned): the refill runs once per task,
        # where that check's reads would be most of the scheduler's CPU per task.
        served = self.served.setdefault(deployment, {})
        # read at once (a new job's first tasks wait for them)
        in_flight, window, remaining = await asyncio.gather(
            self.store.in_flight_by_job(deployment), self.store.window(deployment), self.remaining()
        )
        window = sized_window(window, self._task_samples.get(deployment, TASK_SAMPLES))
        window = effective_window(window, deployment, remaining)
        free = window - sum(in_flight.values())
        published = 0
        while free > 0 and (jobs := await self.store.jobs_waiting(deployment)):
            got = 0
            for job, n in share(free, in_flight, served, sorted(jobs)).items():
                tasks = await self.store.next_waiting(job, n)
                # published before marked: a crash in between republishes the same ids (deduplicated)
                await asyncio.gather(*(self.publish(t) for t in tasks))
                for t in tasks:
                    self.pace.sent(t.task_id, deployment, len(t.sample_ids))
                    self._task_samples[deployment] = len(t.sample_ids)
                await self.store.mark_in_flight([t.task_id for t in tasks])
                in_flight[job] = in_flight.get(job, 0) + len(tasks)
                got += len(tasks)
            if not got:
                break
            free, published = free - got, published + got
        return published
