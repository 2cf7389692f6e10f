"""The Ray Serve deployment that runs a model package. Imported by the deployer only to *bind* it.

Everything that touches the package (fetching it, importing its module, building `Model`) happens
in `ModelReplica.__init__`, i.e. inside the replica actor on a replica node, never in the deployer
process. The package comes by version id and sha-256 from the cluster's own store (the GCS
key-value store, where the deployer put the zip): no path on the deployer's machine, no NATS or
MongoDB credentials. The replica checks the sha-256 (any Ray member can write that store) and
unpacks into a cache per node, shared by the replicas on that node.
This module deliberately imports nothing from modelhub: a replica built from a custom
(conda) environment may not have modelhub installed, so the class must pickle by value.
"""

import asyncio
import hashlib
import importlib
import inspect
import io
import os
import stat
import sys
import tempfile
import time
import zipfile
from typing import Any

from ray import serve

# Where the deployer puts package zips (key: the sha-256) in the GCS key-value store.
PACKAGE_KV_NAMESPACE = "modelhub_packages"
# The Ray resource that only replica nodes advertise; each replica takes a small share of it.
REPLICA_RESOURCE = "modelhub_replica"
REPLICA_RESOURCE_SHARE = 0.001

# The method names are the contract with the worker (subjects.REPLICA_METHOD == "predict_one",
# subjects.REPLICA_CHUNK_METHOD == "predict_chunk").


