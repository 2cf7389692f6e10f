"""Run a deployment of the MLflow example over the held-out iris rows and report its accuracy.

    .venv/bin/python examples/mlflow-sklearn/run.py --deployment iris-prod [--dataset iris] \
        [--samples examples/mlflow-sklearn/build/samples.json]

Creates the dataset (unless it exists) with the samples that build.py wrote (their fields hold the
four measurements, which the model's inputs of the same names read, and the true `species`),
runs the deployment over it writing `predictions` to the field `predicted_species`, waits for the
job, and prints how many predictions match `species`. The gateway and token are found as the CLI
finds them (`MODELHUB_URL`, `MODELHUB_TOKEN`, or the running stack's data dir).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from modelhub.api import ApiClient, ApiError

HERE = Path(__file__).resolve().parent
FIELD = "predicted_species"


def add_dataset(hub: ApiClient, name: str, samples: list[dict]) -> None:
    try:
        hub.create_dataset(name, description="iris rows held out from the MLflow example's training")
    except ApiError as exc:
        if exc.status != 409:
            raise
        return  # there already: its samples were added when it was made
    hub.request("POST", f"/datasets/{name}/samples", json={"samples": samples})


def wait(hub: ApiClient, job_id: str, timeout_s: float = 300) -> dict:
    deadline = time.monotonic() + timeout_s
    while (job := hub.get_job(job_id))["status"] not in ("completed", "failed", "cancelled"):
        if time.monotonic() > deadline:
            raise SystemExit(f"job {job_id} still {job['status']} after {timeout_s:g} s")
        time.sleep(0.5)
    return job


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--deployment", required=True, help="a running deployment of the example's zip")
    ap.add_argument("--dataset", default="iris")
    ap.add_argument("--samples", type=Path, default=HERE / "build" / "samples.json")
    args = ap.parse_args(argv)
    samples = json.loads(args.samples.read_text())["samples"]
    with ApiClient() as hub:
        add_dataset(hub, args.dataset, samples)
        job = wait(hub, hub.submit_job(args.dataset, args.deployment, {"predictions": FIELD})["id"])
        rows = hub.list_samples(args.dataset, limit=10_000)["items"]
    right = sum(r["fields"].get(FIELD) == r["fields"]["species"] for r in rows)
    print(f"job {job['id']}: {job['status']}, {job['succeeded']} succeeded, {job['failed']} failed")
    print(f"{right} of {len(rows)} predictions match the true species ({right / max(len(rows), 1):.1%})")
    return 0 if job["status"] == "completed" and job["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
