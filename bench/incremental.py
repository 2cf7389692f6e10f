"""Benchmark: incremental runs (`only: missing | stale`) over a 1,000,000-sample dataset, through the
public HTTP API of an embedded stack.

  baseline     a 10,000-sample dataset added through the API, run whole (`only` left out) on the
               zero-cost model (mini_batch 64, 2 replicas) after a 10,000-sample warm-up: the usual
               samples/s for a job of that size, and its POST's time to the 202.
  index cost   what the writer index of `n` costs the jobs that write `n`: 10,000-sample jobs
               without it (dropped) and with it (built again), three of each, alternating, on a
               collection of 20,000-80,000 samples.
  missing      a 1,000,000-sample dataset, written straight into the stack's MongoDB in the format
               the gateway and the worker write (seeding a million samples through the API would
               take most of the run): 99 % of the samples carry the output field `n` with lineage
               (as a finished job of this model version leaves them), 1 % (every 100th sample)
               lack it. A job with `only: missing`: its POST's time to the 202 (it counts the
               selection and reads its ids) and its samples/s, from the POST to `completed` (the
               job's own created_at/finished_at). Three rounds: before each, another 1 % (every
               100th sample, shifted by one) loses the field.
  nothing      the same dataset with nothing missing: the 202 of a job that completes at once.
  stale, all   the same dataset against version 2 of the model (every sample is stale): the 202
               of a job that selects all 1,000,000 (it runs as a plain job); cancelled at once.
  stale, most  after version 2 wrote 3 % of the samples: the 202 of a job that selects the other
               970,000 (it reads their ids and sends them in 97 parts); cancelled at once.
  all          the 202 of a plain job over the 1,000,000 samples, for comparison; cancelled at once.

The writer index of `n` is there as on a hub where jobs wrote `n` before: the warm-up's submit
builds it, on a nearly empty collection, and the seeding's inserts keep it. Take
/tmp/modelhub-integration.lock while it runs (it starts mongod). Prints a table and writes
bench/results-incremental.json (`--out`).
"""

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from bson import ObjectId
from pymongo import MongoClient

sys.path.insert(0, str(Path(__file__).parent))
from jobs import DEPLOY_TIMEOUT_S, SCHEMA, ZERO_COST, Hub, free_port, modelhub, poll, seconds  # noqa: E402

MILLION = 1_000_000
EVERY = 100  # 1 % of the samples lack the field
SEED_BATCH = 10_000
ROUNDS = 3


def submit(hub: Hub, dataset: str, deployment: str, only: str | None) -> tuple[dict, float]:
    """The job as the 202 answered it, and the seconds the POST took."""
    body = {"deployment": deployment, "outputs": {"n": "n"}, **({"only": only} if only else {})}
    start = time.perf_counter()
    answer = hub.client.post(f"/datasets/{dataset}/jobs", json=body)
    took = time.perf_counter() - start
    assert answer.status_code == 202, answer.text
    return answer.json(), took


def seed(mongo_url: str, dataset: str, owner: str, lineage: dict) -> list[str]:
    """A dataset of MILLION samples, every EVERY-th without `n`; returns the sample ids in order."""
    now = datetime.now(UTC)
    with MongoClient(mongo_url) as client:
        db = client["modelhub"]
        db["datasets"].insert_one(
            {
                "_id": dataset,
                "name": dataset,
                "description": "",
                "owner": owner,
                "num_samples": MILLION,
                "created_at": now,
            }
        )
        ids = [str(ObjectId()) for _ in range(MILLION)]
        written = {**lineage, "at": now}
        for start in range(0, MILLION, SEED_BATCH):
            docs = []
            for i in range(start, start + SEED_BATCH):
                doc = {"_id": ids[i], "dataset": dataset, "filepath": f"/bench/{i}", "fields": {"text": f"sample {i}"}}
                if i % EVERY:
                    doc["fields"]["n"] = len(doc["fields"]["text"])
                    doc["lineage"] = {"n": written}
                docs.append(doc)
            db["samples"].insert_many(docs, ordered=False)
    return ids


def unset(mongo_url: str, ids: list[str]) -> None:
    with MongoClient(mongo_url) as client:
        client["modelhub"]["samples"].update_many({"_id": {"$in": ids}}, {"$unset": {"fields.n": "", "lineage.n": ""}})


def index_cost(hub: Hub, mongo_url: str) -> dict:
    """samples/s of 10,000-sample jobs writing `n` without, then with, its writer index (x3)."""
    rates: dict[str, list[int]] = {"without": [], "with": []}
    keys = [("dataset", 1), ("lineage.n.model", 1), ("lineage.n.version", 1), ("_id", 1)]
    with MongoClient(mongo_url) as client:
        samples = client["modelhub"]["samples"]
        for r in range(ROUNDS):
            for case in ("without", "with"):
                if case == "without":
                    samples.drop_index("writer:n")  # the gateway builds it once per process: it stays away
                else:
                    samples.create_index(keys, name="writer:n")
                hub.dataset(f"cost-{r}-{case}", 10_000)
                doc = hub.wait(submit(hub, f"cost-{r}-{case}", "zero", None)[0]["id"])
                rates[case].append(round(10_000 / seconds(doc)))
    return {**rates, "ratio": round(sum(rates["with"]) / sum(rates["without"]), 3)}


