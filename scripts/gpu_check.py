"""GPU check: the replica's own loading and mini-batch code running a real torch model on CUDA.

Run by scripts/gpu-check.sh on a machine with an NVIDIA GPU and torch. It builds a model package
(a small convolutional classifier, weights saved as a state dict and loaded with
`torch.load(weights_only=True)`, no pickle of code), loads it through `ModelReplica` from
services/deployer/modelhub_replica/__init__.py exactly as a replica does (working directory =
unpacked package, `Model(model_dir)`), and feeds it the way the inference-worker does a job:
one `predict_chunk` call per mini-batch of image files, a bounded number of calls in flight.
It prints what the model saw from inside (`torch.cuda.is_available()`, the device), samples/s
per mini_batch, and how busy the GPU was (nvidia-smi sampled every 100 ms).

Ray is not needed: where `ray` is not installed (the GPU machine has torch but no Ray), a
stand-in for `ray.serve`'s two decorators lets `modelhub_replica` import; the code measured is
modelhub's (`__init__`, `predict_chunk`, `_predict`, `_columns`, `_rows`), not Serve's.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import types
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPLICA = ROOT / "services/deployer/modelhub_replica/__init__.py"

MODEL_PY = """
import numpy as np
import torch
from torch import nn

LABELS = [f"class_{i}" for i in range(10)]


def network():
    def block(cin, cout):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                             nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                             nn.MaxPool2d(2))
    return nn.Sequential(block(3, 64), block(64, 128), block(128, 256), block(256, 256),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, len(LABELS)))


class Model:
    def __init__(self, model_dir):
        self.cuda = torch.cuda.is_available()
        self.device = torch.device("cuda" if self.cuda else "cpu")
        self.net = network()
        self.net.load_state_dict(torch.load(f"{model_dir}/weights.pt", weights_only=True))
        self.net.to(self.device).eval()
        self.seen = f"{self.device} {torch.cuda.get_device_name(0) if self.cuda else 'cpu'}"

    @torch.inference_mode()
    def predict(self, batch):
        images = np.stack([np.load(path, allow_pickle=False) for path in batch["image_paths"]])
        x = torch.from_numpy(images).to(self.device, non_blocking=True).float().div_(255)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cuda):
            probs = self.net(x).float().softmax(1)
        conf, idx = probs.max(1)
        preds = [{"label": LABELS[i], "confidence": float(c)} for i, c in zip(idx.tolist(), conf.tolist())]
        return {"predictions": preds, "device": [self.seen] * len(preds)}
