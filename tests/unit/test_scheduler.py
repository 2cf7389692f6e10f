"""The scheduler plans a job into deterministic mini-batch tasks, and dispatches them through a
bounded window per deployment shared round-robin by its jobs."""

from modelhub_contracts.events import JobSubmitted, TaskScheduled
from modelhub_scheduler import dispatch
from modelhub_scheduler.dispatch import Dispatcher, share
from modelhub_scheduler.schedule import FIRST_BATCH, PLAN_BATCH, plan_job, task_for, task_size
from modelhub_scheduler.store import takes_no_tasks


def job(mini_batch: int, sample_ids=None, job_id="j1", deployment="dep") -> JobSubmitted:
    return JobSubmitted(
        job_id=job_id,
        attempt=2,
        dataset="ds",
        deployment=deployment,
        inputs={"x": "filepath"},
        outputs={"y": "y"},
        output_types={"y": "text"},
        mini_batch=mini_batch,
        sample_ids=sample_ids,
        submitted_by="bob",
    )


async def ids(n: int, per_read: int = 7):
    """The ids as the store reads them: in lists (of a size that is no task's)."""
    all_ids = [f"s{i:03d}" for i in range(n)]
    for start in range(0, n, per_read):
        yield all_ids[start : start + per_read]


async def never():
    return False


async def test_tasks_cover_every_sample_once_in_mini_batches():
    planned = []

    async def add(tasks, part):
        planned.extend(tasks)

    scheduled = await plan_job(job(4), ids(10), add, never)  # tasks of 32 samples
    # a task is whole mini-batches (up to 8, up to TASK_SAMPLES samples); the worker calls the model per mini-batch
    assert [t.sample_ids for _, t in planned] == [[f"s{i:03d}" for i in range(10)]]
    assert [(i, t.task_id, t.mini_batch) for i, t in planned] == [(0, "j1.2.0", 4)]
    assert all(t.event_id == t.task_id and t.attempt == 2 for _, t in planned)
    assert (scheduled.num_tasks, scheduled.num_samples, scheduled.event_id) == (1, 10, "j1.2.p0.scheduled")


async def test_a_small_jobs_tasks_are_announced_once_stored():
    planned, announced = [], []

    async def add(tasks, part):
        planned.append(len(tasks))

    # fewer tasks than FIRST_BATCH: one batch, announced as soon as it is stored
    scheduled = await plan_job(
        job(4), ids(3 * 32), add, never, stored=lambda: announced.append(sum(planned)), task_samples=32
    )
    assert planned == [3] and announced == [3]
    assert scheduled.num_tasks == 3


async def test_big_jobs_are_tasks_of_whole_mini_batches_up_to_task_samples():
    planned = []

    async def add(tasks, part):
        planned.extend(tasks)

    scheduled = await plan_job(job(100), ids(1_050), add, never)  # 5 mini-batches (500) per task
    assert [len(t.sample_ids) for _, t in planned] == [500, 500, 50]
    assert [s for _, t in planned for s in t.sample_ids] == [f"s{i:03d}" for i in range(1_050)]
    assert (scheduled.num_tasks, scheduled.num_samples) == (3, 1_050)
    assert task_size(512) == 512 and task_size(1000) == 1000 and task_size(64) == 512
    assert task_size(4) == 32  # at most 8 mini-batches: a slow model's tasks stay short


async def test_the_first_tasks_are_stored_and_announced_before_the_rest_are_planned():
    read, planned, announced = [0], [], []

    async def counted(n: int):
        async for batch in ids(n, per_read=32):  # one task's ids per read: "read so far" is exact
            read[0] += len(batch)
            yield batch

    async def add(tasks, part):
        planned.append(len(tasks))

    total = (FIRST_BATCH + PLAN_BATCH + 1) * 32
    scheduled = await plan_job(
        job(4), counted(total), add, never, stored=lambda: announced.append((read[0], sum(planned)))
    )
    # stored as soon as FIRST_BATCH tasks are planned (the ids read so far and no more), then PLAN_BATCH at a time;
    # the last batch is announced too (before the plan is recorded: plan_job's caller does that)
    assert planned == [FIRST_BATCH, PLAN_BATCH, 1]
    assert announced == [
        (FIRST_BATCH * 32, FIRST_BATCH),
        ((FIRST_BATCH + PLAN_BATCH) * 32, FIRST_BATCH + PLAN_BATCH),
        (total, FIRST_BATCH + PLAN_BATCH + 1),
    ]
    assert (scheduled.num_tasks, scheduled.num_samples) == (FIRST_BATCH + PLAN_BATCH + 1, total)


