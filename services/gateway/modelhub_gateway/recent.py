"""Documents read on every online predict, kept for a moment (a token's user, the deployment,
its model), so that a predict request costs no MongoDB round trip in the common case.

Why: without it every predict request makes three `find_one` calls (token, deployment, model),
and under load those calls, in the gateway and in mongod, bound online predict's throughput.

What it costs: what this gateway process changes itself (any write request: sharing, a token
rotated, a user disabled, a deployment stopped) clears the cache at once (`ForgetOnWrite`), so
a request that follows a change through the same gateway sees it. A change made elsewhere (another
gateway process, the deployer setting a deployment's status) shows within `ttl_s`
(MODELHUB_READ_CACHE_SECONDS, default 1 s; 0 turns the cache off).
"""

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

_MISSING = object()


class Recent:
    """A bounded read-through cache with a time to live. `None` results are kept too (an unknown
    token stays unknown for `ttl_s`). Concurrent misses of one key share one load: when an
    entry expires under N concurrent clients, they would otherwise send N identical queries at
    once."""

    def __init__(self, ttl_s: float, max_entries: int = 10_000) -> None:
        self.ttl_s, self.max_entries = ttl_s, max_entries
        self._entries: OrderedDict[tuple, tuple[float, Any]] = OrderedDict()

    async def get(self, key: tuple, load: Callable[[], Awaitable[Any]]) -> Any:
        if self.ttl_s <= 0:
            return await load()
        now = time.monotonic()
        expires, value = self._entries.get(key, (0.0, _MISSING))
        if value is not _MISSING and expires > now:
            return await value if isinstance(value, asyncio.Future) else value
        loading = asyncio.ensure_future(load())
        self._keep(key, now, loading)
        try:
            result = await asyncio.shield(loading)
        except BaseException:
            if self._entries.get(key, (0, None))[1] is loading:
                del self._entries[key]  # a failed load is not kept: the next caller tries again
            raise
        if self._entries.get(key, (0, None))[1] is loading:
            self._keep(key, now, result)
        return result

    def _keep(self, key: tuple, now: float, value: Any) -> None:
        self._entries[key] = (now + self.ttl_s, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget_all(self) -> None:
        self._entries.clear()


class ForgetOnWrite:
    """ASGI middleware: any request that may change something (not GET/HEAD/OPTIONS, and not an
    online predict, which changes nothing) clears `recent`, before and after it runs."""

    READS = frozenset({"GET", "HEAD", "OPTIONS"})

    def __init__(self, app: ASGIApp, recent: Recent, reads_also=None) -> None:
        self.app, self.recent, self.reads_also = app, recent, reads_also

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] in self.READS
            or (self.reads_also is not None and self.reads_also.match(scope["path"]))
        ):
            await self.app(scope, receive, send)
            return
        self.recent.forget_all()
        try:
            await self.app(scope, receive, send)
        finally:
            self.recent.forget_all()
