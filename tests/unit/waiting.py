"""Waiting on a condition in async unit tests, instead of sleeping a fixed time (imported by the
test modules beside it: pytest puts this folder on the path)."""

import asyncio
from collections.abc import Callable


async def until(condition: Callable[[], object], timeout: float = 5.0, poll: float = 0.01) -> None:
    """Wait for `condition()` to hold, failing (TimeoutError) after `timeout` seconds. It is
    checked every `poll` seconds; 0 checks it at every turn of the event loop, before other tasks
    get further than their next await."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(poll)
