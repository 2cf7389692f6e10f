"""Another system on modelhub's bus: add samples to a dataset and run a job on them, as a user.

Only nats-py is needed. The system connects as the `integration` NATS user (its URL is
`integration_nats_url` in DIR/credentials.json), which may send commands and read its own inbox,
nothing else; each command carries a modelhub user's API token, and the hub does exactly what
that user may do over HTTP. Every answer is {"status", "detail", "data"} with HTTP's statuses.

    python examples/integration/publish_as_user.py --data-dir DIR --token TOKEN \\
        --dataset photos --deployment digits-demo --output predictions=predictions /abs/a.png /abs/b.png

Exit status: 0 when the job completed, 1 when a command was refused (the reply is printed), 2 when
the job ended otherwise.
"""

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

import nats

INBOX_PREFIX = "_INBOX_ext.integration"  # the only inboxes the integration user may read
ADD_SAMPLES = "modelhub.ext.cmd.samples.add"
SUBMIT_JOB = "modelhub.ext.cmd.jobs.submit"
GET_JOB = "modelhub.ext.cmd.jobs.get"
ENDED = ("completed", "failed", "cancelled")


class Refused(Exception):
    """The hub answered a command with a status >= 400."""


async def command(nc, subject: str, token: str, body: dict, timeout: float = 30) -> dict:
    """Send one command as the token's user; the reply's data, or Refused with the reply."""
    msg = await nc.request(
        subject, json.dumps(body).encode(), timeout=timeout, headers={"Authorization": f"Bearer {token}"}
    )
    reply = json.loads(msg.data)
    if reply["status"] >= 400:
        raise Refused(f"{subject}: {reply['status']} {reply['detail']}")
    return reply["data"]


async def run(
    url: str, token: str, dataset: str, deployment: str, outputs: dict, files: list[str], timeout: float
) -> int:
    nc = await nats.connect(url, inbox_prefix=INBOX_PREFIX)
    try:
        added = await command(nc, ADD_SAMPLES, token, {"dataset": dataset, "samples": [{"filepath": f} for f in files]})
        print(f"added {added['added']} samples to {dataset}")
        job = await command(nc, SUBMIT_JOB, token, {"dataset": dataset, "deployment": deployment, "outputs": outputs})
        print(f"job {job['id']} submitted: {job['status']}, {job['total']} samples")
        deadline = asyncio.get_running_loop().time() + timeout
        while job["status"] not in ENDED and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.5)
            job = await command(nc, GET_JOB, token, {"job_id": job["id"]})
            print(f"job {job['id']}: {job['status']} {job['succeeded']}+{job['failed']}/{job['total']}")
        return 0 if job["status"] == "completed" else 2
    except Refused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    finally:
        await nc.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("MODELHUB_DATA_DIR", "~/.modelhub"),
        help="the stack's data dir, for DIR/credentials.json (or give --nats-url)",
    )
    parser.add_argument("--nats-url", help="the integration user's NATS URL, password included")
    parser.add_argument(
        "--token",
        default=os.environ.get("MODELHUB_TOKEN"),
        help='the user\'s API token (better: MODELHUB_TOKEN, out of the process list; as an option write --token=TOKEN, since a token may begin with "-")',
    )
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--deployment", required=True)
    parser.add_argument("--output", action="append", required=True, help="MODEL_OUTPUT=FIELD")
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("files", nargs="+", help="absolute paths of the samples' files")
    args = parser.parse_args()
    url = (
        args.nats_url
        or json.loads((Path(args.data_dir).expanduser() / "credentials.json").read_text())["integration_nats_url"]
    )
    outputs = dict(o.split("=", 1) for o in args.output)
    return asyncio.run(run(url, args.token, args.dataset, args.deployment, outputs, args.files, args.timeout))


if __name__ == "__main__":
    sys.exit(main())
