"""Online predict in the worker: the samples of concurrent requests share Model.predict batches.

One Serve call per sample would make online predict as slow as Serve's per-call cost, every
sample paying @serve.batch's whole window when alone. Here each request's samples join their deployment's queue, and one pump per deployment sends
the queue as `predict_chunk` calls of at most `mini_batch` samples, with at most
2 x `num_replicas` calls in flight (one running and one waiting per replica). While calls are in
flight the queue grows, so a busy deployment gets full batches; a batch that is not full waits
up to `batch_wait_ms` for company only while another call of its deployment is in flight, so a
lone request on an idle deployment is sent at once.

A batch that raises is split in halves down to the sample that fails (as for jobs): another
client's poisoned sample does not fail your request. A request that times out cancels its
samples: those still queued are dropped, and a call whose samples are all cancelled is cancelled
in Serve too. Admission is bounded per worker process: over `max_samples` in flight the request
is refused at once (429) instead of queueing without end.
"""

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from modelhub_worker.annotate import Outcome, PredictChunk, check_outputs, predict_many
from modelhub_worker.errors import ServingLost

RETRY_AFTER_S = 1.0


class Overloaded(Exception):
    """Too many samples in flight in this worker: try again after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float = RETRY_AFTER_S) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Shape:
    """How a deployment takes batches: from the deployment's options."""

    mini_batch: int
    max_calls: int
    wait_s: float


@dataclass
class _Lane:
    """One deployment's queue of samples and its calls in flight."""

    shape: Shape
    queue: deque = field(default_factory=deque)  # (sample, future)
    calls: dict = field(default_factory=dict)  # call task -> its futures
    freed: asyncio.Event = field(default_factory=asyncio.Event)
    pump: asyncio.Task | None = None


class OnlineBatcher:
    """Batches online samples per deployment into `predict_chunk` calls (see the module doc)."""

    def __init__(self, call: PredictChunk, describe: Callable[[BaseException], str], max_samples: int = 10_000) -> None:
        self._call, self._describe = call, describe
        self._lanes: dict[str, _Lane] = {}
        self.max_samples = max_samples
        self.in_flight = 0  # samples admitted and not yet answered, all deployments

    async def run(self, deployment: str, samples: list[dict], shape: Shape) -> list[Any]:
        """Each sample's outputs (a dict) or its Outcome with the model's error, in order.
        Raises Overloaded at once when the worker is full, ServingLost when Serve gave no answer."""
        if self.in_flight and self.in_flight + len(samples) > self.max_samples:
            raise Overloaded(
                f"the inference worker has {self.in_flight} samples in flight "
                f"(limit {self.max_samples}); try again shortly"
            )
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in samples]
        lane = self._lane(deployment, shape)
        lane.queue.extend(zip(samples, futures, strict=True))
        if lane.pump is None or lane.pump.done():
            lane.pump = asyncio.create_task(self._pump(deployment, lane))
        self.in_flight += len(samples)
        try:
            return await asyncio.gather(*futures)
        finally:
            self.in_flight -= len(samples)
            for future in futures:
                future.cancel()  # no-op once answered; a queued sample is dropped, not sent
            self._cancel_orphans(lane)

    def _lane(self, deployment: str, shape: Shape) -> _Lane:
        lane = self._lanes.get(deployment)
        if lane is None:
            lane = self._lanes[deployment] = _Lane(shape)
        lane.shape = shape  # a redeployment may change it; the next batch follows
        return lane

    async def _pump(self, deployment: str, lane: _Lane) -> None:
        while lane.queue:
            if len(lane.calls) >= lane.shape.max_calls:
                lane.freed.clear()
                await lane.freed.wait()
                continue
            if lane.calls and len(lane.queue) < lane.shape.mini_batch and lane.shape.wait_s > 0:
                await asyncio.sleep(lane.shape.wait_s)  # busy: let the batch fill up a little
            batch = _take(lane.queue, lane.shape.mini_batch)
            if batch:
                task = asyncio.create_task(self._send(deployment, batch))
                lane.calls[task] = [future for _, future in batch]
                # a done callback, not a `finally` in _send: a task cancelled before its first
                # step never runs its body, and its slot would be lost for good
                task.add_done_callback(lambda done: _free(lane, done))

    async def _send(self, deployment: str, batch: list[tuple[dict, asyncio.Future]]) -> None:
        try:
            results = await predict_many(self._call, deployment, dict(enumerate(s for s, _ in batch)), self._describe)
        except ServingLost as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
        else:
            for i, (_, future) in enumerate(batch):
                if not future.done():
                    future.set_result(results[i])

    @staticmethod
    def _cancel_orphans(lane: _Lane) -> None:
        """Cancel the Serve calls whose every sample's request has gone (timed out)."""
        for task, futures in list(lane.calls.items()):
            if all(f.cancelled() for f in futures):
                task.cancel()


def _free(lane: _Lane, task: asyncio.Task) -> None:
    lane.calls.pop(task, None)
    lane.freed.set()


def _take(queue: deque, n: int) -> list[tuple[dict, asyncio.Future]]:
    """Up to n queued samples whose requests still wait for them."""
    batch = []
    while queue and len(batch) < n:
        sample, future = queue.popleft()
        if not future.done():
            batch.append((sample, future))
    return batch


async def predict_online(
    run: Callable, deployment: str, inputs: dict[str, list], types: dict[str, str], shape: Shape
) -> dict[str, list]:
    """Online predict: lists of inputs in, lists of checked outputs out, in the same order.
    Raises ValueError on bad input, RuntimeError when the model fails on a sample or an output
    breaks its type, ServingLost when the deployment gave no answer, Overloaded when full."""
    lengths = {len(v) for v in inputs.values()}
    if len(lengths) != 1:
        raise ValueError("every input list must have the same length")
    n = lengths.pop()
    samples = [{name: values[i] for name, values in inputs.items()} for i in range(n)]
    outputs: dict[str, list] = {name: [] for name in types}
    for i, result in enumerate(await run(deployment, samples, shape)):
        checked = result if isinstance(result, Outcome) else check_outputs(result, {t: t for t in types}, types)
        if checked.error:
            raise RuntimeError(f"sample {i}: {checked.error}")
        assert checked.fields is not None  # an outcome without an error has its fields
        for name in types:
            outputs[name].append(checked.fields[name])
    return outputs
