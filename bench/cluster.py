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

The CPU account, for each shape and deployment over its timed jobs: the CPU-seconds (utime + stime
from /proc) of every process of the stack (bench/jobs.py's StackProcesses: each service, Ray's
processes, the supervisor; here also each nats-server and each mongod of the cluster, named by its
role when the jobs started: the MongoDB primary and its secondaries, the nats-server leading the
events stream and the others), and the machine's own total (/proc/stat: every process on it, other
work included), as CPU-ms per 1,000 samples. From it, for the cluster shape: what the hub's own
processes cost per sample (services, Ray, the supervisor, the primary, the events stream's leader)
against the replication (the secondaries, the other nats-servers), and a computed ratio (not a
measured one) for a cluster whose replication runs on machines of its own: the measured cluster rate
scaled by (the stack's CPU per sample) / (the same less the replication's), that is the rate if this
machine spent the CPU-seconds per second it spent here on the hub's part alone. It holds while the
machine is the bound (the stack's CPU-s per s near the cores); it leaves out the network's latency a
majority write and a replicated publish would wait for on real machines. Each case also measures
the stack's idle CPU (3 s without a job, by process): the account less it (what the samples
themselves cost), and the computed rate again with the idle apart (a slower shape spends more idle
CPU per sample; moved away, the replication's idle goes too, and the rest is not per sample). A
second computed figure also moves the primary's and the leader's CPU beyond the single node's
mongod and nats-server (serving the secondaries and followers): the generous bound.

MODELHUB_BENCH_SPLIT=1 also runs the cluster shape with MODELHUB_MONGO_MAJORITY=false and with
MODELHUB_NATS_REPLICAS=1 (each for the whole stack): what majority writes and 3-replica streams
each cost.

Prints a table and writes bench/results/<date>-cluster-vs-single.json. Numbers from a small shared
machine are noisy: compare the ratio within one run, not absolute numbers across runs.
"""

import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from jobs import ZERO_COST, Hub, StackProcesses, free_port, idle_rates, modelhub, seconds

from modelhub_contracts.subjects import STREAM as EVENTS_STREAM

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
MEMBER = re.compile(r"(nats|mongo)-\d+")


class ShapeProcesses(StackProcesses):
    """bench/jobs.py's account, with `up --cluster N`'s members (state.json's nats-<i> and
    mongo-<i>, which StackProcesses would count under the supervisor as one row each kind) as rows of
    their own, named by `roles` (member -> its row's name)."""

    def __init__(self, data_dir: Path, roles: dict[str, str]) -> None:
        super().__init__(data_dir)
        state = json.loads((data_dir / "state.json").read_text())
        members = {roles.get(k, k): e["pid"] for k, e in state.items() if MEMBER.fullmatch(k) and e.get("pid")}
        if members:
            self.pids.update(members)
            self.peak.update(dict.fromkeys(members, 0.0))
            self.label.clear()
            self.first.clear()
            self.last.clear()
            self._scan(initial=True)


def machine_busy_seconds() -> float:
    """CPU-seconds the whole machine has been busy (every core, every process: /proc/stat's
    user, nice, system, irq, softirq and steal)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def roles(data_dir: Path) -> dict[str, str]:
    """Each cluster member's row name: `mongo-1 (primary)`, `nats-0 (events leader)`; empty on one
    node. Taken once, before the timed jobs (nothing is killed meanwhile: they do not move)."""
    state = json.loads((data_dir / "state.json").read_text())
    port_of = {k: int(e["url"].rsplit(":", 1)[1]) for k, e in state.items() if MEMBER.fullmatch(k) and e.get("url")}
    if not port_of:
        return {}
    import nats
    import pymongo

    creds = json.loads((data_dir / "credentials.json").read_text())
    with pymongo.MongoClient(creds["mongo_url"], serverSelectionTimeoutMS=20_000) as client:
        primary = int(client.admin.command("hello")["primary"].rsplit(":", 1)[1])

    async def leader() -> int:
        urls = creds["nats_url"].split(",")
        user, password = urls[0].split("//", 1)[1].split("@", 1)[0].split(":", 1)
        nc = await nats.connect([f"nats://{u.split('@', 1)[1]}" for u in urls], user=user, password=password)
        try:
            info = await nc.jetstream().stream_info(EVENTS_STREAM)
            name = (info.cluster.leader if info.cluster else None) or "-0"
            return int(name.rsplit("-", 1)[1])  # server names: modelhub-<port>
        finally:
            await nc.close()

    lead = asyncio.run(leader())
    out = {}
    for member, port in port_of.items():
        if member.startswith("mongo"):
            out[member] = f"{member} ({'primary' if port == primary else 'secondary'})"
        else:
            out[member] = f"{member} ({'events leader' if port == lead else 'follower'})"
    return out


def idle(data_dir: Path, named: dict[str, str]) -> dict[str, float]:
    """Each row's idle CPU-s per s (jobs.idle_rates). A slower shape spends more of it per sample;
    the account less it says what the samples themselves cost."""
    return idle_rates(ShapeProcesses(data_dir, named))


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
                named = roles(data_dir)
                idle_rate = idle(data_dir, named)
                account = ShapeProcesses(data_dir, named)
                account.start()
                busy, start = machine_busy_seconds(), time.perf_counter()
                rates = [SAMPLES / seconds(hub.wait(hub.submit("twenty", name)[0])) for _ in range(rounds)]
                busy, wall = machine_busy_seconds() - busy, time.perf_counter() - start
                cpu = account.stop()[1]
                per_k = 1e6 / (rounds * SAMPLES)  # CPU-s -> CPU-ms per 1,000 samples
                less_idle = {k: max(0.0, v - idle_rate.get(k, 0.0) * wall) for k, v in cpu.items()}
                out[name] = {
                    "samples_per_s": round(statistics.median(rates)),
                    "rounds": [round(r) for r in rates],
                    "account_wall_s": round(wall, 2),
                    "stack_cpu_s_per_s": round(sum(cpu.values()) / wall, 2),
                    "machine_cpu_s_per_s": round(busy / wall, 2),
                    "cpu_ms_per_1000_samples": {
                        "stack": round(sum(cpu.values()) * per_k, 1),
                        "machine": round(busy * per_k, 1),
                        "by_process": {k: round(v * per_k, 1) for k, v in cpu.items()},
                        "stack_less_idle": round(sum(less_idle.values()) * per_k, 1),
                        "by_process_less_idle": {k: round(v * per_k, 1) for k, v in less_idle.items()},
                    },
                    "idle_cpu_ms_per_s_by_process": {k: round(v * 1e3, 1) for k, v in idle_rate.items() if v},
                }
            return out
        finally:
            modelhub("down", "--data-dir", str(data_dir))
            os.environ.clear()
            os.environ.update(saved)


def split(case: dict, single: dict) -> dict:
    """A cluster case's account in three parts (CPU-ms per 1,000 samples): the hub's own processes,
    the servers doing the hub's part (the primary, the events stream's leader) and the replication
    (the secondaries, the other nats-servers); then the computed rate and ratio to `single` (the
    single node's same case) with the replication on machines of its own, and with also the
    primary's and the leader's CPU beyond the single node's mongod and nats-server (serving the
    secondaries' oplog reads and the followers' appends: replication work too, but done in the
    process that also serves the hub, so this bound is the generous one)."""
    rows = case["cpu_ms_per_1000_samples"]["by_process"]
    replication = sum(v for k, v in rows.items() if k.endswith(("(secondary)", "(follower)")))
    primary = sum(v for k, v in rows.items() if k.endswith("(primary)"))
    leader = sum(v for k, v in rows.items() if k.endswith("(events leader)"))
    one = single["cpu_ms_per_1000_samples"]["by_process"]
    excess = max(0.0, primary - one.get("mongo", 0.0)) + max(0.0, leader - one.get("nats", 0.0))
    stack = case["cpu_ms_per_1000_samples"]["stack"]

    def computed(moved: float) -> int:
        return round(case["samples_per_s"] * stack / (stack - moved))

    # the same with the idle CPU apart: the idle part of a row does not grow with the rate, so only
    # the rest is per sample (the closer figure)
    idle = case["idle_cpu_ms_per_s_by_process"]
    work = case["cpu_ms_per_1000_samples"]["by_process_less_idle"]
    one_less_idle = single["cpu_ms_per_1000_samples"]["by_process_less_idle"]

    def moved(rows: dict[str, float], beyond: float) -> float:
        return sum(v for k, v in rows.items() if k.endswith(("(secondary)", "(follower)"))) + beyond

    excess_apart = max(0.0, rows_ending(work, "(primary)") - one_less_idle.get("mongo", 0.0)) + max(
        0.0, rows_ending(work, "(events leader)") - one_less_idle.get("nats", 0.0)
    )

    def computed_apart(beyond: float) -> int:
        # relative to the measured rate: the CPU-s per s left for samples grows by the idle moved
        # away, the CPU per sample shrinks by the work moved away
        cpu_s_per_s, all_idle = case["stack_cpu_s_per_s"], sum(idle.values()) / 1e3
        stays_idle = all_idle - moved(idle, 0.0) / 1e3
        all_work = sum(work.values())
        stays_work = all_work - moved(work, beyond)
        return round(
            case["samples_per_s"] * (cpu_s_per_s - stays_idle) / (cpu_s_per_s - all_idle) * all_work / stays_work
        )

    return {
        "computed_idle_apart_samples_per_s": computed_apart(0.0),
        "computed_idle_apart_vs_single": round(computed_apart(0.0) / single["samples_per_s"], 2),
        "computed_idle_apart_also_beyond_single_vs_single": round(
            computed_apart(excess_apart) / single["samples_per_s"], 2
        ),
        "hub_processes": round(stack - replication - primary - leader, 1),
        "primary_and_events_leader": round(primary + leader, 1),
        "replication": round(replication, 1),
        "primary_and_leader_beyond_single": round(excess, 1),
        "computed_samples_per_s_replication_elsewhere": computed(replication),
        "computed_vs_single": round(computed(replication) / single["samples_per_s"], 2),
        "computed_samples_per_s_also_beyond_single": computed(replication + excess),
        "computed_vs_single_also_beyond_single": round(computed(replication + excess) / single["samples_per_s"], 2),
    }


def rows_ending(rows: dict[str, float], suffix: str) -> float:
    return sum(v for k, v in rows.items() if k.endswith(suffix))


def grouped(rows: dict[str, float]) -> dict[str, float]:
    """The account's rows for the table: Ray's processes summed as one."""
    out: dict[str, float] = {}
    for k, v in rows.items():
        key = "ray (every process)" if k == "ray" or k.startswith("ray:") else k
        out[key] = round(out.get(key, 0.0) + v, 1)
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


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
    results["cluster_split"] = {name: split(results["cluster-3"][name], results["single"][name]) for name in CASES}
    print(f"{'shape':24} " + " ".join(f"{name + ' s/s (x single)':>26}" for name in CASES))
    for shape in shapes:
        cells = [
            f"{results[shape][n]['samples_per_s']} ({results['vs_single'].get(shape, {}).get(n, 1.0)}x)" for n in CASES
        ]
        print(f"{shape:24} " + " ".join(f"{c:>26}" for c in cells))
    for name in CASES:
        print(f"\nCPU-ms per 1,000 samples, {name}: stack / less its idle CPU / machine (stack CPU-s per s)")
        for shape in shapes:
            case = results[shape][name]
            cpu = case["cpu_ms_per_1000_samples"]
            print(
                f"  {shape:24} {cpu['stack']:>7} / {cpu['stack_less_idle']:>7} / {cpu['machine']:>7}"
                f"  ({case['stack_cpu_s_per_s']} CPU-s/s)"
            )
            less = grouped(cpu["by_process_less_idle"])
            for row, ms in grouped(cpu["by_process"]).items():
                if ms >= 0.5:
                    print(f"      {ms:>7.1f} {less.get(row, 0.0):>7.1f}  {row}")
        part = results["cluster_split"][name]
        print(
            f"  cluster-3: hub processes {part['hub_processes']}, primary + events leader "
            f"{part['primary_and_events_leader']} ({part['primary_and_leader_beyond_single']} beyond the single"
            f" node's servers), replication {part['replication']}. Computed, not measured, with the replication"
            f" elsewhere: {part['computed_samples_per_s_replication_elsewhere']} samples/s"
            f" ({part['computed_vs_single']}x single); also without the excess:"
            f" {part['computed_samples_per_s_also_beyond_single']} ({part['computed_vs_single_also_beyond_single']}x);"
            f" with the idle CPU apart: {part['computed_idle_apart_samples_per_s']}"
            f" ({part['computed_idle_apart_vs_single']}x; also without the excess"
            f" {part['computed_idle_apart_also_beyond_single_vs_single']}x)"
        )
    path = RESULTS_DIR / f"{now:%Y-%m-%d-%H%M}-cluster-vs-single.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
