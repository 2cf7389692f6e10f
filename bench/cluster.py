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

MODELHUB_BENCH_SPLIT=1 also runs the cluster shape with MODELHUB_MONGO_MAJORITY=false and with
MODELHUB_NATS_REPLICAS=1 (each for the whole stack): what majority writes and 3-replica streams
each cost.

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
# shape -> (`up` options, the services' environment)
SHAPES: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "single": ((), {}),
    "cluster-3": (("--cluster", "3"), {}),
}
SPLIT = {
    "cluster-3-no-majority": (("--cluster", "3"), {"MODELHUB_MONGO_MAJORITY": "false"}),
    "cluster-3-nats-r1": (("--cluster", "3"), {"MODELHUB_NATS_REPLICAS": "1"}),
}
RESULTS_DIR = Path(__file__).with_name("results")


def run_shape(options: tuple[str, ...], env: dict[str, str], rounds: int) -> dict:
    saved = dict(os.environ)
    os.environ.update(env)  # `up` hands its environment to the services
    with tempfile.TemporaryDirectory(prefix="modelhub-bench-cluster-") as tmp:
        data_dir, port = Path(tmp) / "stack", free_port()
        try:
            modelhub("up", "--detach", "--data-dir", str(data_dir), "--port", str(port), "--timeout", "300", *options)
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
            os.environ.clear()
            os.environ.update(saved)


def main() -> None:
    rounds = int(os.environ.get("MODELHUB_BENCH_ROUNDS", "3"))
    now = datetime.now(UTC)
    results: dict = {"date": now.isoformat(timespec="seconds"), "cpus": os.cpu_count(), "samples": SAMPLES}
    shapes = {**SHAPES, **(SPLIT if os.environ.get("MODELHUB_BENCH_SPLIT") == "1" else {})}
    for shape, (options, env) in shapes.items():
        results[shape] = run_shape(options, env, rounds)
    results["vs_single"] = {
        shape: {
            name: round(results[shape][name]["samples_per_s"] / results["single"][name]["samples_per_s"], 2)
            for name in CASES
        }
        for shape in shapes
        if shape != "single"
    }
    print(f"{'shape':24} " + " ".join(f"{name + ' s/s (x single)':>26}" for name in CASES))
    for shape in shapes:
        cells = [
            f"{results[shape][n]['samples_per_s']} ({results['vs_single'].get(shape, {}).get(n, 1.0)}x)" for n in CASES
        ]
        print(f"{shape:24} " + " ".join(f"{c:>26}" for c in cells))
    path = RESULTS_DIR / f"{now:%Y-%m-%d-%H%M}-cluster-vs-single.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
