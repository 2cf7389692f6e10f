"""Benchmark: evaluations (POST /datasets/{name}/evaluations) over large datasets, in MongoDB.

Starts a mongod of its own (the embedded stack's program, in a temp dir, 1 GB of WiredTiger cache
as `modelhub up` gives it), inserts synthetic samples with bulk inserts, and times the gateway's
use case `evaluation.evaluations.create` (what the route runs, less HTTP) on the gateway's own
store, with its indexes:

  classification  1,000,000 samples (--samples): ground truth a plain string of 10 classes on
                  99 %, a model's {"label", "confidence"} right on ~80 %, written (lineage) by
                  version 3 on ~70 % and version 2 on the rest; --runs evaluations, each timed
                  (wall and mongod's CPU), and every number checked against the counts the bench
                  made while generating the data (the target: ≤ 5 s for 1,000,000 samples).
  plan            the same aggregation through the (dataset, _id) index and as a plain collection
                  scan (`hint: {$natural: 1}`), to see what the index costs a whole-dataset pass.
  cell            GET .../samples?evaluation=&ground_truth_label=&prediction_label= as the route
                  runs it: the cell's count (`total`) and its first page of 50.
  detections      --detections samples (default 100,000) with 3 true and 4 predicted boxes each:
                  samples/s of box matching (the cursor stream and the matching in Python).

Run it from the repository root with the workspace's packages on the path, under the shared lock
that integration tests take (it starts a mongod):

    flock /tmp/modelhub-integration.lock python bench/evaluation.py [--samples N] [--runs R] [--out FILE]

Writes JSON (default bench/results/<UTC date>-evaluation.json) and prints a table. The machine is
small and shared: the JSON keeps the load average before and after, and mongod's CPU seconds,
which a busy neighbour changes less than the wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from bson import ObjectId
from pymongo import AsyncMongoClient

from modelhub.stack.binaries import find_mongod
from modelhub_contracts.documents import Dataset, User
from modelhub_gateway.evaluation import census, evaluations
from modelhub_gateway.evaluation.schemas import EvaluationCreate
from modelhub_gateway.store import GatewayStore

ROOT = Path(__file__).resolve().parents[1]
LABELS = [f"class{i}" for i in range(10)]
INSERT_BATCH = 10_000
ADMIN = User(_id="admin", username="admin", is_admin=True, token_hash="-", created_at=datetime.now(UTC))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load() -> float:
    return round(os.getloadavg()[0], 2)


async def insert(store: GatewayStore, dataset: str, docs) -> None:
    await store.datasets.insert_one(
        Dataset(_id=dataset, name=dataset, description="", owner="admin", num_samples=0, created_at=datetime.now(UTC))
    )
    batch = []
    for doc in docs:
        batch.append(doc)
        if len(batch) == INSERT_BATCH:
            await store.samples.insert_many(batch, ordered=False)
            batch = []
    if batch:
        await store.samples.insert_many(batch, ordered=False)
    await store.datasets.update_one(
        {"_id": dataset}, {"$set": {"num_samples": await store.count_samples({"dataset": dataset})}}
    )


def classified(n: int, expected: Counter, writers: Counter, missing: list[int]):
    """Samples of a classification dataset; counts what an evaluation must find as it goes."""
    rng = random.Random(26)
    at = datetime.now(UTC)
    for i in range(n):
        truth = rng.choice(LABELS)
        fields: dict[str, Any] = {
            "pred": {"label": truth if rng.random() < 0.8 else rng.choice(LABELS), "confidence": rng.random()}
        }
        version = 3 if rng.random() < 0.7 else 2
        if rng.random() < 0.99:
            fields["gt"] = truth
            expected[(truth, fields["pred"]["label"])] += 1
            writers[version] += 1
        else:
            missing[0] += 1
        lineage = {
            "pred": {
                "job_id": f"job-v{version}",
                "model": "classifier",
                "version": version,
                "deployment": "d",
                "at": at,
            }
        }
        yield {
            "_id": str(ObjectId()),
            "dataset": "cls",
            "filepath": f"/data/img/{i:07d}.png",
            "fields": fields,
            "lineage": lineage,
        }


def boxed(n: int):
    rng = random.Random(6)

    def box(jitter: float, base: list[float]) -> list[float]:
        x, y, w, h = (min(max(v + rng.uniform(-jitter, jitter), 0.0), 0.5) for v in base)
        return [x, y, w or 0.1, h or 0.1]

    for i in range(n):
        truths = [
            {"label": rng.choice(LABELS[:5]), "bounding_box": box(0.0, [rng.random() / 2 for _ in range(4)])}
            for _ in range(3)
        ]
        predictions = [
            {"label": t["label"], "confidence": rng.random(), "bounding_box": box(0.03, t["bounding_box"])}
            for t in truths
        ]
        predictions.append(
            {
                "label": rng.choice(LABELS[:5]),
                "confidence": rng.random() / 2,
                "bounding_box": box(0.0, [0.1, 0.1, 0.3, 0.3]),
            }
        )
        fields = {"gt": {"detections": truths}, "pred": {"detections": predictions}}
        yield {"_id": str(ObjectId()), "dataset": "det", "filepath": f"/data/img/{i:07d}.png", "fields": fields}


async def timed(pid: int, work) -> tuple[Any, float, float]:
    cpu, start = cpu_seconds(pid), time.perf_counter()
    result = await work
    return result, time.perf_counter() - start, cpu_seconds(pid) - cpu


async def dataset(store: GatewayStore, name: str) -> Dataset:
    return cast(Dataset, await store.dataset(name))


async def classification(store: GatewayStore, pid: int, n: int, runs: int) -> dict[str, Any]:
    expected, writers, missing = Counter(), Counter(), [0]
    start = time.perf_counter()
    await insert(store, "cls", classified(n, expected, writers, missing))
    inserted = time.perf_counter() - start
    walls, cpus, result = [], [], {}
    for run in range(runs):
        body = EvaluationCreate(name=f"run-{run}", prediction="pred", ground_truth="gt")
        result, wall, cpu = await timed(pid, evaluations.create(store, ADMIN, await dataset(store, "cls"), body))
        walls.append(wall)
        cpus.append(cpu)
    total = sum(expected.values())
    accuracy = sum(c for (t, p), c in expected.items() if t == p) / total
    assert result["samples"] == total and result["missing"] == missing[0], (result["samples"], result["missing"])
    assert abs(result["accuracy"] - accuracy) < 1e-12, (result["accuracy"], accuracy)
    labels = result["confusion"]["labels"]
    assert all(
        result["confusion"]["matrix"][i][j] == expected[(t, p)]
        for i, t in enumerate(labels)
        for j, p in enumerate(labels)
    )
    assert result["lineage"] == {"model": "classifier", "version": 3, "samples": writers[3]}, result["lineage"]
    return {
        "samples": n,
        "insert_seconds": round(inserted, 1),
        "runs_wall_s": [round(w, 2) for w in walls],
        "runs_mongod_cpu_s": [round(c, 2) for c in cpus],
        "median_wall_s": round(statistics.median(walls), 2),
        "best_wall_s": round(min(walls), 2),
        "checked_against_generated_counts": True,
        "accuracy": round(result["accuracy"], 4),
    }


async def plans(store: GatewayStore, pid: int) -> dict[str, Any]:
    stages = census.pipeline("cls", "pred", "gt")
    out = {}
    choices: list[tuple[str, dict[str, Any]]] = [("index", {}), ("collection_scan", {"hint": {"$natural": 1}})]
    for name, options in choices:
        _, wall, cpu = await timed(pid, _drain(store.samples.aggregate(stages, **options)))
        out[name] = {"wall_s": round(wall, 2), "mongod_cpu_s": round(cpu, 2)}
    return out


async def _drain(cursor) -> int:
    return len(await (await cursor).to_list())


async def cell(store: GatewayStore, pid: int) -> dict[str, Any]:
    query = {"$and": [{"dataset": "cls"}, await evaluations.cell_filter(store, "cls", "run-0", "class3", "class5")]}
    total, count_wall, count_cpu = await timed(pid, store.count_samples(query))
    page, page_wall, _ = await timed(pid, store.sample_page(query, 0, 50))
    assert all(s["fields"]["gt"] == "class3" and s["fields"]["pred"]["label"] == "class5" for s in page)
    return {
        "total": total,
        "count_wall_s": round(count_wall, 2),
        "count_mongod_cpu_s": round(count_cpu, 2),
        "first_page_wall_s": round(page_wall, 3),
    }


async def detections(store: GatewayStore, pid: int, n: int) -> dict[str, Any]:
    await insert(store, "det", boxed(n))
    body = EvaluationCreate(name="boxes", prediction="pred", ground_truth="gt", iou=0.5)
    result, wall, cpu = await timed(pid, evaluations.create(store, ADMIN, await dataset(store, "det"), body))
    assert result["samples"] == n
    return {
        "samples": n,
        "wall_s": round(wall, 2),
        "mongod_cpu_s": round(cpu, 2),
        "samples_per_s": round(n / wall),
        "map": round(result["map"], 4),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "load_before": load(),
    }
    results["commit"] = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="modelhub-bench-eval-") as tmp:
        port = free_port()
        argv = [
            find_mongod(),
            "--dbpath",
            tmp,
            "--bind_ip",
            "127.0.0.1",
            "--port",
            str(port),
            "--nounixsocket",
            "--wiredTigerCacheSizeGB",
            "1",
            "--quiet",
        ]
        mongod = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        try:
            client: AsyncMongoClient = AsyncMongoClient(
                f"mongodb://127.0.0.1:{port}/?directConnection=true&serverSelectionTimeoutMS=30000"
            )
            results["mongod"] = (await client.server_info())["version"]
            store = GatewayStore(client["bench"])
            await store.ensure_indexes()
            results["classification"] = await classification(store, mongod.pid, args.samples, args.runs)
            results["plan"] = await plans(store, mongod.pid)
            results["cell"] = await cell(store, mongod.pid)
            if args.detections:
                results["detections"] = await detections(store, mongod.pid, args.detections)
            await client.close()
        finally:
            mongod.terminate()
            mongod.wait(60)
    results["load_after"] = load()
    return results


def table(r: dict[str, Any]) -> str:
    c, p, cell_ = r["classification"], r["plan"], r["cell"]
    lines = [
        f"evaluation bench, {r['date']}, mongod {r['mongod']}, {r['cpus']} CPUs, load {r['load_before']} -> {r['load_after']}",
        f"  classification, {c['samples']:,} samples: median {c['median_wall_s']} s, best {c['best_wall_s']} s "
        f"(runs {c['runs_wall_s']} s; mongod CPU {c['runs_mongod_cpu_s']} s); numbers checked",
        f"  the pass alone: via the index {p['index']['wall_s']} s ({p['index']['mongod_cpu_s']} CPU), "
        f"collection scan {p['collection_scan']['wall_s']} s ({p['collection_scan']['mongod_cpu_s']} CPU)",
        f"  cell filter: total {cell_['total']:,} counted in {cell_['count_wall_s']} s, first page {cell_['first_page_wall_s']} s",
    ]
    if "detections" in r:
        d = r["detections"]
        lines.append(
            f"  detections, {d['samples']:,} samples x (3 true, 4 predicted boxes): {d['wall_s']} s, {d['samples_per_s']:,} samples/s"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--detections", type=int, default=100_000, help="0 skips the detections case")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    results = asyncio.run(run(args))
    out = args.out or ROOT / "bench" / "results" / f"{results['date'][:10]}-evaluation.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