async def test_same_job_twice_plans_the_same_task_ids():
    first, second = [], []

    def into(target):
        async def add(tasks, part):
            target.extend(t.task_id for _, t in tasks)

        return add

    await plan_job(job(3), ids(7), into(first), never)
    await plan_job(job(3), ids(7), into(second), never)
    assert first == second


async def test_cancelled_job_plans_nothing_more():
    planned = []

    async def add(tasks, part):
        planned.extend(tasks)

    async def cancelled():
        return True

    assert await plan_job(job(512), ids(PLAN_BATCH * 512 + 1), add, cancelled) is None  # checked per PLAN_BATCH tasks
    assert planned == []


def test_free_places_go_to_the_job_with_fewest_in_flight_then_round_robin():
    served: dict[str, int] = {}
    assert share(4, {"big": 8}, served, ["big", "small"]) == {"small": 4}
    assert share(3, {}, served, ["a", "b", "c"]) == {"a": 1, "b": 1, "c": 1}
    # equal load: whoever was served longest ago goes first
    assert share(1, {}, served, ["a", "b", "c"]) == {"a": 1}
    assert share(1, {}, served, ["a", "b", "c"]) == {"b": 1}


class FakeQueue:
    """The task queue in memory: waiting tasks per job in order, in-flight ones, a window per deployment."""

    def __init__(self, windows: dict[str, int]) -> None:
        self.windows, self.waiting, self.in_flight, self.closed = windows, {}, {}, set()

    def add(self, j: JobSubmitted, n: int) -> None:
        self.waiting[j.job_id] = [task_for(j, i, [f"{j.job_id}-{i}"]) for i in range(n)]

    def done(self, task_id: str) -> str:
        return self.in_flight.pop(task_id).deployment

    async def window(self, deployment):
        return self.windows[deployment]

    async def jobs_with_tasks(self, deployment):
        return sorted(
            {
                t.job_id
                for t in [*self.in_flight.values(), *(t for ts in self.waiting.values() for t in ts)]
                if t.deployment == deployment
            }
        )

    async def closed_jobs(self, job_ids):
        return [j for j in job_ids if j in self.closed]

    async def drop_jobs(self, job_ids):
        for j in job_ids:
            self.waiting.pop(j, None)
            self.in_flight = {k: t for k, t in self.in_flight.items() if t.job_id != j}

    async def in_flight_by_job(self, deployment):
        counts: dict[str, int] = {}
        for t in self.in_flight.values():
            if t.deployment == deployment:
                counts[t.job_id] = counts.get(t.job_id, 0) + 1
        return counts

    async def jobs_waiting(self, deployment):
        return [j for j, ts in self.waiting.items() if ts and ts[0].deployment == deployment]

    async def next_waiting(self, job_id, limit):
        return self.waiting.get(job_id, [])[:limit]

    async def tasks_by_deployment(self):
        counts: dict[str, int] = {}
        for t in [*self.in_flight.values(), *(t for ts in self.waiting.values() for t in ts)]:
            counts[t.deployment] = counts.get(t.deployment, 0) + 1
        return counts

    async def mark_in_flight(self, task_ids):
        for job_id, ts in self.waiting.items():
            moved = [t for t in ts if t.task_id in task_ids]
            self.in_flight.update({t.task_id: t for t in moved})
            self.waiting[job_id] = [t for t in ts if t.task_id not in task_ids]


def dispatcher(q: FakeQueue) -> tuple[Dispatcher, list[TaskScheduled]]:
    published: list[TaskScheduled] = []

    async def publish(task):
        published.append(task)

    return Dispatcher(q, publish), published


async def test_a_deployment_never_has_more_than_its_window_in_flight():
    q = FakeQueue({"dep": 4})
    q.add(job(1), 10)
    d, published = dispatcher(q)
    assert await d.fill("dep") == 4
    assert await d.fill("dep") == 0  # full: nothing more until a task is done
    q.done(published[0].task_id)
    assert await d.fill("dep") == 1
    assert [t.task_id for t in published] == [f"j1.2.{i}" for i in range(5)]  # in the job's order


