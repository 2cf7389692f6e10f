"""The worker's use cases without Ray: input resolution, type checks and poison isolation."""

import asyncio

from modelhub_contracts.events import TaskScheduled
from modelhub_worker.annotate import annotate, events_for, predict_online


def task(sample_ids, inputs=None) -> TaskScheduled:
    return TaskScheduled(task_id="j.1.0", job_id="j", attempt=1, dataset="ds", deployment="dep",
                         sample_ids=sample_ids, inputs=inputs or {"image": "filepath"},
                         outputs={"pred": "prediction"}, output_types={"pred": "classification"})


def docs(*ids):
    return {i: {"_id": i, "filepath": f"/img/{i}.png", "fields": {}} for i in ids}


class BatchingModel:
    """Fails every call while a poisoned sample is in the same batch, like @serve.batch does."""

    def __init__(self, poison: str) -> None:
        self.poison, self.calls = poison, 0

    async def __call__(self, deployment, inputs):
        self.calls += 1
        if self.poison in inputs["image"] or (self.calls <= 4 and deployment == "dep"):
            raise RuntimeError(f"Traceback...\nValueError: cannot read {inputs['image']}")
        return {"pred": {"label": "cat", "confidence": 0.9}}


async def test_a_poisoned_sample_fails_alone_with_its_message():
    model = BatchingModel(poison="s2")
    outcomes = await annotate(task(["s1", "s2", "s3", "s4"]), docs("s1", "s2", "s3", "s4"), model,
                              lambda e: str(e).splitlines()[-1])
    assert {k: o.error for k, o in outcomes.items()} == {
        "s1": None, "s2": "ValueError: cannot read /img/s2.png", "s3": None, "s4": None}
    assert outcomes["s1"].fields == {"prediction": {"label": "cat", "confidence": 0.9}}


async def test_wrongly_typed_output_and_missing_sample_fail_with_reasons():
    async def predict(deployment, inputs):
        return {"pred": {"label": "cat", "confidence": 3}}

    outcomes = await annotate(task(["s1", "gone"]), docs("s1"), predict, str)
    assert "not a valid classification" in outcomes["s1"].error
    assert outcomes["gone"].error == "sample no longer exists"
    events = events_for(task(["s1", "gone"]), outcomes)
    assert {(e.sample_id, e.ok, e.event_id) for e in events} == {("s1", False, "j.1.s1"), ("gone", False, "j.1.gone")}


async def test_inputs_come_from_named_fields():
    seen = []

    async def predict(deployment, inputs):
        seen.append(inputs)
        return {"pred": {"label": inputs["text"], "confidence": 1.0}}

    sample = {"_id": "s1", "filepath": "/x", "fields": {"caption": "hello"}}
    outcomes = await annotate(task(["s1", "s2"], inputs={"text": "caption"}),
                              {"s1": sample, "s2": {"_id": "s2", "filepath": "/y", "fields": {}}}, predict, str)
    assert seen == [{"text": "hello"}]
    assert outcomes["s1"].fields == {"prediction": {"label": "hello", "confidence": 1.0}}
    assert "no field 'caption'" in outcomes["s2"].error


async def test_online_predict_checks_lengths_and_types():
    async def predict(deployment, inputs):
        return {"y": inputs["x"] * 2}

    out = await predict_online(predict, "dep", {"x": [1, 2, 3]}, {"y": "number"}, str)
    assert out == {"y": [2, 4, 6]}
    try:
        await predict_online(predict, "dep", {"x": [1], "z": [1, 2]}, {"y": "number"}, str)
        raise AssertionError("uneven input lists were accepted")
    except ValueError as exc:
        assert "same length" in str(exc)



class MiniServeBatch:
    """A faithful miniature of @serve.batch: calls issued in the same event-loop turn form one batch,
    and a batch holding a poisoned input raises for every call in it."""

    def __init__(self, poison: str) -> None:
        self.poison, self.batches, self.pending = poison, [], []

    async def __call__(self, deployment, inputs):
        future = asyncio.get_running_loop().create_future()
        if not self.pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self.pending.append((inputs, future))
        return await future

    def _flush(self) -> None:
        batch, self.pending = self.pending, []
        texts = [inputs["text"] for inputs, _ in batch]
        self.batches.append(texts)
        for inputs, future in batch:
            if self.poison in texts:
                future.set_exception(ValueError(f"cannot parse {self.poison}"))
            else:
                future.set_result({"pred": {"label": inputs["text"], "confidence": 1.0}})


async def test_a_poisoned_sample_in_a_batch_of_64_fails_alone_and_the_rest_stay_batched():
    texts = [f"t{i:02d}" for i in range(64)]
    model = MiniServeBatch(poison="t10")
    docs = {t: {"_id": t, "filepath": "/x", "fields": {"text": t}} for t in texts}
    outcomes = await annotate(task(texts, inputs={"text": "text"}), docs, model, str)

    assert {t for t, o in outcomes.items() if o.error} == {"t10"}
    assert outcomes["t10"].error == "cannot parse t10"
    assert all(outcomes[t].fields == {"prediction": {"label": t, "confidence": 1.0}} for t in texts if t != "t10")
    assert len(model.batches[0]) == 64 and "t10" in model.batches[0]
    clean = [b for b in model.batches if "t10" not in b]
    assert max(map(len, clean)) == 32, model.batches  # the clean half ran as one batch of 32
    assert len(model.batches) <= 1 + 2 * 6  # halving: a few batches, not 64 single calls
