"""The model's own process: the only place a model package's code runs.

The replica (modelhub_replica.jail) starts this file inside a bubblewrap jail, with the package
unpacked read-only at its working directory and one end of a socketpair as file descriptor `FD`:

    python -s -B host.py FD ENTRYPOINT

It imports the model (`module:Class`, built with the package root as its one argument), says
`{"ready": true}` (or `{"fatal": "..."}` when the model cannot be built, then exits), and answers
requests until the socket closes. Every message is one frame: a 4-byte big-endian length, then
that many bytes of JSON, and a request carries an `id` that its answer repeats:

- `{"id", "batches": [[sample, ...], ...]}` -> a 4-byte length and `{"id", "lengths": [n, ...]}`,
  then each mini-batch's result, n bytes of JSON each (`{"outputs": [...]}` or `{"error": "..."}`),
  so that the replica checks each result and passes its bytes on as they are; one
  `Model.predict` call per mini-batch, in order; a model error (it raised, returned the wrong
  shape, or returned what JSON cannot carry) is that mini-batch's `error`, not the process's end;
- `{"id", "health": true}` -> `{"id", "ok": true}` or `{"id", "error": "..."}` (`Model.check_health`);
- `{"id", "cancel": true}`: the caller gave up on request `id` (an async model's call is cancelled).

This file imports only the standard library: it runs under whatever interpreter the deployment's
environment has (a pip or conda env of its own), and holds no secret, no credential and no way to
the hub (the jail gives it no network, no hub files and a clean environment).
"""

import asyncio
import importlib
import inspect
import json
import os
import socket
import sys
import traceback
from typing import Any

MAX_REQUEST = 256 << 20  # a replica never sends more (its own callers are bounded below that)


def columns(samples: list[dict[str, Any]]) -> dict[str, list]:
    """A mini-batch as Model.predict takes it: {input: [value per sample]}."""
    names = list(samples[0]) if samples else []
    for i, sample in enumerate(samples):
        if set(sample) != set(names):
            raise ValueError(f"sample {i} has inputs {sorted(sample)} but the batch has {sorted(names)}")
    return {name: [sample[name] for sample in samples] for name in names}


def rows(outputs: Any, size: int) -> list[dict[str, Any]]:
    """Model.predict's {output: [value per sample]} as one {output: value} per sample."""
    if not isinstance(outputs, dict):
        raise ValueError(f"Model.predict must return a dict of output lists, got {type(outputs).__name__}")
    lists = {name: as_list(name, values) for name, values in outputs.items()}
    for name, values in lists.items():
        if len(values) != size:
            raise ValueError(
                f"Model.predict returned {len(values)} values for output '{name}' but the batch has {size} samples"
            )
    return [{name: values[i] for name, values in lists.items()} for i in range(size)]


def as_list(name: str, values: Any) -> list:
    if hasattr(values, "tolist"):  # numpy arrays and tensors: plain Python values per sample
        values = values.tolist()
    if not isinstance(values, (list, tuple)):
        raise ValueError(f"Model.predict output '{name}' must be a list, got {type(values).__name__}")
    return list(values)


def describe(exc: BaseException) -> str:
    """`Type: message` of a model's exception, even one whose message cannot be built."""
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - a hostile or broken __str__
        text = "(its message could not be read)"
    return f"{type(exc).__name__}: {text}"[:2000]


class Host:
    """Answers the replica's requests with one model."""

    def __init__(self, model: Any, writer: asyncio.StreamWriter) -> None:
        self.model, self.writer = model, writer
        self.calls: dict[int, asyncio.Task] = {}
        self.sending = asyncio.Lock()

    async def send(self, frame: bytes) -> None:
        async with self.sending:
            self.writer.write(len(frame).to_bytes(4, "big") + frame)
            await self.writer.drain()

    async def predict(self, batch: Any) -> str:
        """One mini-batch's result, as JSON text."""
        try:
            if not isinstance(batch, list) or not batch or not all(isinstance(s, dict) for s in batch):
                raise ValueError("a mini-batch is a non-empty list of objects")
            predict = self.model.predict
            if inspect.iscoroutinefunction(predict):
                result = await predict(columns(batch))
            else:  # a sync model may take seconds: the loop stays free for other calls
                result = await asyncio.to_thread(predict, columns(batch))
            if inspect.isawaitable(result):
                result = await result
            return json.dumps({"outputs": rows(result, len(batch))})
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the model's failure on this batch: a verdict, not the end
            return json.dumps({"error": describe(exc)})

    async def health(self) -> str:
        probe = getattr(self.model, "check_health", None)
        try:
            if callable(probe):
                result = await asyncio.to_thread(probe)
                if inspect.isawaitable(result):
                    await result
            return '"ok":true'
        except Exception as exc:  # noqa: BLE001 - the model says it cannot answer
            return '"error":' + json.dumps(describe(exc))

    async def answer(self, request: dict) -> None:
        ident = int(request["id"])
        try:
            if request.get("health"):
                await self.send(f'{{"id":{ident},{await self.health()}}}'.encode())
            else:
                results = [(await self.predict(batch)).encode() for batch in request["batches"]]
                head = f'{{"id":{ident},"lengths":{json.dumps([len(r) for r in results])}}}'.encode()
                await self.send(len(head).to_bytes(4, "big") + head + b"".join(results))
        except asyncio.CancelledError:
            pass  # the replica gave up on this call: no answer
        finally:
            self.calls.pop(ident, None)

    async def serve(self, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                size = int.from_bytes(await reader.readexactly(4), "big")
            except asyncio.IncompleteReadError:
                return  # the replica closed the socket: this process's end
            if size > MAX_REQUEST:
                raise SystemExit(f"a request of {size} bytes is over the {MAX_REQUEST}-byte bound")
            request = json.loads(await reader.readexactly(size))
            ident = int(request["id"])
            if request.get("cancel"):
                if (task := self.calls.get(ident)) is not None:
                    task.cancel()
                continue
            self.calls[ident] = asyncio.create_task(self.answer(request))


def load(entrypoint: str) -> Any:
    """The model, built from the package in the working directory. The folder of this file comes
    next on the import path: it holds `modelhub_formats` (the adapters of packages without code,
    bound beside this file in the jail), after the package's own modules."""
    root = os.getcwd()
    # The adapters of packages without code of their own (modelhub_formats/, beside this file; in
    # the jail too), after the package: a package's own modules come first.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [root, here, *(p for p in sys.path if p not in (root, here))]
    module_name, _, class_name = entrypoint.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, class_name or "Model")(root)


async def run(fd: int, entrypoint: str) -> None:
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_unix_connection(sock=sock, limit=1 << 20)
    try:
        model = load(entrypoint)
    except BaseException:  # noqa: BLE001 - whatever the model's import or __init__ does, say it
        text = traceback.format_exc(limit=20)[-8000:]
        writer.write(_frame({"fatal": text}))
        await writer.drain()
        writer.close()
        raise SystemExit(1) from None
    host = Host(model, writer)
    await host.send(b'{"ready":true}')
    await host.serve(reader)


def _frame(message: dict) -> bytes:
    data = json.dumps(message).encode()
    return len(data).to_bytes(4, "big") + data


if __name__ == "__main__":
    asyncio.run(run(int(sys.argv[1]), sys.argv[2]))