async def test_a_small_job_after_a_big_one_shares_the_window_round_robin():
    q = FakeQueue({"dep": 4})
    q.add(job(1, job_id="big"), 100)
    d, published = dispatcher(q)
    await d.fill("dep")
    q.add(job(1, job_id="small"), 6)
    order = []
    while q.waiting["small"]:  # tasks finish oldest first; each freed place is refilled at once
        q.done(next(iter(q.in_flight)))
        before = len(published)
        await d.fill("dep")
        order += [t.job_id for t in published[before:]]
    # the small job takes the places the big one frees until each holds half the window; from then
    # on the freed places go half to each
    assert order[:2] == ["small", "small"]
    assert order[2:].count("small") == order[2:].count("big") == 4


async def test_jobs_on_different_deployments_never_share_a_window():
    q = FakeQueue({"busy": 4, "idle": 4})
    q.add(job(1, job_id="big", deployment="busy"), 100)
    q.add(job(1, job_id="small", deployment="idle"), 3)
    d, published = dispatcher(q)
    await d.fill("busy")
    assert await d.fill("idle") == 3  # the busy deployment's full window is no obstacle


async def test_a_backlog_yields_most_of_its_window_while_less_work_runs_elsewhere(monkeypatch):
    monkeypatch.setattr(dispatch, "REMAINING_TTL_S", 0.0)  # every fill reads the queue afresh
    q = FakeQueue({"busy": 8, "idle": 8})
    q.add(job(1, job_id="big", deployment="busy"), 100)
    d, published = dispatcher(q)
    assert await d.fill("busy") == 8  # alone: its whole window
    q.add(job(1, job_id="small", deployment="idle"), 5)
    assert await d.fill("idle") == 5  # the newcomer never waits: its whole window at once
    for task in [t for t in published if t.job_id == "big"][:7]:
        q.done(task.task_id)
    assert await d.fill("busy") == 1  # a quarter of 8 while the small job runs: 2 in flight
    assert sum(t.deployment == "busy" for t in q.in_flight.values()) == 2
    for task in [t for t in published if t.job_id == "small"]:
        q.done(task.task_id)
    assert await d.fill("busy") == 6  # the small job is done: the whole window again


def test_the_window_yields_only_to_a_deployment_with_less_left():
    assert dispatch.effective_window(8, "a", {"a": 100}) == 8
    assert dispatch.effective_window(8, "a", {"a": 100, "b": 5}) == 2
    assert dispatch.effective_window(8, "b", {"a": 100, "b": 5}) == 8  # the smaller one keeps it all
    assert dispatch.effective_window(8, "a", {"a": 100, "b": 100}) == 8  # equals: neither yields
    assert dispatch.effective_window(8, "a", {"a": 6, "b": 2}) == 8  # no backlog: nothing to yield
    assert dispatch.effective_window(2, "a", {"a": 100, "b": 1}) == 1  # never below one


async def test_a_cancelled_job_leaves_the_queue_and_its_places_go_to_others():
    q = FakeQueue({"dep": 2})
    q.add(job(1, job_id="a"), 10)
    q.add(job(1, job_id="b"), 10)
    d, published = dispatcher(q)
    await d.fill("dep")
    assert sorted(t.job_id for t in published) == ["a", "b"]
    q.closed.add("a")  # its in-flight task's worker will refuse to write: no done event comes
    await d.fill("dep")
    assert "a" not in q.waiting and [t.job_id for t in published[2:]] == ["b"]


def test_a_job_gone_cancelled_or_ended_at_its_attempt_takes_no_tasks():
    running = {"status": "running", "attempt": 1}
    assert not takes_no_tasks(running, 1)
    assert not takes_no_tasks({"status": "queued", "attempt": 1}, 1)
    assert takes_no_tasks(None, 1)  # gone
    assert takes_no_tasks(running | {"cancel_requested": True}, 1)  # being cancelled
    assert takes_no_tasks({"status": "cancelled", "attempt": 1}, 2)
    # its tasks ran before its plan was recorded (a crash): planned again, they would never come back
    assert takes_no_tasks({"status": "completed", "attempt": 1}, 1)
    # a retry's JobSubmitted comes before the job is reopened for it; a failed job may be retried
    assert not takes_no_tasks({"status": "completed", "attempt": 1}, 2)
    assert not takes_no_tasks({"status": "failed", "attempt": 1}, 1)
