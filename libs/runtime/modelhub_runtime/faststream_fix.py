"""The one local fix to FastStream, kept apart so it is easy to drop.

Works around: FastStream 0.7's JetStream pull loops (faststream.nats.subscriber.usecases.
stream_pull_subscriber) catch `nats.errors.TimeoutError`, but nats-py's `fetch` also raises the
builtin `TimeoutError` (asyncio's), which is not that subclass. It then escapes the batch loop,
which FastStream restarts, and the part of a batch fetched so far is dropped unacked: it waits out
`ack_wait` (30 s of frozen job progress). Catching the builtin, the base of both, keeps the
partial batch. FastStream is pinned below its next minor (`>=0.7,<0.8`, `faststream==0.7.8` in
constraints.txt) so that this stays checked against the code it patches; drop this module once
upstream catches the builtin.
"""

import builtins


def apply() -> None:
    """Patch the pull loop's module (idempotent; messaging applies it on import, and every
    service imports messaging)."""
    from faststream.nats.subscriber.usecases import stream_pull_subscriber

    # the patch rebinds a name the module imported (pyright reads that as using a private import)
    stream_pull_subscriber.TimeoutError = builtins.TimeoutError  # pyright: ignore[reportPrivateImportUsage]
