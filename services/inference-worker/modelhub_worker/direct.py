"""The direct path to replicas: a replica's own TCP port instead of Serve's HTTP proxy.

Why: Serve's HTTP proxy is most of online predict's latency at one client and costs CPU on every
call (jobs pay it once per call; numbers in bench/README.md). A replica of a fixed-size
deployment listens on a port of its own and names it in its proxy answers
(`modelhub_replica.DirectServer`); the worker remembers those addresses per deployment and calls
there, the same JSON in length-prefixed frames, one request at a time per pooled connection.

Trust: an address comes from the deployment's own proxy answers, and every new connection starts
with a handshake in which both ends prove they hold the deployment's secret without sending it
(HMAC over two nonces and the address; the wire protocol both ends import is
`modelhub_contracts.direct`). A process that took a dead replica's port, or relays to a
live one, fails it: it learns neither the secret nor any sample. Nothing is sent before the proof,
and answers are JSON only, bounded in size, as over HTTP: an answer whose frame declares more than
the caller's bound is not read (its connection is closed) and the call fails with AnswerTooLarge,
the model's verdict, without going through the proxy again (it would answer the same).

What stays on the proxy: every `PROXY_EVERY`-th call of a deployment whose replica count is not
known (how the worker learns of new replicas after a scale-up or a replacement; every
`LEARN_EVERY`-th while the proxy's answers still name addresses it did not know; with the count
known, see below), every call while no address is known, and the
call that meets a failed connection (the address is dropped and the call goes through the proxy
instead, so a dead replica costs no retry). A new address is used only once a first connection
to it has passed the handshake, made beside the calls (an address this worker cannot reach costs
no call its connect timeout), and an address that failed is not taken again for `SHUN_S`.
Autoscaled deployments offer no address (Serve scales on the calls its proxy sees).

A fixed-size deployment's replica count (its document's `num_replicas`, read with its secret: a
new count comes with a new deploy, so a new secret) tells the worker when it has met them all
(`expect`). Until then a task's mini-batches are spread over that many calls, not over the
replicas known, and a known replica takes a call only while this worker has none in flight to it
(the others go through the proxy, which reaches the replicas not met yet): a task's work no longer
piles on the first replica learned while the rest idle. Once every replica is known (or was named
and cannot be reached from here: its address shunned), only every `MET_PROXY_EVERY`-th call goes
through the proxy: the proxy picks its replica without seeing the direct calls, so each of its
calls lands blind, and a replica given more than its share holds up the job's end. When the proxy's
answers keep naming known replicas only (`SETTLED_AFTER` for each replica of the count, in a row),
fewer run than the count says (one lost and not back): the rule without a count holds then.
"""

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field

from modelhub_contracts import direct as wire
from modelhub_worker.errors import AnswerTooLarge

log = logging.getLogger(__name__)

# The default bound on one answer (the worker's `max_answer_bytes`): a job's call carries up to a
# task's samples (512, or one mini-batch of up to 4096), so 128 KiB of output per sample at 512.
MAX_ANSWER = 64 << 20
PROXY_EVERY = 16
# While it learns a deployment's replicas, the worker sends every LEARN_EVERY-th call through the
# proxy; once SETTLED_AFTER proxy answers in a row named addresses it knew, every PROXY_EVERY-th.
# Serve's proxy picks a replica per call, so learning every replica takes several proxy calls;
# until then a task's mini-batches go to the replicas known, and the others idle.
LEARN_EVERY = 2
SETTLED_AFTER = 3
# With the deployment's replica count known and every replica met: a proxy call now and then
# only (a replaced replica is noticed by its failed connection, a new count comes with a new secret).
MET_PROXY_EVERY = 256
MAX_ENDPOINTS = 64  # per deployment: a hostile replica cannot grow the worker's memory
MAX_IDLE = 64  # pooled connections per replica
SHUN_S = 30.0  # an address that failed is not taken again for this long


