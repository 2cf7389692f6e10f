"""Benchmark: an ONNX classifier over 20,000 PNG files as a modelhub job, beside the same model in
plain onnxruntime, in one run.

  cnn    the target case: a small convolutional classifier (three 3x3 convolutions, 16/32/64
         channels, max pooling, global average pooling, 10 logits; weights random but fixed),
         input [N, 3, 64, 64] normalised with ImageNet's mean and std, over 20,000 RGB PNGs of
         96x96 (resized to 64x64 on the way in). Target: the job's samples/s >= 0.8x the plain
         loop's.
  tiny   the floor: a linear model over 8x8 grayscale (a flat [N, 64] input), over 20,000 PNGs of
         32x32: almost no work per sample, so what it shows is the hub's own cost per sample.

Each case is an ONNX package without code (model.onnx + manifest.json, API.md §3) uploaded,
deployed (1 replica, `mini_batch` 32) and run as a job over its dataset through the public HTTP
API, after a 2,000-sample warm-up job; samples/s from the POST to `completed` (the job's own
created_at/finished_at). Beside it, the plain loop: one process reads the same files with the
same code (the replica's adapter, `modelhub_formats.onnx_model.Images.batch`), 32 at a time, and
calls `session.run` with the adapter's session options (one intra-op thread, no spinning), once
before the stack starts and once after it stops (the ratio is against their mean). Also the CPU
time per sample: the plain process's own, and the whole stack's (every process `modelhub up`
started and their children, the jailed model processes included) over the job, also less what
the stack uses idle (measured for 5 s before the job), and of that the jailed model process's
own (the same decoding and session runs as the plain loop's): measures that other load on a shared
machine does not inflate as it does wall-clock rates.

    .venv/bin/python bench/onnx_classifier.py [--samples 20000] [--mini-batch 32] [--out FILE]

Prints a table and writes JSON (default bench/onnx_classifier.json; runs worth keeping are copied
to bench/results/ with their date).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.append(str(ROOT / "services" / "deployer" / "modelhub_replica"))  # as host.py imports it
adapter = importlib.import_module("modelhub_formats.onnx_model")
sys.path.insert(0, str(BENCH))
from jobs import JOB_TIMEOUT_S, TERMINAL, poll, wait_running  # noqa: E402

WARM_UP = 2_000
IDLE_S = 5.0  # how long the stack's idle CPU is measured before each timed job
LABELS = [f"class {i}" for i in range(10)]


# ---------------------------------------------------------------- the models and their files


def cnn(rng: np.random.Generator) -> onnx.ModelProto:
    """[N, 3, 64, 64] -> three conv3x3+ReLU (16, 32, 64 channels; max pooling after the first two)
    -> global average pooling -> 10 logits. He-initialised: the logits spread like a trained net's."""
    nodes, weights, source = [], [], "image"
    for i, (cin, cout) in enumerate(((3, 16), (16, 32), (32, 64))):
        w = rng.normal(size=(cout, cin, 3, 3)) * np.sqrt(2 / (cin * 9))
        weights += [numpy_helper.from_array(w.astype(np.float32), f"w{i}"), _zeros(cout, f"b{i}")]
        nodes += [
            helper.make_node("Conv", [source, f"w{i}", f"b{i}"], [f"c{i}"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", [f"c{i}"], [f"r{i}"]),
        ]
        source = f"r{i}"
        if i < 2:
            nodes.append(helper.make_node("MaxPool", [source], [f"p{i}"], kernel_shape=[2, 2], strides=[2, 2]))
            source = f"p{i}"
    weights += [numpy_helper.from_array(rng.normal(size=(64, 10)).astype(np.float32), "fc"), _zeros(10, "fcb")]
    nodes += [
        helper.make_node("GlobalAveragePool", [source], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc", "fcb"], ["logits"]),
    ]
    return _model(nodes, weights, ["N", 3, 64, 64])


def tiny(rng: np.random.Generator) -> onnx.ModelProto:
    """[N, 64] (8x8 grayscale, flat) -> one matrix product -> 10 logits."""
    weights = [numpy_helper.from_array(rng.normal(size=(64, 10)).astype(np.float32), "w"), _zeros(10, "b")]
    return _model([helper.make_node("Gemm", ["image", "w", "b"], ["logits"])], weights, ["N", 64])


def _zeros(n: int, name: str) -> TensorProto:
    return numpy_helper.from_array(np.zeros(n, np.float32), name)


def _model(nodes: list, weights: list, shape: list) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "bench",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


CASES = {
    "cnn": {
        "model": cnn,
        "image": {"size": [64, 64], "color": "RGB", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
        "file_side": 96,
    },
    "tiny": {"model": tiny, "image": {"size": [8, 8], "color": "L", "resample": "box"}, "file_side": 32},
}


def write_pngs(folder: Path, count: int, side: int, color: str, rng: np.random.Generator) -> list[Path]:
    """Smooth random pictures (a coarse random grid, upscaled): compress like photos, not like noise."""
    folder.mkdir(parents=True)
    paths = []
    for i in range(count):
        coarse = rng.integers(0, 256, size=(12, 12, 3) if color == "RGB" else (12, 12), dtype=np.uint8)
        path = folder / f"{i:05d}.png"
        Image.fromarray(coarse, color).resize((side, side), Image.Resampling.BILINEAR).save(path)
        paths.append(path)
    return paths


def package(folder: Path, name: str, model: onnx.ModelProto, image: dict) -> tuple[Path, dict]:
    manifest = {
        "format": "onnx",
        "onnx": {"input": "image", "output": "logits", "output_kind": "logits", "image": image, "labels": LABELS},
    }
    path = folder / f"{name}.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("model.onnx", model.SerializeToString())
        zf.writestr("manifest.json", json.dumps(manifest))
    schema = {
        "inputs": {"type": "object", "properties": {"image": {"type": "local"}}},
        "outputs": {"type": "object", "properties": {"logits": {"type": "classification"}}},
    }
    return path, schema


# ---------------------------------------------------------------- the plain loop


def plain(model: onnx.ModelProto, image: dict, paths: list[Path], mini_batch: int) -> dict:
    """One process: the adapter's decoding, mini_batch files at a time, one session.run each."""
    session = ort.InferenceSession(
        model.SerializeToString(), sess_options=adapter.session_options(), providers=["CPUExecutionProvider"]
    )
    images = adapter.Images(image, rank=len(session.get_inputs()[0].shape))
    names = [str(p) for p in paths]
    session.run(["logits"], {"image": images.batch(names[:mini_batch])})  # warm: the session's first run
    cpu, start = time.process_time(), time.perf_counter()
    for i in range(0, len(names), mini_batch):
        session.run(["logits"], {"image": images.batch(names[i : i + mini_batch])})
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"samples_per_s": round(len(names) / wall, 1), "cpu_ms_per_sample": round(cpu * 1000 / len(names), 3)}


# ---------------------------------------------------------------- the hub


def modelhub(*args: str, env: dict | None = None) -> str:
    return subprocess.run(
        [sys.executable, "-m", "modelhub", *args], check=True, capture_output=True, text=True, env=env
    ).stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stack_cpu_seconds(data_dir: Path) -> dict[int, float]:
    """CPU seconds used so far by each process of the stack: every pid in state.json and all their
    descendants (Ray's workers, the replicas, their jailed model processes)."""
    roots = set(_pids(json.loads((data_dir / "state.json").read_text())))
    parent, used = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        parent[pid] = int(fields[1])
        used[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    ours = {pid for pid in used if _descends(pid, roots, parent)}
    return {pid: used[pid] for pid in ours}


def model_processes(pids) -> set[int]:
    """Of these, the models' own processes (host.py, in their jails)."""
    found = set()
    for pid in pids:
        try:
            if b"host.py" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.add(pid)
        except OSError:
            pass
    return found


def _pids(node) -> list[int]:
    if isinstance(node, dict):
        found = [node["pid"]] if isinstance(node.get("pid"), int) else []
        return found + [p for value in node.values() for p in _pids(value)]
    return []


def _descends(pid: int, roots: set[int], parent: dict[int, int]) -> bool:
    seen = 0
    while pid > 1 and seen < 64:
        if pid in roots:
            return True
        pid, seen = parent.get(pid, 0), seen + 1
    return False


class Hub:
    """The public API of one stack, as a user's script drives it."""

    def __init__(self, url: str, token: str, data_dir: Path) -> None:
        self.client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=300)
        self.data_dir = data_dir

    def model(self, name: str, path: Path, schema: dict) -> None:
        assert self.client.post("/models", json={"name": name}).status_code == 201
        with path.open("rb") as fh:
            response = self.client.post(
                f"/models/{name}/versions", files={"file": (path.name, fh)}, data={"schema": json.dumps(schema)}
            )
        assert response.status_code == 201, response.text

    def deploy(self, model: str, mini_batch: int) -> None:
        response = self.client.post(f"/models/{model}/deployments", json={"name": model, "mini_batch": mini_batch})
        assert response.status_code == 202, response.text
        wait_running(self.client, model)

    def dataset(self, name: str, paths: list[Path]) -> None:
        assert self.client.post("/datasets", json={"name": name}).status_code == 201
        for i in range(0, len(paths), 10_000):
            rows = [{"filepath": str(p)} for p in paths[i : i + 10_000]]
            assert self.client.post(f"/datasets/{name}/samples", json={"samples": rows}).status_code == 201

    def job(self, dataset: str, deployment: str) -> dict:
        response = self.client.post(
            f"/datasets/{dataset}/jobs", json={"deployment": deployment, "outputs": {"logits": "prediction"}}
        )
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        doc = poll(
            lambda: self.client.get(f"/jobs/{job_id}").json(),
            lambda d: d["status"] in TERMINAL,
            JOB_TIMEOUT_S,
            f"job {job_id}",
            0.1,
        )
        assert doc["status"] == "completed" and doc["succeeded"] == doc["total"], doc
        return doc

    def timed_job(self, dataset: str, deployment: str) -> dict:
        """The job's samples/s, and the stack's CPU per sample: all of it, and less what the
        stack burns idle (Ray's and Serve's own loops, health checks), measured just before."""
        idle_from = stack_cpu_seconds(self.data_dir)
        time.sleep(IDLE_S)
        before = stack_cpu_seconds(self.data_dir)
        idle_cores = _used(idle_from, before) / IDLE_S
        doc = self.job(dataset, deployment)
        after = stack_cpu_seconds(self.data_dir)
        cpu = _used(before, after)
        models = model_processes(after)
        model_cpu = _used(before, {pid: t for pid, t in after.items() if pid in models})
        seconds = (
            datetime.fromisoformat(doc["finished_at"]) - datetime.fromisoformat(doc["created_at"])
        ).total_seconds()
        return {
            "samples_per_s": round(doc["total"] / seconds, 1),
            "seconds": round(seconds, 2),
            "stack_cpu_ms_per_sample": round(cpu * 1000 / doc["total"], 3),
            "stack_idle_cpu_cores": round(idle_cores, 3),
            "stack_cpu_ms_per_sample_less_idle": round((cpu - idle_cores * seconds) * 1000 / doc["total"], 3),
            # the jailed model process alone: the adapter's decoding and onnxruntime, as in the plain loop
            "model_process_cpu_ms_per_sample": round(model_cpu * 1000 / doc["total"], 3),
        }


def _used(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


def run_hub(tmp: Path, media: Path, cases: dict, mini_batch: int) -> dict:
    data_dir, port = tmp / "stack", free_port()
    # the jail shows a model only the media roots (and never /tmp without them)
    env = {**os.environ, "MODELHUB_MEDIA_ROOTS": str(media)}
    modelhub("up", "--detach", "--data-dir", str(data_dir), "--port", str(port), "--timeout", "300", env=env)
    try:
        hub = Hub(f"http://127.0.0.1:{port}/api/v1", (data_dir / "admin-token").read_text().strip(), data_dir)
        results = {}
        for name, case in cases.items():
            hub.model(name, case["package"], case["schema"])
            hub.deploy(name, mini_batch)
            hub.dataset(f"{name}-warm", case["paths"][:WARM_UP])
            hub.dataset(name, case["paths"])
            hub.job(f"{name}-warm", name)  # connections, the replica's direct address, the session's first runs
            results[name] = hub.timed_job(name, name)
        return results
    finally:
        modelhub("down", "--data-dir", str(data_dir))


# ---------------------------------------------------------------- the run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=20_000)
    ap.add_argument("--mini-batch", type=int, default=32)
    ap.add_argument("--out", type=Path, default=BENCH / "onnx_classifier.json")
    args = ap.parse_args(argv)
    now = datetime.now(UTC)
    out: Path = args.out
    rng = np.random.default_rng(24)
    result: dict = {
        "date": now.isoformat(timespec="seconds"),
        "commit": _commit(),
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg()[0],
        "samples": args.samples,
        "mini_batch": args.mini_batch,
        "replicas": 1,
        "onnxruntime": ort.__version__,
        "cases": {},
    }
    with tempfile.TemporaryDirectory(prefix="modelhub-bench-onnx-") as tmp_name:
        tmp = Path(tmp_name)
        media = tmp / "media"
        cases = {}
        for name, case in CASES.items():
            model = case["model"](rng)
            color = case["image"]["color"]
            paths = write_pngs(media / name, args.samples, case["file_side"], color, rng)
            zip_path, schema = package(tmp, name, model, case["image"])
            cases[name] = {**case, "onnx": model, "paths": paths, "package": zip_path, "schema": schema}
        before = {n: plain(c["onnx"], c["image"], c["paths"], args.mini_batch) for n, c in cases.items()}
        hub = run_hub(tmp, media, cases, args.mini_batch)
        after = {n: plain(c["onnx"], c["image"], c["paths"], args.mini_batch) for n, c in cases.items()}
    for name in cases:
        rate = (before[name]["samples_per_s"] + after[name]["samples_per_s"]) / 2
        cpu = (before[name]["cpu_ms_per_sample"] + after[name]["cpu_ms_per_sample"]) / 2
        result["cases"][name] = {
            "plain_before": before[name],
            "plain_after": after[name],
            "hub": hub[name],
            "ratio": round(hub[name]["samples_per_s"] / rate, 2),
            "cpu_ratio": round(hub[name]["stack_cpu_ms_per_sample"] / cpu, 2),
            "cpu_ratio_less_idle": round(hub[name]["stack_cpu_ms_per_sample_less_idle"] / cpu, 2),
        }
    result["load_average_at_end"] = os.getloadavg()[0]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"wrote {out}")
    return 0


def _commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def table(r: dict) -> str:
    lines = [
        f"ONNX classifier benchmark, {r['date']}, {r['cpus']} CPUs, {r['samples']} PNGs, mini_batch {r['mini_batch']}, "
        f"1 replica, load {r['load_average_at_start']:.1f} -> {r['load_average_at_end']:.1f}",
        f"{'case':6} {'plain samples/s':>22} {'job samples/s':>14} {'job/plain':>10} "
        f"{'plain CPU ms':>13} {'model proc ms':>14} {'stack CPU ms':>13} {'less idle':>10} {'CPU ratio':>12}",
    ]
    for name, c in r["cases"].items():
        before, after, hub = c["plain_before"], c["plain_after"], c["hub"]
        lines.append(
            f"{name:6} {before['samples_per_s']:>10.0f} / {after['samples_per_s']:<9.0f} {hub['samples_per_s']:>14.0f} "
            f"{c['ratio']:>10.2f} {(before['cpu_ms_per_sample'] + after['cpu_ms_per_sample']) / 2:>13.3f} "
            f"{hub['model_process_cpu_ms_per_sample']:>14.3f} {hub['stack_cpu_ms_per_sample']:>13.3f} {hub['stack_cpu_ms_per_sample_less_idle']:>10.3f} "
            f"{c['cpu_ratio']:>5.2f} / {c['cpu_ratio_less_idle']:.2f}"
        )
    lines.append(
        "CPU ms per sample; the stack's idle CPU: "
        + ", ".join(f"{n} {c['hub']['stack_idle_cpu_cores']:.2f} cores" for n, c in r["cases"].items())
    )
    lines.append("target: cnn job/plain >= 0.80 (plain: before / after the stack; the ratio is against their mean)")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