def cancel(hub: Hub, job_id: str) -> None:
    hub.client.post(f"/jobs/{job_id}/cancel")
    hub.ended(job_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results-incremental.json"))
    args = parser.parse_args()
    results: dict = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="modelhub-bench-incremental-") as tmp:
        data_dir, port = Path(tmp) / "stack", free_port()
        modelhub("up", "--detach", "--data-dir", str(data_dir), "--port", str(port), "--timeout", "300")
        try:
            hub = Hub(f"http://127.0.0.1:{port}/api/v1", (data_dir / "admin-token").read_text().strip(), Path(tmp))
            hub.client.timeout = httpx.Timeout(600)
            mongo_url = json.loads((data_dir / "credentials.json").read_text())["mongo_url"]
            hub.model("zero-cost", ZERO_COST)
            hub.deploy("zero-cost", "zero", mini_batch=64, replicas=2)  # version 1
            package = Path(tmp) / "zero-cost.zip"
            with package.open("rb") as fh:  # version 2: the same code, so every sample is stale against it
                answer = hub.client.post(
                    "/models/zero-cost/versions",
                    files={"file": (package.name, fh)},
                    data={"schema": json.dumps(SCHEMA)},
                )
            assert answer.status_code == 201, answer.text
            hub.client.post("/models/zero-cost/deployments", json={"name": "zero-v2", "version": 2, "mini_batch": 64})
            for name in ("warm", "ten"):
                hub.dataset(name, 10_000)
            hub.wait(submit(hub, "warm", "zero", None)[0]["id"])
            job, post = submit(hub, "ten", "zero", None)
            doc = hub.wait(job["id"])
            results["baseline"] = {
                "samples": 10_000,
                "post_seconds": round(post, 3),
                "samples_per_s": round(10_000 / seconds(doc)),
            }

            results["index_cost"] = index_cost(hub, mongo_url)

            start = time.perf_counter()
            ids = seed(
                mongo_url,
                "million",
                "admin",
                {"job_id": "seed", "model": "zero-cost", "version": 1, "deployment": "zero"},
            )
            results["seed_seconds"] = round(time.perf_counter() - start, 1)
            rounds = []
            for r in range(ROUNDS):
                if r:
                    unset(mongo_url, ids[r::EVERY])
                job, post = submit(hub, "million", "zero", "missing")
                doc = hub.wait(job["id"])
                rounds.append(
                    {
                        "total": job["total"],
                        "post_seconds": round(post, 3),
                        "samples_per_s": round(doc["total"] / seconds(doc)),
                    }
                )
            results["missing"] = rounds
            job, post = submit(hub, "million", "zero", "missing")
            results["nothing"] = {"total": job["total"], "status": job["status"], "post_seconds": round(post, 3)}

            poll(
                lambda: hub.client.get("/deployments/zero-v2").json(),
                lambda d: d["status"] == "running",
                DEPLOY_TIMEOUT_S,
                "deployment zero-v2",
                0.5,
            )
            for key, deployment, only in (("stale_all", "zero-v2", "stale"), ("all", "zero", None)):
                job, post = submit(hub, "million", deployment, only)
                results[key] = {"total": job["total"], "post_seconds": round(post, 3)}
                cancel(hub, job["id"])
            # version 2 writes 3 % (those that lose the field now): 970,000 stale, not every sample
            unset(mongo_url, [i for r in range(3, 6) for i in ids[r::EVERY]])
            hub.wait(submit(hub, "million", "zero-v2", "missing")[0]["id"])
            job, post = submit(hub, "million", "zero-v2", "stale")
            results["stale_most"] = {"total": job["total"], "post_seconds": round(post, 3)}
            cancel(hub, job["id"])
        finally:
            modelhub("down", "--data-dir", str(data_dir))
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))


def table(r: dict) -> str:
    b, c = r["baseline"], r["index_cost"]
    usual = sorted([b["samples_per_s"], *c["with"]])[len(c["with"]) // 2]  # median of the plain 10k jobs
    lines = [
        f"modelhub incremental-runs benchmark, {r['date']}, {r['cpus']} CPUs",
        f"  baseline, 10,000 samples (all):   202 in {b['post_seconds']:.3f} s, {b['samples_per_s']:,} samples/s",
        f"  seeding 1,000,000 samples in MongoDB: {r['seed_seconds']} s",
    ]
    lines.append(
        f"  a job writing n, 10,000 samples: without the writer index {c['without']} samples/s, "
        f"with it {c['with']} (with/without {c['ratio']:.2f})"
    )
    for i, m in enumerate(r["missing"], 1):
        lines.append(
            f"  missing, round {i}: total {m['total']:,}, 202 in {m['post_seconds']:.3f} s, "
            f"{m['samples_per_s']:,} samples/s ({m['samples_per_s'] / usual:.2f}x the usual {usual:,}: "
            "the median of the plain 10,000-sample jobs with the index)"
        )
    n, s, a, most = r["nothing"], r["stale_all"], r["all"], r["stale_most"]
    lines += [
        f"  missing, nothing to run: total {n['total']}, {n['status']}, 202 in {n['post_seconds']:.3f} s",
        f"  stale, every sample: total {s['total']:,}, 202 in {s['post_seconds']:.3f} s",
        f"  stale, after version 2 wrote 3 %: total {most['total']:,}, 202 in {most['post_seconds']:.3f} s",
        f"  all: total {a['total']:,}, 202 in {a['post_seconds']:.3f} s",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
