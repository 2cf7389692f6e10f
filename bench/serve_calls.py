"""Benchmark: how a job's samples reach a Serve deployment, measured in one run on one stack.

  A. one handle call per sample (`predict_one`, @serve.batch regroups concurrent calls),
  B. one handle call per mini-batch (`predict_chunk`, what the worker does for jobs),
  C. a whole job through modelhub (scheduler → worker → Serve → MongoDB → progress),
  D. one HTTP call per mini-batch through Serve's proxy, JSON both ways (the worker's ServeClient
     with its direct path off: services are no Ray drivers), the same calls in flight as B,
  E. the same client as the worker runs it: the replica's own port after its first proxy answer
     (modelhub_worker.direct), the same calls in flight.
  F. (with --ray-direct-ingress) Ray Serve's own direct ingress: the stack's Ray runs with
     RAY_SERVE_ENABLE_DIRECT_INGRESS=1, so each replica serves HTTP on a port of its own, and the
     client of D calls that port instead of the proxy.

Prints samples/s (and calls/s) for each and the ratios B/A, D/B and E/B (against handles). Run with `make bench`; numbers from this 2-core
machine are noisy: compare the ratio within one run, not absolute numbers across runs.
"""

import argparse
import asyncio
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import httpx

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


def modelhub(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "modelhub", *args], check=True, capture_output=True, text=True)


def setup(client: httpx.Client, workdir: Path, mini_batch: int, samples: int) -> None:
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
    assert client.post("/models/bench/deployments", json={"name": "bench", "mini_batch": mini_batch}).status_code == 202
    wait_running(client, "bench")
    assert client.post("/datasets", json={"name": "bench"}).status_code == 201
    rows = [{"filepath": f"/bench/{i}", "fields": {"text": f"sample {i}"}} for i in range(samples)]
    assert client.post("/datasets/bench/samples", json={"samples": rows}).status_code == 201


async def per_sample(handle, inputs: list[dict], in_flight: int) -> float:
    limit = asyncio.Semaphore(in_flight)

    async def one(x):
        async with limit:
            return await handle.predict_one.remote(x)

    start = time.perf_counter()
    await asyncio.gather(*(one(x) for x in inputs))
    return len(inputs) / (time.perf_counter() - start)


async def per_chunk(handle, inputs: list[dict], mini_batch: int, in_flight: int) -> float:
    limit = asyncio.Semaphore(in_flight)
    chunks = [inputs[i : i + mini_batch] for i in range(0, len(inputs), mini_batch)]

    async def one(chunk):
        async with limit:
            return await handle.predict_chunk.remote(chunk)

    start = time.perf_counter()
    await asyncio.gather(*(one(c) for c in chunks))
    return len(inputs) / (time.perf_counter() - start)


def ingress_port() -> int:
    """The HTTP port Ray's direct ingress gave the one replica (Ray's default range; the bench's
    stack has one replica, so the first port that answers is its)."""
    import socket

    for port in range(30000, 30050):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return port
    raise SystemExit("no direct-ingress port answers in 30000-30049: is RAY_SERVE_ENABLE_DIRECT_INGRESS on?")


def http_path(data_dir: Path, samples: int, mini_batch: int, direct: bool, port: int | None = None) -> float:
    """The worker's own client (modelhub_worker.serving.ServeClient), its secret from MongoDB;
    `direct`: with the direct path to the replica (as the worker runs it) or through the proxy only;
    `port`: the HTTP port to call (default: the stack's Serve proxy)."""
    from pymongo import MongoClient

    from modelhub_worker.serving import ServeClient

    creds = json.loads((data_dir / "credentials.json").read_text())
    mongo = MongoClient(creds["mongo_url"])
    doc = mongo["modelhub"]["deployments"].find_one({"_id": "bench"})
    if doc is None:
        raise SystemExit("no deployment 'bench' (the benchmark deploys it first)")
    secret = doc["serve_secret"]
    mongo.close()
    port = port or json.loads((data_dir / "stack.json").read_text())["ports"]["ray"]["serve_http"]
    inputs = [{"text": f"sample {i}"} for i in range(samples)]

    async def run() -> float:
        async def known(name: str) -> str:
            return secret

        client = ServeClient(f"http://127.0.0.1:{port}", known, max_in_flight=8, direct=direct)
        chunks = [inputs[i : i + mini_batch] for i in range(0, len(inputs), mini_batch)]
        await asyncio.gather(*(client.predict_chunk("bench", c) for c in chunks[:4]))  # warm up
        if client.direct is not None:  # its first connection is made beside the calls: wait for it
            async with asyncio.timeout(10):
                while not client.direct.known("bench"):
                    await asyncio.sleep(0.01)
        start = time.perf_counter()
        await asyncio.gather(*(client.predict_chunk("bench", c) for c in chunks))
        rate = len(inputs) / (time.perf_counter() - start)
        await client.close()
        return rate

    return asyncio.run(run())


