"""The Ray Serve deployment that runs a model package (the package `modelhub_replica`).

No hub process imports this module. The deployer ships its folder to the cluster as a runtime_env
`py_modules` package and names it by `import_path` in Serve's declarative config (through the Ray
dashboard's REST API), so Serve imports it on the cluster, and custom (pip/conda) environments get
it too. Everything that touches the model package (reading it, importing its module, building
`Model`) happens in `ModelReplica.__init__`, inside the replica actor on a replica node.

The model package comes as a second `py_modules` package that holds only the verified zip
(`modelhub_model_<sha256>/package.zip`, nothing importable): Ray keeps it while the deployment
lives and drops it after. The replica checks its sha-256 (any Ray member can write the cluster's
package store) and unpacks it into a cache per node, shared by the replicas on that node.

Callers reach a replica over HTTP through Serve's proxy, with JSON both ways (`__call__`):
nothing a model returns is ever unpickled in a hub service. Each call carries the deployment's
secret in a header (the deployer generates it and hands it to the replica and, through MongoDB,
to the inference worker); a call without it is refused, so a process on the machine cannot call a
deployment behind the hub's back. Of modelhub, this package imports only the direct path's wire
protocol (`modelhub_contracts.direct`, standard library only).

The direct path (`DirectServer`): Serve's HTTP proxy is most of online predict's latency and
costs CPU on every call (bench/README.md). So a replica of a fixed-size deployment also
listens on a TCP port of its own (on its node's address) and names it in its proxy answers
(`"direct": "host:port"`); the inference worker then calls it there, with the same JSON in
length-prefixed frames. Before anything is sent, both ends prove they hold the deployment's secret
without revealing it (HMAC over two fresh nonces and the address the replica listens on): a process
that takes over a dead replica's port, or relays to a live one, gets no secret and no samples.
The wire format and the proofs are `modelhub_contracts.direct`, which the worker imports too (the
deployer ships that stdlib-only module beside this package). Autoscaled deployments do not offer
it (Serve scales on the calls it sees).
"""

import asyncio
import contextlib
import hmac
import json
import os
import sys
import tempfile
import time
from typing import Any

from ray import serve

from modelhub_contracts import direct
from modelhub_replica.jail import JailSpec, ModelError, ModelProcess, ModelUnavailable

# The HTTP contract with the inference worker (modelhub_worker.serving names the same).
SECRET_HEADER = "x-modelhub-secret"
# The folder, inside the model's py_modules package, that holds the verified zip.
MODEL_PACKAGE_DIR = "modelhub_model_{sha256}"
MODEL_PACKAGE_FILE = "package.zip"
# The Ray resource that only replica nodes advertise; each replica takes a small share of it.
REPLICA_RESOURCE = "modelhub_replica"
REPLICA_RESOURCE_SHARE = 0.001
# The direct path's listener: how long a handshake may take, how many may be under way.
DIRECT_HANDSHAKE_S = 5.0
DIRECT_MAX_HANDSHAKING = 64  # connections not yet past the handshake; more are closed at once
# A job's call may carry several mini-batches (`{"batches": [[...], ...]}`), each one Model.predict
# call, answered in order (`{"results": [{"outputs": [...]} or {"error": "..."}, ...]}`).
MAX_BATCHES_PER_CALL = 64


def build(args: dict[str, Any]):
    """Serve's application builder (`import_path: modelhub_replica:build`): the deployment bound
    to this app's arguments (from the deployer's declarative config)."""
    return ModelReplica.bind(
        args["package_id"],
        args["sha256"],
        args["entrypoint"],
        int(args["mini_batch"]),
        float(args.get("batch_wait_s", 0.002)),
        args["secret"],
        bool(args.get("direct", False)),
        bool(args.get("allow_unsealed", False)),
        list(args.get("media_roots") or []),
        list(args.get("hidden") or []),
    )


