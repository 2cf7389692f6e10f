"""The shared NATS helpers' guarantees that do not need a server."""

import asyncio

from faststream.nats.subscriber.usecases import stream_pull_subscriber

import modelhub_runtime.messaging  # noqa: F401  (importing applies the fix under test)
from modelhub_runtime.messaging import retry_delay


def test_pull_loops_catch_the_timeout_nats_py_really_raises():
    # nats-py's fetch raises asyncio.TimeoutError when its deadline passes mid-batch; FastStream's
    # loop must catch it, or the messages fetched so far wait out ack_wait unacknowledged
    # the name the patch rebinds in FastStream's module (pyright reads it as a private import)
    assert issubclass(asyncio.TimeoutError, stream_pull_subscriber.TimeoutError)  # pyright: ignore[reportPrivateImportUsage]
    import nats.errors

    assert issubclass(nats.errors.TimeoutError, stream_pull_subscriber.TimeoutError)  # pyright: ignore[reportPrivateImportUsage]


def test_retry_delays_grow_and_stay_bounded():
    assert [retry_delay(n) for n in (1, 2, 3, 4, 5, 50)] == [2.0, 5.0, 15.0, 30.0, 30.0, 30.0]
