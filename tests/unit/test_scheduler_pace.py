"""Task sizes by a deployment's measured pace: the smallest until its tasks came back, then as many
whole mini-batches as it runs in TASK_SECONDS, within bounds; a plan keeps the size it got."""

from pytest import approx
from test_scheduler import FakeQueue, dispatcher, ids, job, never

from modelhub_scheduler import pace as pace_module
from modelhub_scheduler.dispatch import sized_window
from modelhub_scheduler.pace import IDLE_S, Pace
from modelhub_scheduler.schedule import FIRST_BATCH, TASK_SAMPLES_MAX, TASK_SECONDS, plan_job, task_size


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_size_is_the_smallest_until_a_pace_is_known_then_whole_mini_batches_of_task_seconds():
    assert task_size(64) == task_size(64, None) == 512
    assert task_size(64, 20_000) == TASK_SAMPLES_MAX == 2_048  # 5,000 in TASK_SECONDS, capped
    assert task_size(64, 3_000) == int(3_000 * TASK_SECONDS) // 64 * 64 == 704
    assert task_size(4, 100) == 32  # a slow model keeps the smallest: 8 mini-batches
    assert task_size(64, 1_000) == 512  # never below the smallest
    assert task_size(4_096, 1e9) == 4_096  # one mini-batch over the cap is still one task
    # a job fills its window: 20,000 samples in 4 places take the largest tasks, 2,000 the smallest
    assert task_size(64, 20_000, samples=20_000, window=4) == TASK_SAMPLES_MAX
    assert task_size(64, 20_000, samples=6_000, window=4) == 1_472  # 1,500 in whole mini-batches
    assert task_size(64, 20_000, samples=2_000, window=4) == 512


def test_a_stretch_reads_the_samples_back_over_its_time_once_two_tasks_came_back():
    clock = Clock()
    pace = Pace(clock)
    for i in range(4):
        pace.sent(f"t{i}", "dep", 512)
    clock.now += 0.2
    pace.back("t0")
    assert pace.samples_per_s("dep") is None  # one task alone reads its latency, not the pace
    clock.now += 0.1
    pace.back("t1")
    assert pace.samples_per_s("dep") == approx(1_024 / 0.3)
    pace.back("unknown")  # sent by another scheduler: no reading
    pace.sent("t4", "dep", 512)  # sent while the stretch runs: the same stretch
    clock.now += 0.3
    for t in ("t2", "t3", "t4"):
        pace.back(t)
    assert pace.samples_per_s("dep") == approx(2_560 / 0.6)  # the stretch ended; its pace stays


def test_finished_stretches_are_averaged_and_the_current_one_wins_once_it_reads():
    clock = Clock()
    pace = Pace(clock)

    def stretch(seconds: float) -> None:
        for t in ("a", "b"):
            pace.sent(f"{t}{clock.now}", "dep", 100)
        sent = list(pace._sent)
        clock.now += seconds
        for t in sent:
            pace.back(t)

    stretch(1.0)  # 200 samples/s
    stretch(0.5)  # 400 samples/s
    average = 200 + pace_module.ALPHA * (400 - 200)
    assert pace.samples_per_s("dep") == approx(average)
    for t in ("c", "d", "e"):
        pace.sent(t, "dep", 100)
    clock.now += 0.1
    pace.back("c")
    assert pace.samples_per_s("dep") == approx(average)  # one back: the average still
    pace.back("d")
    assert pace.samples_per_s("dep") == approx(2_000)  # the current stretch: 200 samples in 0.1 s
    clock.now += 0.1
    pace.back("e")  # it ends: averaged in
    assert pace.samples_per_s("dep") == approx(average + pace_module.ALPHA * (1_500 - average))


