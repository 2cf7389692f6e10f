"""Benchmark: jobs throughput on `modelhub up --cluster 3` (three nats-servers in one JetStream
cluster with 3-replica streams, a three-member MongoDB replica set with majority writes) against the
single-node stack, in one run on one machine (issue #25's target: at least 0.6x).

For each shape: a stack of its own, the zero-cost model of bench/jobs.py deployed twice (mini_batch
64 and mini_batch 8, 2 replicas each: the second sends eight times the events per sample, where
replication costs most), a 20,000-sample dataset, one warm-up job per deployment, then
MODELHUB_BENCH_ROUNDS (default 3) jobs per deployment: samples/s from the POST to `completed` (the
job's own created_at/finished_at), the median kept. Both shapes run on the same machine, every
server on it: the cluster's replication is real (three copies written, majorities waited for), its
network is loopback.

Prints a table and writes bench/results/<date>-cluster-vs-single.json. Numbers from a small shared
machine are noisy: compare the ratio within one run, not absolute numbers across runs.
"""

import json
import os
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from jobs import ZERO_COST, Hub, free_port, modelhub, seconds

SAMPLES = 20_000
CASES = {"zero-64": 64, "zero-8": 8}  # deployment -> mini_batch
SHAPES = {"single": (), "cluster-3": ("--cluster", "3")}
RESULTS_DIR = Path(__file__).with_name("results")


def run_shape(options: tuple[str, ...], rounds: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="modelhub-bench-cluster-") as tmp:
        data_dir, port = Path(tmp) / "stack", free_port()
        modelhub("up", "--detach", "--data-dir", str(data_dir), "--port", str(port), "--timeout", "300", *options)
        try:
            hub = Hub(f"http://127.0.0.1:{port}/api/v1", (data_dir / "admin-token").read_text().strip(), Path(tmp))
            hub.model("zero-cost", ZERO_COST)
            for name, mini_batch in CASES.items():
                hub.deploy("zero-cost", name, mini_batch=mini_batch, replicas=2)
            hub.dataset("twenty", SAMPLES)
            out = {}
            for name in CASES:
                hub.wait(hub.submit("twenty", name)[0])  # warm-up: handles, indexes, direct addresses
                rates = [SAMPLES / seconds(hub.wait(hub.submit("twenty", name)[0])) for _ in range(rounds)]
                out[name] = {"samples_per_s": round(statistics.median(rates)), "rounds": [round(r) for r in rates]}
            return out
        finally:
            modelhub("down", "--data-dir", str(data_dir))


def main() -> None:
    rounds = int(os.environ.get("MODELHUB_BENCH_ROUNDS", "3"))
    now = datetime.now(UTC)
    results: dict = {"date": now.isoformat(timespec="seconds"), "cpus": os.cpu_count(), "samples": SAMPLES}
    for shape, options in SHAPES.items():
        results[shape] = run_shape(options, rounds)
    results["cluster_vs_single"] = {
        name: round(results["cluster-3"][name]["samples_per_s"] / results["single"][name]["samples_per_s"], 2)
        for name in CASES
    }
    print(f"{'case':10} {'single s/s':>11} {'cluster-3 s/s':>14} {'ratio':>6}")
    for name in CASES:
        single, cluster = results["single"][name]["samples_per_s"], results["cluster-3"][name]["samples_per_s"]
        print(f"{name:10} {single:>11} {cluster:>14} {results['cluster_vs_single'][name]:>6}")
    path = RESULTS_DIR / f"{now:%Y-%m-%d-%H%M}-cluster-vs-single.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
