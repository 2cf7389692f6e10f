"""The Ray Serve deployment that runs a model package. Imported by the deployer only to *bind* it.

Everything that touches the package (importing its module, building `Model`) happens in
`ModelReplica.__init__`, i.e. inside the replica actor, never in the deployer process.
This module deliberately imports nothing from modelhub: a replica built from a custom
(conda) environment may not have modelhub installed, so the class must pickle by value.
"""

import asyncio
import importlib
import inspect
import os
import sys
from typing import Any

from ray import serve

# The method names are the contract with the worker (subjects.REPLICA_METHOD == "predict_one",
# subjects.REPLICA_CHUNK_METHOD == "predict_chunk").


@serve.deployment
class ModelReplica:
    """One replica of a deployed model: `predict_chunk` runs a batch as it comes (a job's task,
    or online samples the worker batched); `predict_one` gathers concurrent single-sample calls
    from direct Serve callers into batches (@serve.batch)."""

    def __init__(self, entrypoint: str, mini_batch: int, batch_wait_s: float = 0.002) -> None:
        # With runtime_env.working_dir, Ray starts the replica in the unpacked package root.
        model_dir = os.getcwd()
        if model_dir not in sys.path:
            sys.path.insert(0, model_dir)
        module_name, _, class_name = entrypoint.partition(":")
        module = importlib.import_module(module_name)
        self._model = getattr(module, class_name or "Model")(model_dir)
        self._mini_batch = mini_batch
        self.predict_one.set_max_batch_size(mini_batch)
        # The deployment's batch_wait_ms: a lone predict_one call waits this long for company.
        self.predict_one.set_batch_wait_timeout_s(batch_wait_s)

    async def predict_chunk(self, samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A whole mini-batch in one call (jobs): one `Model.predict` call on these samples."""
        if not 1 <= len(samples) <= self._mini_batch:
            raise ValueError(f"a call carries 1 to {self._mini_batch} samples (mini_batch), got {len(samples)}")
        return _rows(await self._predict(_columns(samples)), len(samples))

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
