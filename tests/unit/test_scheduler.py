"""The scheduler splits a job into deterministic mini-batch tasks and stops when cancelled."""

from modelhub_contracts.events import JobSubmitted
from modelhub_scheduler.schedule import schedule_job


def job(mini_batch: int, sample_ids=None) -> JobSubmitted:
    return JobSubmitted(job_id="j1", attempt=2, dataset="ds", deployment="dep", inputs={"x": "filepath"},
                        outputs={"y": "y"}, output_types={"y": "text"}, mini_batch=mini_batch,
                        sample_ids=sample_ids, submitted_by="bob")


async def ids(n: int):
    for i in range(n):
        yield f"s{i:03d}"


async def test_tasks_cover_every_sample_once_in_mini_batches():
    published = []

    async def publish(task):
        published.append(task)

    async def never():
        return False

    scheduled = await schedule_job(job(4), ids(10), publish, never)
    assert [t.sample_ids for t in published] == [
        ["s000", "s001", "s002", "s003"], ["s004", "s005", "s006", "s007"], ["s008", "s009"]]
    assert [t.task_id for t in published] == ["j1.2.0", "j1.2.1", "j1.2.2"]
    assert all(t.event_id == t.task_id and t.attempt == 2 for t in published)
    assert (scheduled.num_tasks, scheduled.num_samples, scheduled.event_id) == (3, 10, "j1.2.p0.scheduled")


async def test_same_job_twice_publishes_the_same_task_ids():
    first, second = [], []

    async def never():
        return False

    async def into(target):
        async def publish(task):
            target.append(task.event_id)
        return publish

    await schedule_job(job(3), ids(7), await into(first), never)
    await schedule_job(job(3), ids(7), await into(second), never)
    assert first == second


async def test_cancelled_job_publishes_nothing():
    published = []

    async def publish(task):
        published.append(task)

    async def cancelled():
        return True

    assert await schedule_job(job(2), ids(10), publish, cancelled) is None
    assert published == []
