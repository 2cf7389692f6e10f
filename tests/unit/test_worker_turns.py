"""Newcomers first: a deployment that has just started working in the worker goes ahead of one busy
for longer, for a bounded time, and never otherwise."""

import asyncio

import pytest

from modelhub_worker.turns import NewcomersFirst

# long enough that a wait ending early is a defect, not a slow machine
LONG = 30.0


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def pending(awaitable, seconds: float = 0.05) -> asyncio.Task:
    """The awaitable as a task, checked to be still waiting after `seconds`."""
    waiting = asyncio.ensure_future(awaitable)
    await asyncio.sleep(seconds)
    assert not waiting.done()
    return waiting


async def test_a_deployment_alone_never_waits():
    turns = NewcomersFirst(young_s=LONG, cap_s=LONG)
    with turns.running("big"), turns.running("big"):
        assert await asyncio.wait_for(turns.turn("big"), 1) < 1


async def test_the_busy_deployment_waits_while_a_newcomer_has_tasks_and_goes_on_when_they_leave():
    clock = Clock()
    turns = NewcomersFirst(young_s=LONG, cap_s=LONG, clock=clock)
    with turns.running("big"):
        clock.now += 5  # big has been busy for 5 s when small's first task comes
        with turns.running("small"):
            assert await asyncio.wait_for(turns.turn("small"), 1) == 0  # the newcomer never waits
            big = await pending(turns.turn("big"))
        await asyncio.wait_for(big, 1)  # small's last task left: big goes on at once


async def test_the_newcomer_goes_first_only_for_young_s():
    clock = Clock()
    turns = NewcomersFirst(young_s=2.0, cap_s=LONG, clock=clock)
    with turns.running("big"):
        clock.now += 5
        with turns.running("small"):
            assert turns.ahead("big", clock.now) == clock.now + 2.0
            clock.now += 2.5  # small has been busy for longer than young_s: both run as before
            assert turns.ahead("big", clock.now) is None
            assert await asyncio.wait_for(turns.turn("big"), 1) == 0


async def test_a_wait_ends_at_the_newcomers_privilege_or_the_cap_whichever_comes_first():
    turns = NewcomersFirst(young_s=0.2, cap_s=LONG)  # the real clock
    with turns.running("big"):
        await asyncio.sleep(0.01)
        with turns.running("small"):
            waited = await asyncio.wait_for(turns.turn("big"), 5)
            assert 0.1 < waited < 5  # released by the end of small's 0.2 s, small still running
    capped = NewcomersFirst(young_s=LONG, cap_s=0.2)
    with capped.running("big"):
        await asyncio.sleep(0.01)
        with capped.running("small"):
            waited = await asyncio.wait_for(capped.turn("big"), 5)
            assert 0.1 < waited < 5


async def test_a_short_gap_between_tasks_does_not_make_a_busy_deployment_young_again():
    clock = Clock()
    turns = NewcomersFirst(young_s=LONG, gap_s=0.5, cap_s=LONG, clock=clock)
    with turns.running("big"):
        clock.now += 5
    with turns.running("small"):
        clock.now += 0.1  # big's next task comes 0.1 s after its last one left
        with turns.running("big"):
            assert turns.ahead("big", clock.now) is not None  # still the older one: it waits
            assert turns.ahead("small", clock.now) is None


async def test_after_a_longer_gap_a_deployment_starts_a_new_stretch():
    clock = Clock()
    turns = NewcomersFirst(young_s=LONG, gap_s=0.5, cap_s=LONG, clock=clock)
    with turns.running("a"):
        clock.now += 1
    with turns.running("b"):
        clock.now += 1  # a idle for 1 s > gap: its next task starts a stretch younger than b's
        with turns.running("a"):
            assert turns.ahead("b", clock.now) is not None
            assert turns.ahead("a", clock.now) is None


async def test_a_newcomer_idle_between_its_tasks_does_not_hold_the_others():
    clock = Clock()
    turns = NewcomersFirst(young_s=LONG, cap_s=LONG, clock=clock)
    with turns.running("big"):
        clock.now += 5
        with turns.running("small"):
            pass
        assert turns.ahead("big", clock.now) is None  # small has no task in the worker


async def test_what_is_kept_of_many_idle_deployments_is_bounded():
    clock = Clock()
    turns = NewcomersFirst(gap_s=0.5, clock=clock)
    for i in range(1000):
        with turns.running(f"d{i}"):
            pass
        clock.now += 1
    assert len(turns._since) <= 65 and len(turns._idle_since) <= 65


def test_the_setting_turns_it_off_or_changes_the_privilege(monkeypatch):
    from pydantic import ValidationError

    from modelhub_worker.settings import WorkerSettings

    assert WorkerSettings().newcomer_first_s == 0.5
    monkeypatch.setenv("MODELHUB_NEWCOMER_FIRST_S", "0")
    assert WorkerSettings().newcomer_first_s == 0
    monkeypatch.setenv("MODELHUB_NEWCOMER_FIRST_S", "-1")
    with pytest.raises(ValidationError):
        WorkerSettings()
    assert NewcomersFirst(young_s=3).cap_s == 6  # a wait's bound follows the privilege
