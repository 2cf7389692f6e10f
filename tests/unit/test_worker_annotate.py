"""The worker's use cases without Ray: input resolution, type checks and poison isolation."""

from test_worker_tasks import chunked

from modelhub_contracts.events import TaskScheduled
from modelhub_worker.annotate import annotate, events_for


def task(sample_ids, inputs=None) -> TaskScheduled:
    return TaskScheduled(
        task_id="j.1.0",
        job_id="j",
        attempt=1,
        dataset="ds",
        deployment="dep",
        sample_ids=sample_ids,
        inputs=inputs or {"image": "filepath"},
        outputs={"pred": "prediction"},
        output_types={"pred": "classification"},
    )


def docs(*ids):
    return {i: {"_id": i, "filepath": f"/img/{i}.png", "fields": {}} for i in ids}


class PoisonModel:
    """Per sample: raises for the poisoned sample (wrapped by chunked(), the whole batch raises)."""

    def __init__(self, poison: str) -> None:
        self.poison = poison

    async def __call__(self, deployment, inputs):
        if self.poison in inputs["image"]:
            raise RuntimeError(f"Traceback...\nValueError: cannot read {inputs['image']}")
        return {"pred": {"label": "cat", "confidence": 0.9}}


async def test_a_poisoned_sample_fails_alone_with_its_message():
    model = chunked(PoisonModel(poison="s2"))
    outcomes = await annotate(
        task(["s1", "s2", "s3", "s4"]), docs("s1", "s2", "s3", "s4"), model, lambda e: str(e).splitlines()[-1]
    )
    assert {k: o.error for k, o in outcomes.items()} == {
        "s1": None,
        "s2": "ValueError: cannot read /img/s2.png",
        "s3": None,
        "s4": None,
    }
    assert outcomes["s1"].fields == {"prediction": {"label": "cat", "confidence": 0.9}}


async def test_wrongly_typed_output_and_missing_sample_fail_with_reasons():
    @chunked
    async def predict(deployment, inputs):
        return {"pred": {"label": "cat", "confidence": 3}}

    outcomes = await annotate(task(["s1", "gone"]), docs("s1"), predict, str)
    assert "not a valid classification" in (outcomes["s1"].error or "")
    assert outcomes["gone"].error == "sample no longer exists"
    events = events_for(task(["s1", "gone"]), outcomes)
    assert [(o.sample_id, o.ok) for e in events for o in e.samples] == [("s1", False), ("gone", False)]
    assert [e.event_id for e in events] == [f"{events[0].task_id}.annotated.0"]


async def test_inputs_come_from_named_fields():
    seen = []

    @chunked
    async def predict(deployment, inputs):
        seen.append(inputs)
        return {"pred": {"label": inputs["text"], "confidence": 1.0}}

    sample = {"_id": "s1", "filepath": "/x", "fields": {"caption": "hello"}}
    outcomes = await annotate(
        task(["s1", "s2"], inputs={"text": "caption"}),
        {"s1": sample, "s2": {"_id": "s2", "filepath": "/y", "fields": {}}},
        predict,
        str,
    )
    assert seen == [{"text": "hello"}]
    assert outcomes["s1"].fields == {"prediction": {"label": "hello", "confidence": 1.0}}
    assert "no field 'caption'" in (outcomes["s2"].error or "")


class ChunkModel:
    """A replica's predict_chunk: each call is one Model.predict batch, and a batch holding the
    poisoned input raises for all of it."""

    def __init__(self, poison: str) -> None:
        self.poison, self.batches = poison, []

    async def __call__(self, deployment, samples):
        texts = [inputs["text"] for inputs in samples]
        self.batches.append(texts)
        if self.poison in texts:
            raise ValueError(f"cannot parse {self.poison}")
        return [{"pred": {"label": t, "confidence": 1.0}} for t in texts]


async def test_a_poisoned_sample_in_a_batch_of_64_fails_alone_and_the_rest_stay_batched():
    texts = [f"t{i:02d}" for i in range(64)]
    model = ChunkModel(poison="t10")
    docs = {t: {"_id": t, "filepath": "/x", "fields": {"text": t}} for t in texts}
    outcomes = await annotate(task(texts, inputs={"text": "text"}), docs, model, str)

    assert {t for t, o in outcomes.items() if o.error} == {"t10"}
    assert outcomes["t10"].error == "cannot parse t10"
    assert all(outcomes[t].fields == {"prediction": {"label": t, "confidence": 1.0}} for t in texts if t != "t10")
    assert model.batches[0] == texts  # the whole task was one batch of 64
    # halving towards t10: every clean half runs as one batch, 13 calls in all instead of 64
    assert [len(b) for b in model.batches] == [64, 32, 16, 8, 8, 4, 2, 2, 1, 1, 4, 16, 32]
