"""Batch consumers that hand over a batch as soon as it has a message, not when it is full.

FastStream's JetStream batch loop keeps fetching until the batch is full or its timeout has
passed, and nats-py's `fetch(n)` waits out its deadline for the rest once a first message came.
So every event waited up to the timeout before it was handled: the trace of an 8-sample job
showed its SampleAnnotated published at 229 ms and folded into progress at 377 ms (the gateway's
0.2 s batch wait), a third of a small job's time.

Here a batch starts with the first message there is (a long pull: idle consumers send one
request every IDLE_WAIT_S instead of one per batch timeout) and takes whatever else is already
waiting, up to the batch size, in a second short fetch. A lone event is handed over at once; a
busy stream still gives full batches, because messages pile up while the last batch is handled.
With `concurrency` above one, the next batch is fetched and handled while earlier ones are (the
gateway's progress folds: a small job's outcomes are not folded after a big job's batch).
"""

import asyncio
import logging
from typing import Any

from nats.errors import ConnectionClosedError
from nats.js.errors import ServiceUnavailableError

log = logging.getLogger(__name__)

IDLE_WAIT_S = 5.0  # the long pull for a batch's first message
TOP_UP_WAIT_S = 0.01  # the most the rest of a batch may add to the first message's wait
RECONNECT_PAUSE_S = 0.5


def prompt_batches(subscriber: Any, max_batch: int, concurrency: int = 1, top_up_s: float = TOP_UP_WAIT_S) -> None:
    """Give a FastStream JetStream batch pull subscriber (`PullSub(..., batch=True)`) this loop,
    handling up to `concurrency` batches at once (the handler must allow that). Call before the
    broker starts. Raises RuntimeError when FastStream's loop is not where this expects it
    (FastStream is pinned; a new version must be checked against this)."""
    if not callable(getattr(subscriber, "_consume_pull", None)):
        raise RuntimeError(f"{type(subscriber).__name__} has no pull loop to replace; check FastStream's version")

    async def consume_pull() -> None:
        slots = asyncio.Semaphore(concurrency)
        running: set[asyncio.Task] = set()

        async def consume(messages: list) -> None:
            try:
                await subscriber.consume(messages)
            finally:
                slots.release()

        try:
            while subscriber.running:
                await slots.acquire()  # a free slot before fetching: what is fetched is handled now
                messages = await _fetch(subscriber.subscription, 1, IDLE_WAIT_S)
                if messages and len(messages) < max_batch:
                    more = await _fetch(subscriber.subscription, max_batch - len(messages), top_up_s)
                    messages = None if more is None else messages + more
                if not messages or not subscriber.running:
                    slots.release()
                    if messages is None:  # not connected (a batch cut by it is redelivered whole)
                        await asyncio.sleep(RECONNECT_PAUSE_S)
                    continue
                task = asyncio.create_task(consume(messages))
                running.add(task)
                task.add_done_callback(running.discard)
        finally:
            if running:  # stopping: the batches in hand finish (unacked ones would come again)
                await asyncio.gather(*running, return_exceptions=True)

    subscriber._consume_pull = consume_pull


async def _fetch(subscription: Any, batch: int, timeout: float) -> list | None:
    """Up to `batch` messages, [] when none came in `timeout`, None when not connected."""
    try:
        return await subscription.fetch(batch=batch, timeout=timeout)
    except TimeoutError:  # asyncio's and nats-py's (a subclass) alike
        return []
    except (ConnectionClosedError, ServiceUnavailableError) as exc:
        log.debug("batch fetch: %s", exc)
        return None