def test_a_stretch_whose_tasks_never_come_back_ends_after_idle_s():
    clock = Clock()
    pace = Pace(clock)
    for t in ("a", "b", "c"):
        pace.sent(t, "dep", 100)
    clock.now += 1.0
    pace.back("a")
    pace.back("b")  # "c" never comes back (its job was cancelled)
    assert pace.samples_per_s("dep") == 200
    clock.now += IDLE_S + 1
    for t in ("d", "e", "f"):  # a new stretch: the idle time is not read as slowness
        pace.sent(t, "dep", 100)
    clock.now += 0.5
    pace.back("d")
    pace.back("e")
    assert pace.samples_per_s("dep") == approx(400)


def test_a_deployment_that_runs_something_else_is_measured_again():
    clock = Clock()
    pace = Pace(clock)
    for t in ("a", "b"):
        pace.sent(t, "dep", 100)
    clock.now += 1.0
    pace.back("a")
    pace.back("b")
    assert pace.samples_per_s("dep", ("sha1", 2)) == 200
    assert pace.samples_per_s("dep", ("sha1", 2)) == 200
    assert pace.samples_per_s("dep", ("sha2", 2)) is None  # redeployed with another package
    assert pace.samples_per_s("other") is None


def test_tasks_sent_again_count_once_and_the_oldest_are_forgotten(monkeypatch):
    monkeypatch.setattr(pace_module, "SENT_MAX", 3)
    clock = Clock()
    pace = Pace(clock)
    pace.sent("a", "dep", 100)
    pace.sent("a", "dep", 100)  # a fill after a crash sends it again
    for t in ("b", "c", "d"):
        pace.sent(t, "dep", 100)
    assert list(pace._sent) == ["b", "c", "d"]  # "a" forgotten
    clock.now += 1.0
    for t in ("b", "c", "d"):
        pace.back(t)
    assert pace.samples_per_s("dep") == 300


async def test_a_plan_cuts_tasks_of_the_size_it_is_given():
    planned = []

    async def add(tasks, part):
        planned.extend(tasks)

    scheduled = await plan_job(job(64), ids(5_000), add, never, task_samples=1_536)
    assert [len(t.sample_ids) for _, t in planned] == [1_536, 1_536, 1_536, 392]
    assert [s for _, t in planned for s in t.sample_ids] == [f"s{i:03d}" for i in range(5_000)]
    assert (scheduled.num_tasks, scheduled.num_samples) == (4, 5_000)


def test_a_window_holds_as_many_samples_in_fewer_larger_tasks_but_at_least_two():
    assert sized_window(4, 512) == sized_window(4, 64) == 4
    assert sized_window(16, 2_048) == 4  # 16 tasks of 512 samples' worth
    assert sized_window(4, 2_048) == 2  # not 1: one task is read and written while another is called
    assert sized_window(1_024, 2_048) == 256  # a deployment gone: its tasks all go out to fail


async def test_a_deployment_sent_larger_tasks_keeps_fewer_in_flight():
    q = FakeQueue({"dep": 4})
    q.add(job(64), 6)
    # a job planned by a measured pace: tasks of 2,048 samples
    q.waiting["j1"] = [t.model_copy(update={"sample_ids": [f"s{i}" for i in range(2_048)]}) for t in q.waiting["j1"]]
    d, published = dispatcher(q)
    assert await d.fill("dep") == 4  # nothing sent yet: the window as planned tasks of up to 512 had it
    for t in published:
        q.done(t.task_id)
    assert await d.fill("dep") == 2  # its tasks are of 2,048: as many samples in flight as 4 of 512


async def test_larger_tasks_are_stored_in_batches_of_as_many_samples_not_as_many_tasks():
    stored = []

    async def add(tasks, part):
        stored.append(len(tasks))

    await plan_job(job(64), ids(300_000, per_read=5_000), add, never, task_samples=2_048)
    # 2 first (4,096 samples, as FIRST_BATCH tasks of 512 were), then batches of 125 tasks of 2,048
    # (256,000 samples, as 500 tasks of 512 were)
    assert FIRST_BATCH * 512 == 2 * 2_048
    assert stored == [2, 125, 20]
