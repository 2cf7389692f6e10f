"""The overhead case's baseline: the same work as a modelhub job, written by hand with Ray Data, as
a user without modelhub would write it. Runs in a virtualenv of its own (ray[data] and pymongo
only; bench/jobs.py makes it) on a local Ray instance of its own.

Reads a dataset's samples from the hub's MongoDB, runs the zero-cost model over them with
`map_batches` (batches of `--batch-size`, the deployment's mini_batch), and bulk-writes each
sample's output field back to MongoDB (a field of its own, new on every sample as the job's was),
journaled as modelhub writes it. After a warm-up run over 2,000 of the samples (modelhub's
replicas are warm too; into another field), prints one JSON line: {"samples", "seconds",
"samples_per_s"}, timed from the first read to the last write. The MongoDB URL (with the hub's
password) comes in MODELHUB_BENCH_MONGO_URL.
"""

import argparse
import json
import logging
import os
import time

import numpy as np
import pymongo
import ray


def zero_cost(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The benchmark's zero-cost model (bench/jobs.py ZERO_COST) over one batch."""
    return {"id": batch["id"], "n": np.array([len(t) for t in batch["text"]])}


_clients: dict[str, pymongo.MongoClient] = {}


def mongo_writer(url: str, db: str, field: str):
    """A batch function that writes the batch's outputs with one bulk write, journaled as modelhub
    writes them; one client per Ray worker process."""

    def write(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if url not in _clients:
            _clients[url] = pymongo.MongoClient(url, journal=True)
        _clients[url][db]["samples"].bulk_write(
            [
                pymongo.UpdateOne({"_id": str(i)}, {"$set": {f"fields.{field}": int(n)}})
                for i, n in zip(batch["id"], batch["n"], strict=True)
            ],
            ordered=False,
        )
        return {"written": np.array([len(batch["id"])])}

    return write


def run(rows: list[dict], args: argparse.Namespace, field: str) -> int:
    """The pipeline: rows -> model -> MongoDB field `field`, in batches of args.batch_size;
    returns samples written."""
    # Ray's stubs type a batch as any of its formats (pandas included): these batches are numpy's.
    ds = (
        ray.data.from_items(rows)
        .map_batches(zero_cost, batch_size=args.batch_size)  # pyright: ignore[reportArgumentType]
        .map_batches(
            mongo_writer(args.mongo_url, args.db, field),  # pyright: ignore[reportArgumentType]
            batch_size=args.batch_size,
        )
    )
    return sum(int(np.asarray(b["written"]).sum()) for b in ds.iter_batches(batch_size=None, batch_format="numpy"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", default="modelhub")
    parser.add_argument("--dataset", required=True)
    # A field of its own, new on every sample, as the modelhub job's was: rewriting the job's own
    # field with the same values would be no-op updates, which MongoDB does for about half the
    # CPU of real ones (measured on this machine: 0.27-0.30 against 0.48-0.50 s per 20,000).
    parser.add_argument("--field", default="n_raydata")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    args.mongo_url = os.environ["MODELHUB_BENCH_MONGO_URL"]  # holds a password: not on the command line

    # address="local": a new Ray of its own, never a cluster another `ray start` left on the machine
    ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    ray.data.DataContext.get_current().enable_progress_bars = False
    samples = pymongo.MongoClient(args.mongo_url)[args.db]["samples"]
    query = ({"dataset": args.dataset}, {"fields.text": 1})
    warm = [{"id": d["_id"], "text": d["fields"]["text"]} for d in samples.find(*query, limit=2_000)]
    run(warm, args, f"{args.field}_warmup")  # warm-up, as modelhub's replicas are: Ray's workers started, imports done
    start = time.perf_counter()
    rows = [{"id": d["_id"], "text": d["fields"]["text"]} for d in samples.find(*query, batch_size=5000)]
    written = run(rows, args, args.field)
    seconds = time.perf_counter() - start
    assert written == len(rows), (written, len(rows))
    print(json.dumps({"samples": written, "seconds": round(seconds, 2), "samples_per_s": round(written / seconds)}))
    ray.shutdown()


if __name__ == "__main__":
    main()