class DirectFailed(Exception):
    """The direct call got no answer (refused, closed, a failed proof, a broken frame): the caller
    drops the address and goes through the proxy."""


def parse_endpoint(offer: object) -> tuple[str, int] | None:
    """("host", port) from a replica's `"direct": "host:port"`, or None when it is not one."""
    if not isinstance(offer, str) or len(offer) > 300:
        return None
    host, sep, port = offer.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host.strip("[]"), int(port)


@dataclass(eq=False)
class Endpoint:
    address: str  # "host:port", as the replica named it (its proofs are bound to it)
    host: str
    port: int
    in_flight: int = 0  # calls
    load: int = 0  # mini-batches in those calls: what the replica has yet to run
    batch_s: float = 0.0  # seconds per mini-batch it takes (moving average; 0: not measured yet)
    ready: bool = False  # a first connection passed the handshake
    gone: bool = False  # dropped or forgotten: its connections are closed, not pooled
    idle: list = field(default_factory=list)  # (reader, writer) after a handshake

    def close(self) -> None:
        self.gone = True
        while self.idle:
            self.idle.pop()[1].close()


class DirectRoutes:
    """The replicas' direct addresses per deployment and their pooled connections."""

    def __init__(
        self,
        connect_timeout: float = 2.0,
        proxy_every: int = PROXY_EVERY,
        settled_after: int = SETTLED_AFTER,
        max_answer: int = MAX_ANSWER,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.max_answer = max_answer  # bytes of one answer's frame; over it the frame is not read
        self.proxy_every = proxy_every
        self.settled_after = settled_after  # 0: no learning phase
        self._settled: dict[str, int] = {}  # deployment -> proxy answers in a row naming known addresses
        self._expected: dict[str, int] = {}  # deployment -> its replicas (fixed-size; see expect)
        self._endpoints: dict[str, dict[str, Endpoint]] = {}
        self._turns: dict[str, int] = {}
        # (deployment, address) -> until when it is not taken again; per deployment, so that a
        # replica of one deployment naming another's address cannot switch that one's path off
        self._shunned: dict[tuple[str, str], float] = {}
        self._warming: set[asyncio.Future] = set()
        self.calls = 0  # answered directly, and addresses dropped (tests read these)
        self.dropped = 0

    def learn(self, deployment: str, offer: object, secret: str | None) -> None:
        """Take note of an address a proxy answer named; it is used once a first connection to it
        passed the handshake (opened here, beside the calls)."""
        parsed = parse_endpoint(offer)
        known = self._endpoints.setdefault(deployment, {})
        if parsed is not None and offer in known:
            self._settled[deployment] = self._settled.get(deployment, 0) + 1
            return
        if parsed is None or not secret or len(known) >= MAX_ENDPOINTS:
            return
        assert isinstance(offer, str)
        if self._shunned.get((deployment, offer), 0.0) > time.monotonic():
            return
        endpoint = known[offer] = Endpoint(offer, *parsed)
        self._settled[deployment] = 0  # a replica it did not know: there may be more
        task = asyncio.ensure_future(self._warm(deployment, endpoint, secret))
        self._warming.add(task)
        task.add_done_callback(self._warming.discard)

    async def _warm(self, deployment: str, endpoint: Endpoint, secret: str) -> None:
        try:
            connection = await self._open(endpoint, secret.encode())
        except DirectFailed as exc:
            log.info("deployment %s: not calling %s directly: %s", deployment, endpoint.address, exc)
            self.drop(deployment, endpoint)
            return
        if endpoint.gone:  # forgotten meanwhile (the deployment's secret changed)
            connection[1].close()
            return
        endpoint.idle.append(connection)
        endpoint.ready = True

    def expect(self, deployment: str, replicas: int) -> None:
        """How many replicas the deployment has (0: not known, as for an autoscaled one): with it,
        the worker learns until it has met them all, then rarely asks the proxy (module doc)."""
        if replicas > 0:
            self._expected[deployment] = replicas
        else:
            self._expected.pop(deployment, None)

    def _phase(self, deployment: str, ready: int) -> str:
        """ "met": every replica of the deployment's count is known (or was named and cannot be
        reached from here: shunned); "meeting": not yet; "uncounted": no count, or the proxy's
        answers kept naming known replicas only (SETTLED_AFTER for each replica of the count, in
        a row) while some of the count were never named: fewer run than the count says (one lost
        and not back), so the rule without a count holds until an answer names a new one."""
        expected = self._expected.get(deployment, 0)
        if not expected:
            return "uncounted"
        if ready >= expected:
            return "met"
        now = time.monotonic()
        unreachable = sum(1 for (d, _), until in self._shunned.items() if d == deployment and until > now)
        if ready + unreachable >= expected:
            return "met"
        if self._settled.get(deployment, 0) >= self.settled_after * expected:
            return "uncounted"
        return "meeting"

    def spread(self, deployment: str) -> int:
        """How many calls a task's mini-batches go in: one per replica known, or per replica the
        deployment has while some are not met yet (0: none known, one call per mini-batch)."""
        known = len(self.known(deployment))
        if not known:
            return 0
        return max(known, self._expected[deployment]) if self._phase(deployment, known) == "meeting" else known

    def batch_seconds(self, deployment: str) -> float:
        """How long the deployment's replicas take per mini-batch, as measured by the direct calls
        (the median of the replicas' moving averages; 0.0 before any). Each call's time (from its
        request's send, a new connection's handshake not included) is divided by the mini-batches
        it waited for: those this worker had in flight to that replica when it was sent, and its
        own. So a queue in front of a fast model does not make it look slow; other workers' calls
        to the same replica are not seen, and with N workers a model can read up to N times slower."""
        measured = sorted(e.batch_s for e in self._endpoints.get(deployment, {}).values() if e.batch_s)
        return measured[len(measured) // 2] if measured else 0.0

    def known(self, deployment: str) -> list[str]:
        """The addresses in use (a first connection passed the handshake)."""
        return sorted(a for a, e in self._endpoints.get(deployment, {}).items() if e.ready)

    def pick(self, deployment: str) -> Endpoint | None:
        """The replica with the fewest mini-batches in flight (then calls), or None: through the
        proxy this time. By mini-batches, not calls: a task's calls carry several, and a replica
        runs them in turn, so counting calls would queue a 3-batch call behind another where a
        replica with two 1-batch calls finishes sooner, and the job's end waits for the replica
        that got the most (measured in bench/README.md, "Jobs": the efficiency case's tail)."""
        endpoints = [e for e in self._endpoints.get(deployment, {}).values() if e.ready]
        if not endpoints:
            return None
        turn = self._turns[deployment] = self._turns.get(deployment, 0) + 1
        best = min(endpoints, key=lambda e: (e.load, e.in_flight))
        phase = self._phase(deployment, len(endpoints))
        if phase == "met":
            return None if turn % MET_PROXY_EVERY == 0 else best
        if phase == "meeting":
            # a known replica only while this worker has nothing in flight to it, the rest to
            # the proxy, which reaches the replicas not met yet (and names them in its answers)
            return best if best.load == 0 and turn % LEARN_EVERY else None
        learning = self._settled.get(deployment, 0) < self.settled_after
        if turn % (min(LEARN_EVERY, self.proxy_every) if learning else self.proxy_every) == 0:
            return None
        return best

    def drop(self, deployment: str, endpoint: Endpoint) -> None:
        """Stop calling an address that failed (for SHUN_S: a proxy answer may name it again). Only
        this endpoint: one learned again since (after a forget) is another object and stays."""
        known = self._endpoints.get(deployment, {})
        if known.get(endpoint.address) is endpoint:
            del known[endpoint.address]
            self.dropped += 1
            self._settled[deployment] = 0  # a replica went away: its replacement is to be learned
            self._shunned[(deployment, endpoint.address)] = time.monotonic() + SHUN_S
        if len(self._shunned) > 4 * MAX_ENDPOINTS:
            now = time.monotonic()
            self._shunned = {a: t for a, t in self._shunned.items() if t > now}
        endpoint.close()

    def forget(self, deployment: str) -> None:
        """Every address of a deployment (its secret changed, it went away)."""
        self._settled.pop(deployment, None)
        self._expected.pop(deployment, None)
        for endpoint in self._endpoints.pop(deployment, {}).values():
            endpoint.close()

    def close(self) -> None:
        for task in self._warming:
            task.cancel()
        for deployment in list(self._endpoints):
            self.forget(deployment)

    async def call(self, endpoint: Endpoint, secret: str, frame: bytes, batches: int = 1) -> tuple[object, int]:
        """The replica's answer (parsed JSON) to one request (`frame`: its JSON, at most
        wire.MAX_FRAME bytes, carrying `batches` mini-batches), and its size in bytes. Raises DirectFailed when there is none,
        AnswerTooLarge when its frame declares more than `max_answer` bytes (not read); a
        cancelled call closes its connection, and the replica cancels its work."""
        ahead = endpoint.load
        endpoint.in_flight += 1
        endpoint.load += batches
        connection = None
        answered = False
        try:
            connection = endpoint.idle.pop() if endpoint.idle else await self._open(endpoint, secret.encode())
            started = time.monotonic()
            reader, writer = connection
            writer.write(wire.frame(frame))
            answer = await self._answer(reader, endpoint)
            body = json.loads(answer)
            answered = True
            self.calls += 1
            each = (time.monotonic() - started) / (ahead + batches)
            endpoint.batch_s = 0.8 * endpoint.batch_s + 0.2 * each if endpoint.batch_s else each
            return body, len(answer)
        except (OSError, asyncio.IncompleteReadError, ValueError, RecursionError) as exc:
            raise DirectFailed(f"replica at {endpoint.address}: {type(exc).__name__}: {exc}") from exc
        finally:
            endpoint.in_flight -= 1
            endpoint.load -= batches
            if connection is not None:
                if answered and not endpoint.gone and len(endpoint.idle) < MAX_IDLE:
                    endpoint.idle.append(connection)
                else:  # an answer not read to its end, a dropped endpoint, a full pool
                    connection[1].close()

    async def _answer(self, reader: asyncio.StreamReader, endpoint: Endpoint) -> bytes:
        """One answer's frame, read only when it is within both the worker's bound on answers and
        the frame limit (otherwise the connection is closed by the caller, its rest unread)."""
        try:
            return await wire.read_frame(reader, min(self.max_answer, wire.MAX_FRAME))
        except wire.FrameTooLarge as exc:
            if exc.size > self.max_answer:
                raise AnswerTooLarge(self.max_answer) from None
            raise DirectFailed(f"the replica at {endpoint.address} sent a {exc.size}-byte answer") from None

    async def _open(self, endpoint: Endpoint, secret: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A new connection, after both proofs (see the module doc)."""
        try:
            async with asyncio.timeout(self.connect_timeout):
                reader, writer = await asyncio.open_connection(endpoint.host, endpoint.port)
                try:
                    if not await wire.caller_handshake(reader, writer, secret, endpoint.address):
                        raise DirectFailed(f"the process at {endpoint.address} is not this deployment's replica")
                except BaseException:
                    writer.close()
                    raise
        except TimeoutError as exc:
            raise DirectFailed(f"no handshake from {endpoint.address} in {self.connect_timeout} s") from exc
        except (OSError, asyncio.IncompleteReadError) as exc:  # refused, or closed mid-handshake
            raise DirectFailed(f"no handshake from {endpoint.address}: {type(exc).__name__}: {exc}") from exc
        return reader, writer
