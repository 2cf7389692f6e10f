"""Compare a dataset's model predictions (written by a modelhub job) with true labels.

    .venv/bin/python examples/digits/report.py --dataset digits --field predictions \
        --labels examples/digits/build/dataset/labels.json [--url URL] [--token TOKEN]

--url and --token default to $MODELHUB_URL and $MODELHUB_TOKEN.
Exits 1 when no sample has the field (the job has not run or wrote elsewhere).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import httpx

PAGE = 500
SHOWN = 15


def fetch_samples(client: httpx.Client, dataset: str) -> list[dict]:
    samples: list[dict] = []
    while True:
        resp = client.get(f"/api/v1/datasets/{dataset}/samples", params={"limit": PAGE, "offset": len(samples)})
        if resp.status_code != 200:
            raise SystemExit(f"GET samples of {dataset!r} failed: HTTP {resp.status_code} {resp.text[:200]}")
        body = resp.json()
        samples += body["items"]
        if not body["items"] or len(samples) >= body.get("total", 0):
            return samples


def summarize(samples: list[dict], labels: dict[str, str], field: str) -> tuple[list[tuple], dict]:
    """Rows (file, true, predicted, confidence) sorted by file name, and the totals."""
    rows = []
    for s in samples:
        name = os.path.basename(s["filepath"])
        pred = (s.get("fields") or {}).get(field)
        label = conf = None
        if isinstance(pred, dict):
            label, conf = pred.get("label"), pred.get("confidence")
        rows.append((name, labels.get(name), label, conf, pred is not None))
    rows.sort(key=lambda r: r[0])
    annotated = [r for r in rows if r[4]]
    scored = [r for r in annotated if r[1] is not None]
    correct = sum(r[1] == r[2] for r in scored)
    totals = {
        "samples": len(rows),
        "annotated": len(annotated),
        "labelled": len(scored),
        "correct": correct,
        "accuracy": 100.0 * correct / len(scored) if scored else 0.0,
    }
    return [r[:4] for r in rows], totals


def render(rows: list[tuple], totals: dict, shown: int = SHOWN) -> str:
    def cell(v, fmt="{}"):
        return "-" if v is None else fmt.format(v)

    lines = [f"{'file':<20} {'true':>5} {'pred':>5} {'conf':>6}", "-" * 39]
    for name, true, pred, conf in rows[:shown]:
        mark = "" if true is None or pred is None or true == pred else "  x"
        lines.append(f"{name:<20} {cell(true):>5} {cell(pred):>5} {cell(conf, '{:.3f}'):>6}{mark}")
    if len(rows) > shown:
        lines.append(f"... {len(rows) - shown} more")
    lines.append("")
    lines.append(f"samples:   {totals['samples']}")
    lines.append(f"annotated: {totals['annotated']}")
    if totals["labelled"] != totals["annotated"]:
        lines.append(f"labelled:  {totals['labelled']} (annotated samples found in the labels file)")
    lines.append(f"correct:   {totals['correct']}")
    lines.append(f"accuracy:  {totals['accuracy']:.1f}%")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--url", default=os.environ.get("MODELHUB_URL", "http://127.0.0.1:8000"))
    ap.add_argument("--token", default=os.environ.get("MODELHUB_TOKEN"))
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--field", default="predictions", help="sample field holding the model output")
    ap.add_argument("--labels", required=True, type=Path, help="labels.json written by build.py")
    args = ap.parse_args(argv)
    if not args.token:
        ap.error("--token or MODELHUB_TOKEN is required")

    labels = json.loads(args.labels.read_text())
    headers = {"Authorization": f"Bearer {args.token}"}
    try:
        with httpx.Client(base_url=args.url, headers=headers, timeout=30) as client:
            samples = fetch_samples(client, args.dataset)
    except httpx.HTTPError as exc:
        raise SystemExit(f"cannot reach modelhub at {args.url}: {exc}") from exc
    rows, totals = summarize(samples, labels, args.field)
    print(render(rows, totals))
    if totals["annotated"] == 0:
        print(f"no sample of {args.dataset!r} has the field {args.field!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