def serve_paths(data_dir: Path, samples: int, mini_batch: int) -> tuple[float, float]:
    state = json.loads((data_dir / "state.json").read_text())
    os.environ.update(
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN_PATH=str(data_dir / "ray-auth-token"),
    )
    import ray
    from ray import serve

    ray.init(address=state["ray"]["address"], namespace="serve", log_to_driver=False, logging_level=logging.ERROR)
    handle = serve.get_app_handle("bench")
    inputs = [{"text": f"sample {i}"} for i in range(samples)]

    async def both() -> tuple[float, float]:
        await per_chunk(handle, inputs[: mini_batch * 4], mini_batch, 8)  # warm up
        a = await per_sample(handle, inputs, in_flight=64)
        b = await per_chunk(handle, inputs, mini_batch, in_flight=8)
        return a, b

    try:
        return asyncio.run(both())
    finally:
        ray.shutdown()


def whole_job(client: httpx.Client, samples: int) -> float:
    start = time.perf_counter()
    job = client.post("/datasets/bench/jobs", json={"deployment": "bench", "outputs": {"n": "n"}}).json()
    while (doc := client.get(f"/jobs/{job['id']}").json())["status"] not in ("completed", "failed", "cancelled"):
        time.sleep(0.1)
    assert doc["status"] == "completed" and doc["succeeded"] == samples, doc
    return samples / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--mini-batch", type=int, default=32)
    parser.add_argument("--ray-direct-ingress", action="store_true", help="also measure F (see above)")
    args = parser.parse_args()
    if args.ray_direct_ingress:
        os.environ["RAY_SERVE_ENABLE_DIRECT_INGRESS"] = "1"  # the stack's Ray nodes take RAY_* from here
    with tempfile.TemporaryDirectory(prefix="modelhub-bench-") as tmp:
        data_dir, port = Path(tmp) / "stack", "18431"
        modelhub("up", "--detach", "--data-dir", str(data_dir), "--port", port)
        try:
            token = (data_dir / "admin-token").read_text().strip()
            client = httpx.Client(
                base_url=f"http://127.0.0.1:{port}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=60
            )
            setup(client, Path(tmp), args.mini_batch, args.samples)
            job_rate = whole_job(client, args.samples)
            http = http_path(data_dir, args.samples, args.mini_batch, direct=False)
            direct = http_path(data_dir, args.samples, args.mini_batch, direct=True)
            ingress = None
            if args.ray_direct_ingress:
                ingress = http_path(data_dir, args.samples, args.mini_batch, direct=False, port=ingress_port())
            one, chunk = serve_paths(data_dir, args.samples, args.mini_batch)
        finally:
            modelhub("down", "--data-dir", str(data_dir))
    print(f"{args.samples} samples, mini_batch {args.mini_batch}, 1 replica, this machine ({os.cpu_count()} cores)")
    print(f"  A. Serve, one call per sample (64 in flight):    {one:8.0f} samples/s")
    print(f"  B. Serve, one call per mini-batch (8 in flight): {chunk:8.0f} samples/s")
    print(f"  C. modelhub job, end to end:                     {job_rate:8.0f} samples/s")
    print(
        f"  D. HTTP+JSON per mini-batch (8 in flight):       {http:8.0f} samples/s "
        f"({http / args.mini_batch:.0f} calls/s; B: {chunk / args.mini_batch:.0f} calls/s)"
    )
    print(
        f"  E. JSON per mini-batch, replica's own port:      {direct:8.0f} samples/s "
        f"({direct / args.mini_batch:.0f} calls/s)"
    )
    if ingress is not None:
        print(
            f"  F. JSON per mini-batch, Ray's direct ingress:    {ingress:8.0f} samples/s "
            f"({ingress / args.mini_batch:.0f} calls/s)"
        )
    ratios = f"  B/A = {chunk / one:.1f}x   D/B = {http / chunk:.2f}x   E/B = {direct / chunk:.2f}x"
    print(ratios + (f"   F/B = {ingress / chunk:.2f}x   E/F = {direct / ingress:.2f}x" if ingress else ""))


if __name__ == "__main__":
    main()
