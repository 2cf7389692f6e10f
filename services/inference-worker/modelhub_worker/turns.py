"""Newcomers first: in one worker, the tasks of a deployment that has just started working go
ahead of those of deployments that have been busy for longer.

Why: the scheduler already gives a deployment with less work left most of each window
(dispatch.effective_window), but what the busy deployment had in the worker when the other one's
first tasks came still ran beside them: on 2 cores a 2,000-sample job on one deployment took
about twice its time alone beside a 60,000-sample job on another (bench/README.md, isolation),
its reads, calls, writes and events sharing every process with the big job's. The worker does
not know how much work a job has left, but it knows how long each deployment has been busy in
it: serving the one that has had the least service first (least attained service) finishes
short jobs first without knowing their size, and bounds what a long one gives up.

How: a deployment's busy stretch starts when its first task enters the worker after GAP_S with
none (shorter gaps, between one task and the next, keep it going). For YOUNG_S from its start it
goes first: a task of a deployment whose stretch began earlier waits before it reads its samples and
before it writes while the younger deployment has tasks in the worker and is within YOUNG_S,
at most twice YOUNG_S at each of the two points. What is already in a replica or in MongoDB finishes;
a job on one deployment and jobs on two deployments busy for more than YOUNG_S run as before.
"""

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

# A deployment goes first for this long from the start of its busy stretch in the worker. A job
# that ends within it (a small one: 2,000 samples of a fast model take 0.1-0.2 s) runs as if alone
# but for what was already in flight; a longer one then shares the worker as before. It is also
# the most a newcomer holds up the others (a GPU they keep busy idles meanwhile), so it is short.
YOUNG_S = 0.5
# Busy stretches of one deployment with less than this between them are one stretch: the gap
# between a task's end and the next one's arrival does not make a long job young again.
GAP_S = 0.5
# The longest one task waits at one point (two points per task), whatever keeps coming: twice
# the newcomer's privilege.
CAP_FACTOR = 2.0


class NewcomersFirst:
    """Which deployment's tasks go first in this worker (one asyncio loop)."""

    def __init__(
        self,
        young_s: float = YOUNG_S,
        gap_s: float = GAP_S,
        cap_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.young_s, self.gap_s, self.clock = young_s, gap_s, clock
        self.cap_s = cap_s if cap_s is not None else CAP_FACTOR * young_s
        self._running: dict[str, int] = {}  # deployment -> its tasks in the worker
        self._since: dict[str, float] = {}  # deployment -> start of its busy stretch
        self._idle_since: dict[str, float] = {}  # deployment -> when its last task left
        self._changed = asyncio.Event()  # set (and replaced) when a deployment's task leaves

    @contextmanager
    def running(self, deployment: str) -> Iterator[None]:
        """Around one task of the deployment in this worker."""
        now = self.clock()
        if not self._running.get(deployment) and now - self._idle_since.get(deployment, -1e18) > self.gap_s:
            self._since[deployment] = now
        self._running[deployment] = self._running.get(deployment, 0) + 1
        try:
            yield
        finally:
            self._running[deployment] -= 1
            if not self._running[deployment]:
                del self._running[deployment]
                self._idle_since[deployment] = self.clock()
                self._forget_idle()
            self._changed.set()
            self._changed = asyncio.Event()

    def ahead(self, deployment: str, now: float) -> float | None:
        """Until when (clock time) another deployment goes ahead of this one, or None: the latest
        end of the privilege of those younger than it with tasks in the worker."""
        mine = self._since.get(deployment, now)
        ends = [
            since + self.young_s
            for other, since in self._since.items()
            if other != deployment and other in self._running and since > mine and now - since < self.young_s
        ]
        return max(ends) if ends else None

    async def turn(self, deployment: str) -> float:
        """Wait while a younger deployment goes first (at most cap_s); returns the seconds waited."""
        start = self.clock()
        end = start + self.cap_s
        while (now := self.clock()) < end and (until := self.ahead(deployment, now)) is not None:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(end, until) - now)
        return self.clock() - start

    def _forget_idle(self) -> None:
        """Drop what is kept of deployments idle for longer than a gap (a stretch starts anew)."""
        if len(self._idle_since) <= 64:
            return
        now = self.clock()
        for deployment, idle in list(self._idle_since.items()):
            if now - idle > self.gap_s and deployment not in self._running:
                del self._idle_since[deployment]
                self._since.pop(deployment, None)