@serve.deployment
class ModelReplica:
    """One replica of a deployed model: trusted glue around the model's jailed process (jail.py).
    `__call__` (HTTP, JSON) runs a batch as it comes (a job's task, or online samples the worker
    batched); `predict_one` gathers concurrent single-sample calls from direct Serve callers
    (benchmarks) into batches. No model code runs in this process."""

    def __init__(
        self,
        package_id: str,
        sha256: str,
        entrypoint: str,
        mini_batch: int,
        batch_wait_s: float = 0.002,
        secret: str = "",
        direct: bool = False,
        allow_unsealed: bool = False,
        media_roots: list[str] | None = None,
        hidden: list[str] | None = None,
    ) -> None:
        if not secret:
            raise ValueError("a replica needs its deployment's secret")
        self._secret = secret.encode()
        # started by the first proxy call (it needs the replica's event loop), then named in answers
        self._direct: DirectServer | None = DirectServer(self._secret, self._answer_request) if direct else None
        self._mini_batch = mini_batch
        jail = JailSpec(media_roots or [], [*(hidden or []), *_ray_dirs()], _has_gpus())
        self._model = ModelProcess(
            package_path(package_id, sha256), sha256, entrypoint, _cache_root(), jail, allow_unsealed
        )
        # @serve.batch adds these setters to the method at run time; Ray's types do not show them.
        self.predict_one.set_max_batch_size(mini_batch)  # pyright: ignore[reportAttributeAccessIssue]
        # The deployment's batch_wait_ms: a lone predict_one call waits this long for company.
        self.predict_one.set_batch_wait_timeout_s(batch_wait_s)  # pyright: ignore[reportAttributeAccessIssue]

    def __del__(self) -> None:
        model = getattr(self, "_model", None)
        if model is not None:
            model.close()

    async def __call__(self, request) -> Any:
        """The HTTP entry (Serve's proxy): `{"samples": [{input: value}, ...]}` in; 200 with
        `{"outputs": [{output: value}, ...]}`, or 200 with `{"error": "..."}` when the model failed
        on these samples (raised, or returned what JSON cannot carry); 403 without the secret.
        Or `{"batches": [[...], ...]}` (_answer_batches). A 200 names the direct path's address
        (`"direct"`) when this replica offers one."""
        from starlette.responses import Response

        def answer(body: dict, status: int = 200) -> Response:
            return Response(json.dumps(body), status_code=status, media_type="application/json")

        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, self._secret):
            return answer({"detail": "this deployment answers only the hub (missing or wrong secret)"}, 403)
        try:
            body = json.loads(await request.body())
            if isinstance(body, dict) and body.get("status") is True:  # the deployer's follow
                return answer({"model_process": self._model.state()})
            payload = request_payload(body)
        except (ValueError, KeyError, TypeError) as exc:
            return answer({"detail": f"bad request: {exc}"}, 400)
        extra = {}
        if self._direct is not None and (endpoint := await self._direct.start()):
            extra["direct"] = endpoint
        status, body = await self._answer_request(payload, request.headers.get("traceparent"), extra)
        return Response(body, status_code=status, media_type="application/json")

    async def _answer_request(
        self, payload: dict, traceparent: str | None, extra: dict | None = None
    ) -> tuple[int, bytes]:
        """A request (request_payload) as _answer or _answer_batches answers it."""
        if "batches" in payload:
            return await self._answer_batches(payload["batches"], traceparent, extra)
        return await self._answer(payload["samples"], traceparent, extra)

    async def _answer(self, samples: Any, traceparent: str | None, extra: dict | None = None) -> tuple[int, bytes]:
        """One call's answer as JSON, whichever way it came: 200 with the outputs or the model's
        error (it raised, or returned what JSON cannot carry), or 400 with a `detail` (bad input).
        With a traceparent it reports its span's timing (a replica has no exporter)."""
        if not _is_samples(samples):
            return 400, json.dumps({"detail": "bad request: 'samples' must be a list of objects"}).encode()
        started = time.time_ns()
        ((result, _),) = await self._results([samples])
        body: dict = {**result, **(extra or {})}
        if traceparent and "outputs" in result:
            body["span"] = _span(started, len(samples))
        return 200, json.dumps(body).encode()

    async def _answer_batches(
        self, batches: Any, traceparent: str | None, extra: dict | None = None
    ) -> tuple[int, bytes]:
        """Several mini-batches in one call (a job's task: one round trip instead of one per
        mini-batch, whose cost was most of a fast model's), each one Model.predict call, run one
        after the other. Each gets its own result, in order: `{"outputs": [...]}`, or `{"error":
        "..."}` when the model failed on it (the others are not failed with it)."""
        if (
            not isinstance(batches, list)
            or not 1 <= len(batches) <= MAX_BATCHES_PER_CALL
            or not all(_is_samples(b) for b in batches)
        ):
            detail = f"bad request: 'batches' must be a list of 1 to {MAX_BATCHES_PER_CALL} lists of objects"
            return 400, json.dumps({"detail": detail}).encode()
        started = time.time_ns()
        results = [data.decode() for _, data in await self._results(batches)]
        rest = dict(extra or {})
        if traceparent:
            rest["span"] = _span(started, sum(len(b) for b in batches))
        tail = "," + json.dumps(rest)[1:] if rest else "}"
        return 200, ('{"results":[' + ",".join(results) + "]" + tail).encode()

    async def _results(self, batches: list[list[dict[str, Any]]]) -> list[tuple[dict, bytes]]:
        """Each mini-batch's result from the model's process, and its JSON; one that breaks
        mini_batch is refused here, and a process that died fails every mini-batch of the call."""
        results: list[tuple[dict, bytes] | None] = [None] * len(batches)
        sized = []
        for i, batch in enumerate(batches):
            if 1 <= len(batch) <= self._mini_batch:
                sized.append(i)
            else:
                results[i] = _error(
                    f"ValueError: a call carries 1 to {self._mini_batch} samples (mini_batch), got {len(batch)}"
                )
        if sized:
            try:
                answers = await self._model.predict([batches[i] for i in sized])
            except ModelError as exc:
                answers = [_error(str(exc)[:2000])] * len(sized)
            for i, answer in zip(sized, answers, strict=True):
                results[i] = answer
        return [r for r in results if r is not None]

    async def check_health(self) -> None:
        """Serve calls this periodically; raising makes Serve replace the replica: the model's
        process cannot be started again, or the model's own probe (`Model.check_health()`,
        raising when it cannot answer, e.g. a lost GPU) failed."""
        await self._model.health()

    async def predict_chunk(self, samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A whole mini-batch in one call (jobs): one `Model.predict` call on these samples."""
        return _outputs((await self._results([samples]))[0][0])

    @serve.batch(max_batch_size=1, batch_wait_timeout_s=0.002)
    async def predict_one(self, samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One sample's {input: value} per call; Serve hands us up to mini_batch of them."""
        return _outputs((await self._results([samples]))[0][0])


def _error(text: str) -> tuple[dict, bytes]:
    result = {"error": text}
    return result, json.dumps(result).encode()


def _outputs(result: dict) -> list[dict[str, Any]]:
    if "error" in result:
        raise ModelError(result["error"])
    return result["outputs"]


def _has_gpus() -> bool:
    """Whether Ray gave this replica GPUs (then the model's jail gets the NVIDIA devices)."""
    try:
        import ray

        return bool(ray.get_gpu_ids())
    except Exception:  # outside a Ray worker (tests)
        return False


class DirectServer:
    """The direct path's listener in a replica (see the module doc): after the handshake, each
    frame is `{"samples": [...], "traceparent": ...}` (or `"batches"` for `"samples"`) and gets
    back the same JSON as the proxy's 200 (or a `detail` for bad input). When the caller goes away mid-call (its request was
    cancelled, it timed out) the call is cancelled here too, as Serve's proxy does."""

    def __init__(self, secret: bytes, answer, host: str | None = None) -> None:
        self._secret, self._answer_fn, self._host = secret, answer, host
        self._server: asyncio.AbstractServer | None = None
        self._starting: asyncio.Lock | None = None
        self.endpoint: str | None = None
        self.failed: str | None = None
        self._handshaking = 0

    async def start(self) -> str | None:
        """Listen (once) on this node's address and an ephemeral port; the "host:port", or None
        when it could not listen (the proxy path stays)."""
        if self.endpoint or self.failed:
            return self.endpoint
        self._starting = self._starting or asyncio.Lock()
        async with self._starting:
            if self.endpoint is None and self.failed is None:
                host = self._host or _node_address()
                try:
                    self._server = await asyncio.start_server(self._connection, host, 0)
                except OSError as exc:
                    self.failed = str(exc)
                    return None
                port = self._server.sockets[0].getsockname()[1]
                self.endpoint = f"{host}:{port}"
        return self.endpoint

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One caller's connection: the handshake, then its calls one by one. Whatever goes wrong
        (a broken frame, a peer gone, a model error that cannot even be described) ends this
        connection only; the caller then goes through Serve's proxy."""
        try:
            if self._handshaking >= DIRECT_MAX_HANDSHAKING:
                return  # many connections that never finish the handshake: refuse more for now
            self._handshaking += 1
            try:
                proven = await self._handshake(reader, writer)
            finally:
                self._handshaking -= 1
            if proven:
                while await self._one_call(reader, writer):
                    pass
        except Exception:  # noqa: BLE001 - the connection's end, never the replica's
            pass
        except asyncio.CancelledError:
            pass  # the loop is closing; Python 3.11's stream callback logs a cancelled handler as an error
        finally:
            writer.close()

    async def _handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        assert self.endpoint is not None
        async with asyncio.timeout(DIRECT_HANDSHAKE_S):
            return await direct.replica_handshake(reader, writer, self._secret, self.endpoint)

    async def _one_call(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Answer one frame; False when the connection is done."""
        try:
            body = await direct.read_frame(reader)
        except (asyncio.IncompleteReadError, direct.FrameTooLarge):
            return False  # the caller closed an idle connection, or broke the frame limit
        try:
            request = json.loads(body)
            payload, traceparent = request_payload(request), request.get("traceparent")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            frame = json.dumps({"detail": f"bad request: {exc}"}).encode()
        else:
            work = asyncio.ensure_future(self._answer_fn(payload, traceparent))
            gone = asyncio.ensure_future(reader.read(1))  # the caller sends nothing until answered
            try:
                await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (work, gone):
                    if not task.done():
                        task.cancel()  # the caller went away: stop its call, as Serve's proxy would
                for task in (work, gone):
                    with contextlib.suppress(BaseException):
                        await task
            if work.cancelled():
                return False
            _, frame = work.result()  # a 400's `detail` tells the caller it was bad input
        writer.write(direct.frame(frame))
        await writer.drain()
        return True


def request_payload(request: Any) -> dict:
    """What a call asks: `{"batches": ...}` or `{"samples": ...}` (KeyError when neither, TypeError
    when the request is no object); checked further by whoever answers it."""
    if not isinstance(request, dict):
        raise TypeError(f"a request is an object, not {type(request).__name__}")
    if "batches" in request:
        return {"batches": request["batches"]}
    return {"samples": request["samples"]}


def _is_samples(samples: Any) -> bool:
    """A call's samples (or one of its mini-batches) as JSON gives them: a list of objects."""
    return isinstance(samples, list) and all(isinstance(s, dict) for s in samples)


def _span(started_ns: int, samples: int) -> dict:
    """The timing a replica reports for a call (a replica has no exporter; the caller records it)."""
    return {"start_ns": started_ns, "end_ns": time.time_ns(), "batch_size": samples, "pid": os.getpid()}


def _node_address() -> str:
    """The address Ray knows this node by (127.0.0.1 on the embedded stack)."""
    try:
        import ray.util

        return ray.util.get_node_ip_address()
    except Exception:  # outside a Ray worker (tests)
        return "127.0.0.1"


# ---------------------------------------------------------------- the package, on this node


def _ray_dirs() -> list[str]:
    """This node's Ray temp and session dirs (sockets, logs, other deployments' environments): a
    jail never shows them."""
    try:
        from ray._private.worker import global_worker

        node = global_worker.node
        if node is None:
            return []
        return [node.get_temp_dir_path(), node.get_session_dir_path()]
    except Exception:  # an internal Ray API, or outside a Ray worker (tests)
        return []


def _cache_root() -> str:
    """This node's package cache: in the node's Ray session dir (gone with the node)."""
    try:
        from ray._private.worker import global_worker

        node = global_worker.node
        if node is None:
            raise RuntimeError("not connected to Ray")
        root = os.path.join(node.get_session_dir_path(), "modelhub-packages")
    except Exception:  # an internal Ray API: fall back to a temp dir of this node
        root = os.path.join(tempfile.gettempdir(), "modelhub-packages")
    os.makedirs(root, exist_ok=True)
    return root


def package_path(package_id: str, sha256: str) -> str:
    """The zip in this replica's py_modules package (Ray unpacked it into a folder on sys.path);
    jail.unpack_verified checks its sha-256 each time a model process starts from it."""
    name = MODEL_PACKAGE_DIR.format(sha256=sha256)
    for entry in sys.path:
        path = os.path.join(entry or ".", name, MODEL_PACKAGE_FILE)
        if os.path.isfile(path):
            return path
    raise ModelUnavailable(
        f"package {package_id} (sha256 {sha256}) is not in the cluster's package store; deploy it again"
    )
