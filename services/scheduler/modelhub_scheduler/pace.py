"""Each deployment's pace: the samples per second it finishes while it has work, measured from the
tasks this scheduler sends it and hears back from. Planning sizes a job's tasks by it
(schedule.task_size).

Why: what a task costs besides its samples (queue entry, publish, write lease, event, fold) is
most of the stack's CPU per sample for a fast model at the smallest task size, and the right size
is a matter of time, not samples: a task of a slow model must stay short (jobs on one deployment
take turns task by task), one of a fast model can carry thousands of samples in the same time.
Only the deployment's own finished tasks tell which it is.

How: a busy stretch of a deployment runs from a task sent while none of its tasks was out to the
moment the last one out comes back. Its pace is the samples that came back over the time from its
start to the latest one back: the deployment's throughput with its window full, its pipeline's
start included (which only ever reads it low: smaller tasks, the safe side). The pace in use is
the current stretch's once READINGS of its tasks came back, else a moving average of the earlier
stretches'. Tasks that never come back (a cancelled job's) end their stretch once nothing came
back for IDLE_S. Kept in memory: a restarted scheduler plans its first job on a deployment at the
smallest size and measures again.
"""

import time
from collections import OrderedDict
from dataclasses import dataclass

# Weight of a finished stretch in the moving average of a deployment's stretches.
ALPHA = 0.5
# Tasks back in a stretch before it tells a pace: the first alone reads latency more than pace.
READINGS = 2
# A stretch with nothing back for this long is over, whatever is still out.
IDLE_S = 10.0
# Tasks remembered as sent (one that never comes back is forgotten oldest first).
SENT_MAX = 4096


@dataclass
class _Stretch:
    start: float
    last: float  # when its latest task came back (its start until then)
    samples: int = 0
    tasks: int = 0
    out: int = 0

    def pace(self) -> float | None:
        took = self.last - self.start
        return self.samples / took if self.tasks >= READINGS and took > 0 else None


class Pace:
    def __init__(self, clock=time.monotonic) -> None:
        self.clock = clock
        self._sent: OrderedDict[str, tuple[str, int]] = OrderedDict()  # task -> (deployment, samples)
        self._stretch: dict[str, _Stretch] = {}
        self._done: dict[str, float] = {}  # deployment -> moving average of its finished stretches
        self._generation: dict[str, object] = {}  # deployment -> what it ran when measured

    def sent(self, task_id: str, deployment: str, samples: int) -> None:
        if task_id in self._sent:  # sent again (a fill after a crash): still one task out
            return
        now = self.clock()
        stretch = self._stretch.get(deployment)
        if stretch is not None and now - stretch.last > IDLE_S:
            self._end(deployment)
            stretch = None
        if stretch is None:
            stretch = self._stretch[deployment] = _Stretch(start=now, last=now)
        stretch.out += 1
        self._sent[task_id] = (deployment, samples)
        while len(self._sent) > SENT_MAX:
            self._gone(*self._sent.popitem(last=False)[1])

    def back(self, task_id: str) -> None:
        """The task's last outcomes came back (once per task: its first such event)."""
        entry = self._sent.pop(task_id, None)
        if entry is None:  # sent by another scheduler, before this one started, or forgotten
            return
        deployment, samples = entry
        stretch = self._stretch.get(deployment)
        if stretch is None:
            return
        stretch.samples += samples
        stretch.tasks += 1
        stretch.last = self.clock()
        self._gone(deployment, samples)

    def _gone(self, deployment: str, samples: int) -> None:
        stretch = self._stretch.get(deployment)
        if stretch is not None:
            stretch.out -= 1
            if stretch.out <= 0:
                self._end(deployment)

    def _end(self, deployment: str) -> None:
        stretch = self._stretch.pop(deployment, None)
        if stretch is not None and (pace := stretch.pace()) is not None:
            before = self._done.get(deployment)
            self._done[deployment] = pace if before is None else before + ALPHA * (pace - before)

    def samples_per_s(self, deployment: str, generation: object = None) -> float | None:
        """The deployment's measured pace, None until a stretch had READINGS tasks back. A
        deployment whose `generation` (what it runs: its package, replicas) changed since is
        measured again."""
        if self._generation.setdefault(deployment, generation) != generation:
            self._generation[deployment] = generation
            self._done.pop(deployment, None)
            if deployment in self._stretch:
                stretch = self._stretch[deployment]
                self._stretch[deployment] = _Stretch(start=self.clock(), last=self.clock(), out=stretch.out)
        stretch = self._stretch.get(deployment)
        current = stretch.pace() if stretch is not None else None
        return current if current is not None else self._done.get(deployment)