@serve.deployment
class ModelReplica:
    """One replica of a deployed model: `predict_chunk` runs a batch as it comes (a job's task,
    or online samples the worker batched); `predict_one` gathers concurrent single-sample calls
    from direct Serve callers into batches (@serve.batch)."""

    def __init__(self, package_id: str, sha256: str, entrypoint: str, mini_batch: int,
                 batch_wait_s: float = 0.002) -> None:
        model_dir = fetch_package(package_id, sha256)
        os.chdir(model_dir)  # models open their files relative to the package root
        if model_dir not in sys.path:
            sys.path.insert(0, model_dir)
        module_name, _, class_name = entrypoint.partition(":")
        module = importlib.import_module(module_name)
        self._model = getattr(module, class_name or "Model")(model_dir)
        self._mini_batch = mini_batch
        self.predict_one.set_max_batch_size(mini_batch)
        # The deployment's batch_wait_ms: a lone predict_one call waits this long for company.
        self.predict_one.set_batch_wait_timeout_s(batch_wait_s)

    async def predict_chunk(self, samples: list[dict[str, Any]],
                            traceparent: str | None = None) -> list[dict[str, Any]] | dict[str, Any]:
        """A whole mini-batch in one call (jobs): one `Model.predict` call on these samples.

        With a `traceparent` (the caller's span, W3C format) the reply is
        {"outputs": rows, "span": timing}: the replica has no exporter and no credentials, so it
        reports its span's timing and the caller records it in the trace."""
        started = time.time_ns()
        if not 1 <= len(samples) <= self._mini_batch:
            raise ValueError(f"a call carries 1 to {self._mini_batch} samples (mini_batch), got {len(samples)}")
        predict_started = time.time_ns()
        rows = _rows(await self._predict(_columns(samples)), len(samples))
        if traceparent is None:
            return rows
        return {"outputs": rows, "span": {"traceparent": traceparent, "start_ns": started,
                                          "predict_start_ns": predict_started, "end_ns": time.time_ns(),
                                          "batch_size": len(samples), "pid": os.getpid()}}

    @serve.batch(max_batch_size=1, batch_wait_timeout_s=0.002)
    async def predict_one(self, samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One sample's {input: value} per call; Serve hands us up to mini_batch of them."""
        outputs = await self._predict(_columns(samples))
        return _rows(outputs, len(samples))

    async def _predict(self, batch: dict[str, list]) -> Any:
        predict = self._model.predict
        if inspect.iscoroutinefunction(predict):
            result = await predict(batch)
        else:
            # A sync model may take seconds; keep the replica's loop free to gather the next batch.
            result = await asyncio.to_thread(predict, batch)
        if inspect.isawaitable(result):
            result = await result
        return result


def _columns(samples: list[dict[str, Any]]) -> dict[str, list]:
    names = list(samples[0]) if samples else []
    for i, sample in enumerate(samples):
        if set(sample) != set(names):
            raise ValueError(f"sample {i} has inputs {sorted(sample)} but the batch has {sorted(names)}")
    return {name: [sample[name] for sample in samples] for name in names}


def _rows(outputs: Any, size: int) -> list[dict[str, Any]]:
    if not isinstance(outputs, dict):
        raise ValueError(f"Model.predict must return a dict of output lists, got {type(outputs).__name__}")
    columns = {name: _as_list(name, values) for name, values in outputs.items()}
    for name, values in columns.items():
        if len(values) != size:
            raise ValueError(f"Model.predict returned {len(values)} values for output '{name}' "
                             f"but the batch has {size} samples")
    return [{name: values[i] for name, values in columns.items()} for i in range(size)]


def _as_list(name: str, values: Any) -> list:
    if hasattr(values, "tolist"):  # numpy arrays and tensors: plain Python values per sample
        values = values.tolist()
    if not isinstance(values, (list, tuple)):
        raise ValueError(f"Model.predict output '{name}' must be a list, got {type(values).__name__}")
    return list(values)


# ---------------------------------------------------------------- the package, on this node

def _cache_root() -> str:
    """This node's package cache: in the node's Ray session dir (gone with the node)."""
    try:
        from ray._private.worker import global_worker
        root = os.path.join(global_worker.node.get_session_dir_path(), "modelhub-packages")
    except Exception:  # an internal Ray API: fall back to a temp dir of this node
        root = os.path.join(tempfile.gettempdir(), "modelhub-packages")
    os.makedirs(root, exist_ok=True)
    return root


def fetch_package(package_id: str, sha256: str) -> str:
    """The unpacked package (cached per node): downloaded from the cluster store, verified."""
    target = os.path.join(_cache_root(), sha256)
    if os.path.isdir(target):
        return target
    from ray.experimental.internal_kv import _internal_kv_get
    data = _internal_kv_get(sha256, namespace=PACKAGE_KV_NAMESPACE)
    if data is None:
        raise RuntimeError(f"package {package_id} (sha256 {sha256}) is not in the cluster's package "
                           "store; deploy it again")
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise RuntimeError(f"package {package_id} from the cluster's package store has sha256 "
                           f"{digest}, expected {sha256}: refusing to run it")
    staging = tempfile.mkdtemp(prefix=f".{sha256[:12]}-", dir=os.path.dirname(target))
    _extract(data, staging)
    try:
        os.rename(staging, target)
    except OSError:  # another replica on this node got there first: same bytes, same content
        import shutil
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _extract(data: bytes, dest: str) -> None:
    """Unpack the verified zip's root into `dest`, as the registry's safe_extract does (a zipped
    folder's single top folder is the root; __MACOSX/ is skipped). The registry checked these very
    bytes at upload (paths, symlinks, sizes, bombs); this only refuses what would escape `dest`."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = [i for i in zf.infolist() if not i.filename.startswith("__MACOSX/")]
        for info in infos:
            parts = info.filename.replace("\\", "/").split("/")
            if info.filename.startswith("/") or ".." in parts or stat.S_ISLNK(info.external_attr >> 16):
                raise RuntimeError(f"package entry {info.filename!r} is not a plain relative path")
        names = [i.filename for i in infos]
        tops = {name.split("/", 1)[0] for name in names}
        root = f"{tops.pop()}/" if len(tops) == 1 and all("/" in n for n in names) else ""
        for info in infos:
            rel = info.filename[len(root):]
            if not rel or info.is_dir():
                continue
            path = os.path.join(dest, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with zf.open(info) as src, open(path, "xb") as out:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
