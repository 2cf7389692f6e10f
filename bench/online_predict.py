"""Benchmark: online predict through modelhub's public HTTP API against calling Serve directly,
measured in one run on one embedded stack.

  1. HTTP `POST /deployments/{name}/predict`, one sample per request, with 1, 8 and 64 clients
     (each client sends its next request when the last one answered): requests/s, p50, p99, errors.
     Beside each, the same through the Open Inference Protocol: `POST /v2/models/{name}/infer`
     from tritonclient's asyncio HTTP client (binary tensors, its default), and its ratio to
     predict; the two take turns (`--rounds`, 1 s each by default) so that both see the machine
     in the same states.
  2. A Ray Serve handle call (`predict_one`, one sample per call) on the same deployment, with
     1, 8 and 64 concurrent callers: the speed of Serve itself, from a process of its own (with
     the stack's Serve settings, modelhub.stack.SERVE_TUNING). Also `predict_chunk` with one
     sample at one caller: the replica method the worker's HTTP calls reach, without the window
     @serve.batch waits for company.
  3. 1,000 concurrent HTTP clients for a few seconds: the largest latency seen, how many answers
     were 200, how many 429 (a client told to retry waits its Retry-After), and any other error.

Prints a table and writes it to bench/online_predict.json. Run with `make bench`. Numbers from a
small shared machine are noisy: compare within one run (the ratios), not across runs.
"""

import argparse
import asyncio
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import httpx
import numpy as np
import tritonclient.http.aio as triton_aio
from tritonclient.http import InferInput
from tritonclient.utils import InferenceServerException

sys.path.insert(0, str(Path(__file__).resolve().parent))
from jobs import wait_running  # noqa: E402

MODEL = """
class Model:
    def __init__(self, model_dir):
        pass

    def predict(self, batch):
        return {"n": [len(t) for t in batch["text"]]}
"""
SCHEMA = {
    "inputs": {"type": "object", "properties": {"text": {"type": "text"}}},
    "outputs": {"type": "object", "properties": {"n": {"type": "number"}}},
}
RESULTS = Path(__file__).with_name("online_predict.json")


def modelhub(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "modelhub", *args], check=True, capture_output=True, text=True)


def setup(client: httpx.Client, workdir: Path, mini_batch: int, options: dict) -> None:
    package = workdir / "bench.zip"
    with zipfile.ZipFile(package, "w") as zf:
        zf.writestr("model.py", MODEL)
    assert client.post("/models", json={"name": "bench"}).status_code == 201
    with package.open("rb") as fh:
        assert (
            client.post(
                "/models/bench/versions", files={"file": ("bench.zip", fh)}, data={"schema": json.dumps(SCHEMA)}
            ).status_code
            == 201
        )
    created = client.post("/models/bench/deployments", json={"name": "bench", "mini_batch": mini_batch, **options})
    assert created.status_code == 202, created.text
    wait_running(client, "bench")


