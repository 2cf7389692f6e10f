"""Benchmark: what tracing costs a job. One run, stacks started in turn with telemetry on (the
embedded default: every service writes spans to DIR/telemetry) and off (OTEL_SDK_DISABLED=true;
metrics stay on in both), alternating to spread the shared machine's noise: a zero-cost model,
mini_batch 64, 2 replicas, a 20,000-sample job after a warm-up job; samples/s from the job's own
created_at/finished_at. The first stack with telemetry on also runs an 8-sample job (mini_batch 4)
and keeps its `modelhub jobs trace` in bench/trace-example.txt (docs/operations.md shows it).

Writes bench/results-telemetry.json and prints a line per stack and the on/off ratio.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from jobs import ZERO_COST, Hub, free_port, seconds  # noqa: E402

RESULTS = Path(__file__).with_name("results-telemetry.json")
EXAMPLE = Path(__file__).with_name("trace-example.txt")
SAMPLES = int(os.environ.get("MODELHUB_BENCH_SAMPLES", "20000"))
ROUNDS = ("on", "off", "on", "off")


def modelhub(env: dict, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "modelhub", *args], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"modelhub {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def one_stack(mode: str, keep_example: bool) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MODELHUB_"))}
    if mode == "off":
        env["OTEL_SDK_DISABLED"] = "true"
    with tempfile.TemporaryDirectory(prefix=f"modelhub-bench-tel-{mode}-") as tmp:
        data_dir, port = Path(tmp) / "stack", free_port()
        for tries_left in (1, 0):  # on a loaded machine a Ray node can miss its start deadline: once more
            try:
                modelhub(env, "up", "--detach", "--data-dir", str(data_dir), "--port", str(port), "--timeout", "300")
                break
            except SystemExit as exc:
                if not tries_left:
                    raise
                print(f"(up failed, retrying: {str(exc).splitlines()[-1]})", flush=True)
        try:
            hub = Hub(f"http://127.0.0.1:{port}/api/v1", (data_dir / "admin-token").read_text().strip(), Path(tmp))
            hub.model("zero-cost", ZERO_COST)
            hub.deploy("zero-cost", "zero", mini_batch=64, replicas=2)
            hub.dataset("big", SAMPLES)
            hub.dataset("small", 2_000)
            hub.wait(hub.submit("small", "zero")[0])  # warm-up: handles, connections, indexes
            rate = SAMPLES / seconds(hub.wait(hub.submit("big", "zero")[0]))
            if keep_example:
                hub.deploy("zero-cost", "example", mini_batch=4, replicas=1)
                hub.dataset("eight", 8)
                job_id = hub.submit("eight", "example")[0]
                hub.wait(job_id)
                subprocess.run(["sleep", "8"], check=True)  # the span processors flush every 5 s
                EXAMPLE.write_text(
                    f"$ modelhub jobs trace {job_id}\n"
                    + modelhub({**env, "MODELHUB_DATA_DIR": str(data_dir)}, "jobs", "trace", job_id)
                )
            return rate
        finally:
            modelhub(env, "down", "--data-dir", str(data_dir))


def main() -> None:
    rates: dict[str, list[float]] = {"on": [], "off": []}
    for i, mode in enumerate(ROUNDS):
        rate = one_stack(mode, keep_example=i == 0)
        rates[mode].append(round(rate, 1))
        print(f"telemetry {mode:<3}: {rate:8.1f} samples/s", flush=True)
    on, off = statistics.median(rates["on"]), statistics.median(rates["off"])
    results = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "samples": SAMPLES,
        "samples_per_s": rates,
        "median_on": on,
        "median_off": off,
        "on_over_off": round(on / off, 3),
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"median on {on:.1f}, off {off:.1f} samples/s: on/off = {on / off:.3f}")


if __name__ == "__main__":
    main()