"""


def import_replica():
    """`modelhub_replica` as a replica imports it; a two-decorator stand-in for ray.serve if Ray is absent."""
    try:
        import ray.serve  # noqa: F401
    except ImportError:
        serve = types.ModuleType("ray.serve")

        def batch(*_args, **_kwargs):
            def wrap(fn):
                fn.set_max_batch_size = lambda _n: None
                fn.set_batch_wait_timeout_s = lambda _s: None
                return fn

            return wrap

        vars(serve).update(deployment=lambda cls=None, **_kw: cls if cls is not None else (lambda c: c), batch=batch)
        ray = types.ModuleType("ray")
        vars(ray).update(serve=serve)
        sys.modules.update({"ray": ray, "ray.serve": serve})
        print("ray: not installed here; ray.serve's decorators stood in (Serve's batching is not measured)")
    spec = importlib.util.spec_from_file_location("modelhub_replica_under_test", REPLICA)
    assert spec is not None and spec.loader is not None, f"{REPLICA} is a Python file"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # A replica fetches its package from the Ray cluster (by id and sha-256); here there is no
    # cluster: the package is the folder the check stands in.
    vars(module).update(fetch_package=lambda _package_id, _sha256: os.getcwd())
    cls = module.ModelReplica
    return getattr(cls, "func_or_class", cls)


def build_package(work: Path, size: int) -> Path:
    import torch  # pyright: ignore[reportMissingImports] -- only where gpu-check.sh finds a Python with torch

    sys.path.insert(0, str(work))
    source = work / "src"
    source.mkdir()
    (source / "model.py").write_text(MODEL_PY)
    spec = importlib.util.spec_from_file_location("gpu_check_model", source / "model.py")
    assert spec is not None and spec.loader is not None, "model.py is a Python file"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    torch.save(module.network().state_dict(), source / "weights.pt")
    package = work / "model.zip"
    with zipfile.ZipFile(package, "w") as zf:
        for f in source.iterdir():
            zf.write(f, f.name)
    unpacked = work / "package"
    with zipfile.ZipFile(package) as zf:
        zf.extractall(unpacked)  # our own zip; uploads go through modelhub_contracts.package
    return unpacked


def write_images(folder: Path, count: int, size: int) -> list[str]:
    import numpy as np

    folder.mkdir()
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = folder / f"{i:05d}.npy"
        np.save(path, rng.integers(0, 256, (3, size, size), dtype=np.uint8), allow_pickle=False)
        paths.append(str(path))
    return paths


class GpuSampler:
    """nvidia-smi every 100 ms in the background; utilisation and memory per phase."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, int, int]] = []
        self.proc = subprocess.Popen(
            ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits", "-lms", "100"],
            stdout=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None  # stdout=PIPE
        for line in self.proc.stdout:
            try:
                util, mem = (int(v) for v in line.split(",")[:2])
            except ValueError:
                continue
            self.samples.append((time.monotonic(), util, mem))

    def between(self, start: float, end: float) -> dict:
        window = [(u, m) for t, u, m in self.samples if start <= t <= end]
        if not window:
            return {"gpu_util_mean": None, "gpu_util_max": None, "gpu_mem_mib_max": None}
        utils = [u for u, _ in window]
        return {
            "gpu_util_mean": round(sum(utils) / len(utils), 1),
            "gpu_util_max": max(utils),
            "gpu_mem_mib_max": max(m for _, m in window),
        }

    def stop(self) -> None:
        self.proc.terminate()


async def run_job(replica, paths: list[str], mini_batch: int, in_flight: int) -> float:
    """Like the worker: one predict_chunk per mini-batch, at most `in_flight` calls at once."""
    limit = asyncio.Semaphore(in_flight)
    chunks = [paths[i : i + mini_batch] for i in range(0, len(paths), mini_batch)]

    async def call(chunk):
        async with limit:
            rows = await replica.predict_chunk([{"image_paths": p} for p in chunk])
            assert len(rows) == len(chunk) and all("label" in r["predictions"] for r in rows)

    start = time.perf_counter()
    await asyncio.gather(*(call(c) for c in chunks))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--size", type=int, default=160, help="image side in pixels")
    parser.add_argument("--mini-batch", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--in-flight", type=int, default=4)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    import torch  # pyright: ignore[reportMissingImports] -- only where gpu-check.sh finds a Python with torch

    print(
        f"python {sys.version.split()[0]}, torch {torch.__version__}, "
        f"torch.cuda.is_available() in the check process: {torch.cuda.is_available()}"
    )
    ModelReplica = import_replica()
    results = {"date": time.strftime("%Y-%m-%d"), "torch": torch.__version__, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        package = build_package(work, args.size)
        paths = write_images(work / "images", args.samples, args.size)
        sampler = GpuSampler() if torch.cuda.is_available() else None
        cwd = os.getcwd()
        for mini_batch in args.mini_batch:
            os.chdir(package)  # where fetch_package (stood in above) finds the package
            try:
                replica = ModelReplica("gpu-check", "-", "model:Model", mini_batch, secret="gpu-check")
            finally:
                os.chdir(cwd)
            seen = asyncio.run(replica.predict_chunk([{"image_paths": paths[0]}]))[0]["device"]
            asyncio.run(run_job(replica, paths[: mini_batch * args.in_flight], mini_batch, args.in_flight))  # warm-up
            start = time.monotonic()
            elapsed = asyncio.run(run_job(replica, paths, mini_batch, args.in_flight))
            run = {
                "mini_batch": mini_batch,
                "samples": len(paths),
                "seconds": round(elapsed, 3),
                "samples_per_s": round(len(paths) / elapsed, 1),
                "model_saw": seen,
                **(sampler.between(start, time.monotonic()) if sampler else {}),
            }
            results["runs"].append(run)
            print(json.dumps(run))
            del replica
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        if sampler:
            sampler.stop()
    results["cuda_inside_replica"] = all(r["model_saw"].startswith("cuda") for r in results["runs"])
    print("\n| mini_batch | samples/s | GPU busy (mean / max %) | GPU memory (MiB) | model saw |")
    print("|---|---|---|---|---|")
    for r in results["runs"]:
        print(
            f"| {r['mini_batch']} | {r['samples_per_s']} | {r.get('gpu_util_mean')} / {r.get('gpu_util_max')} "
            f"| {r.get('gpu_mem_mib_max')} | {r['model_saw']} |"
        )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