class Tally:
    """Latencies of successful calls, and every answer by status."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.statuses: dict[str, int] = {}
        self.max_latency = 0.0

    def add(self, status: str, seconds: float) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.max_latency = max(self.max_latency, seconds)
        if status == "200":
            self.latencies.append(seconds)

    def row(self, elapsed: float) -> dict:
        ok = sorted(self.latencies)

        def pct(p: float) -> float | None:
            return round(ok[min(len(ok) - 1, int(p * len(ok)))] * 1000, 2) if ok else None

        return {
            "ok": len(ok),
            "per_s": round(len(ok) / elapsed, 1),
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "max_ms": round(self.max_latency * 1000, 1),
            "errors": sum(n for s, n in self.statuses.items() if s != "200"),
            "statuses": self.statuses,
        }


def note(name: str, row: dict) -> dict:
    print(f"{name}: {row}", file=sys.stderr, flush=True)  # progress, and what a failed run measured
    return row


async def closed_loop(call, clients: int, seconds: float, honour_retry_after: bool = False) -> dict:
    """`clients` callers, each calling again as soon as its last call answered, for `seconds`."""
    tally = Tally()
    return tally.row(await drive(call, clients, seconds, tally, honour_retry_after))


async def drive(call, clients: int, seconds: float, tally: Tally, honour_retry_after: bool = False) -> float:
    """Run the callers for `seconds` into `tally`; the time they took (the last answers included)."""
    stop = time.perf_counter() + seconds

    async def client(i: int) -> None:
        n = 0
        while time.perf_counter() < stop:
            start = time.perf_counter()
            status, retry_after = await call(f"client {i} sample {n}")
            tally.add(status, time.perf_counter() - start)
            n += 1
            if honour_retry_after and retry_after:
                await asyncio.sleep(min(retry_after, max(0.0, stop - time.perf_counter())))

    start = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    return time.perf_counter() - start


async def alternating(calls: dict, clients: int, seconds: float, rounds: int) -> dict[str, dict]:
    """Each of `calls` for `seconds` in all, in `rounds` turns taken one after the other (the
    order turned around each round): on a shared machine whose speed drifts, each sees it in the
    same states."""
    tallies, elapsed = {kind: Tally() for kind in calls}, dict.fromkeys(calls, 0.0)
    for turn in range(rounds):
        for kind, call in list(calls.items())[:: -1 if turn % 2 else 1]:
            elapsed[kind] += await drive(call, clients, seconds / rounds, tallies[kind])
    return {kind: tallies[kind].row(elapsed[kind]) for kind in calls}


def http_caller(session: aiohttp.ClientSession):
    async def call(text: str) -> tuple[str, float | None]:
        try:
            async with session.post("deployments/bench/predict", json={"inputs": {"text": [text]}}) as response:
                body = await response.json()
        except (aiohttp.ClientError, TimeoutError) as exc:
            return type(exc).__name__, None
        if response.status == 200:
            assert body["outputs"]["n"] == [len(text)], body
        retry = response.headers.get("Retry-After")
        return str(response.status), float(retry) if retry else None

    return call


def session(url: str, token: str, clients: int) -> aiohttp.ClientSession:
    # aiohttp, not httpx: with 64 connections httpx's pool took most of a core in this process,
    # and the benchmark measured its own client (about 60 req/s) instead of the server.
    return aiohttp.ClientSession(
        url + "/",
        headers={"Authorization": f"Bearer {token}"},
        connector=aiohttp.TCPConnector(limit=clients),
        timeout=aiohttp.ClientTimeout(total=120),
    )


def oip_caller(client: triton_aio.InferenceServerClient, token: str):
    headers = {"Authorization": f"Bearer {token}"}

    async def call(text: str) -> tuple[str, float | None]:
        tensor = InferInput("text", [1], "BYTES")
        tensor.set_data_from_numpy(np.array([text], dtype=object))
        try:
            result = await client.infer("bench", [tensor], headers=headers)
        except InferenceServerException as exc:
            return str(exc.status()), None
        except (aiohttp.ClientError, TimeoutError) as exc:
            return type(exc).__name__, None
        values = result.as_numpy("n")
        assert values is not None and values.tolist() == [len(text)], result.get_response()
        return "200", None

    return call


async def http_runs(url: str, token: str, seconds: float, crowd: int, rounds: int) -> dict:
    """Predict and OIP infer at each number of clients, in alternating turns (`alternating`)."""
    results = {}
    host = url.removeprefix("http://").split("/", 1)[0]
    for clients in (1, 8, 64):
        async with (
            session(url, token, clients) as http,
            triton_aio.InferenceServerClient(host, conn_limit=clients, conn_timeout=120) as oip,
        ):
            calls = {"http": http_caller(http), "oip": oip_caller(oip, token)}
            for call in calls.values():
                await closed_loop(call, clients, 1.0)  # warm up
            for kind, row in (await alternating(calls, clients, seconds, rounds)).items():
                results[f"{kind}_{clients}"] = note(f"{kind}_{clients}", row)
    async with session(url, token, crowd) as client:
        results[f"http_{crowd}_crowd"] = note(
            f"http_{crowd}_crowd", await closed_loop(http_caller(client), crowd, seconds, honour_retry_after=True)
        )
    return results


def serve_runs(data_dir: Path, seconds: float) -> dict:
    state = json.loads((data_dir / "state.json").read_text())
    from modelhub.stack import SERVE_TUNING

    os.environ.update(
        SERVE_TUNING,  # the handle's router as the stack's proxy runs it (read when ray is imported)
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN_PATH=str(data_dir / "ray-auth-token"),
    )
    import ray
    from ray import serve

    ray.init(address=state["ray"]["address"], namespace="serve", log_to_driver=False, logging_level=logging.ERROR)
    handle = serve.get_app_handle("bench")

    async def call(text: str) -> tuple[str, None]:
        assert await handle.predict_one.remote({"text": text}) == {"n": len(text)}
        return "200", None

    async def call_chunk(text: str) -> tuple[str, None]:
        assert await handle.predict_chunk.remote([{"text": text}]) == [{"n": len(text)}]
        return "200", None

    async def runs() -> dict:
        results = {}
        for clients in (1, 8, 64):
            await closed_loop(call, clients, 1.0)
            results[f"serve_{clients}"] = note(f"serve_{clients}", await closed_loop(call, clients, seconds))
        # one sample per call without @serve.batch's window (the method the worker's calls reach)
        await closed_loop(call_chunk, 1, 1.0)
        results["serve_chunk_1"] = note("serve_chunk_1", await closed_loop(call_chunk, 1, seconds))
        return results

    try:
        return asyncio.run(runs())
    finally:
        ray.shutdown()


def table(results: dict, crowd: int) -> str:
    lines = [f"{'path':<34}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}", "-" * 69]
    for clients in (1, 8, 64):
        for kind, label in (("http", "HTTP predict"), ("serve", "Serve handle, direct")):
            r = results[f"{kind}_{clients}"]
            lines.append(
                f"{label + f', {clients} clients':<34}{r['per_s']:>9.0f}{r['p50_ms'] or 0:>9.2f}"
                f"{r['p99_ms'] or 0:>9.1f}{r['errors']:>8}"
            )
        ratio = results[f"http_{clients}"]["per_s"] / max(results[f"serve_{clients}"]["per_s"], 1e-9)
        lines.append(f"{'  HTTP / Serve':<34}{ratio:>9.2f}")
    for clients in (1, 8, 64):
        r = results[f"oip_{clients}"]
        lines.append(
            f"{f'OIP infer (tritonclient), {clients}':<34}{r['per_s']:>9.0f}{r['p50_ms'] or 0:>9.2f}"
            f"{r['p99_ms'] or 0:>9.1f}{r['errors']:>8}"
        )
        ratio = r["per_s"] / max(results[f"http_{clients}"]["per_s"], 1e-9)
        lines.append(f"{'  OIP / HTTP predict':<34}{ratio:>9.2f}")
    oip, http = results["oip_1"]["p50_ms"], results["http_1"]["p50_ms"]
    if oip is not None and http is not None:
        lines.append(f"1 client: OIP p50 - HTTP predict p50 = {oip - http:+.2f} ms")
    chunk = results.get("serve_chunk_1")
    if chunk:
        lines.append(
            f"{'Serve handle, predict_chunk, 1':<34}{chunk['per_s']:>9.0f}{chunk['p50_ms'] or 0:>9.2f}"
            f"{chunk['p99_ms'] or 0:>9.1f}{chunk['errors']:>8}"
        )
    one, handle = results["http_1"]["p50_ms"], results["serve_1"]["p50_ms"]
    if one is not None and handle is not None:
        lines.append(f"1 client: HTTP p50 - handle p50 = {one - handle:.1f} ms")
    r = results[f"http_{crowd}_crowd"]
    other = {s: n for s, n in r["statuses"].items() if s not in ("200", "429")}
    lines.append(
        f"{crowd} clients: max latency {r['max_ms']:.0f} ms, {r['statuses'].get('200', 0)} x 200, "
        f"{r['statuses'].get('429', 0)} x 429, other errors: {other or 'none'}"
    )
    return "\n".join(lines)


def code() -> str:
    """The commit measured, and whether the working tree had changes."""
    git = ["git", "-C", str(Path(__file__).parent)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
    ).stdout
    return f"{head or 'unknown'}{' with changes' if dirty.strip() else ''}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mini-batch", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each measured run")
    parser.add_argument("--crowd", type=int, default=1000, help="clients in the overload run")
    parser.add_argument("--rounds", type=int, default=5, help="turns predict and OIP take in each run")
    parser.add_argument(
        "--deployment-options",
        type=json.loads,
        default={},
        help="extra deployment fields as JSON, e.g. '{\"batch_wait_ms\": 2}'",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="modelhub-bench-") as tmp:
        data_dir, port = Path(tmp) / "stack", "18432"
        modelhub("up", "--detach", "--data-dir", str(data_dir), "--port", port)
        try:
            token = (data_dir / "admin-token").read_text().strip()
            url = f"http://127.0.0.1:{port}/api/v1"
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
                setup(client, Path(tmp), args.mini_batch, args.deployment_options)
            print(f"stack up in {data_dir}; measuring", file=sys.stderr)
            results = asyncio.run(http_runs(url, token, args.seconds, args.crowd, args.rounds))
            results.update(serve_runs(data_dir, args.seconds))
        finally:
            modelhub("down", "--data-dir", str(data_dir))
    replicas = args.deployment_options.get("num_replicas", 1)
    header = (
        f"online predict, 1 sample per request, mini_batch {args.mini_batch}, {replicas} "
        f"replica{'s' if replicas != 1 else ''}, "
        f"{args.seconds:g} s per run, {os.cpu_count()} cores"
    )
    text = table(results, args.crowd)
    print(header + "\n" + text)
    args.out.write_text(
        json.dumps(
            {
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "code": code(),
                "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                "mini_batch": args.mini_batch,
                "seconds_per_run": args.seconds,
                "rounds": args.rounds,
                "deployment_options": args.deployment_options,
                "results": results,
                "table": text,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
