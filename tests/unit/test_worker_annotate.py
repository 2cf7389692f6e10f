"""The worker's use cases without Ray: input resolution, type checks and poison isolation."""

import pytest
from test_worker_tasks import chunked

from modelhub_contracts.events import TaskScheduled
from modelhub_worker.annotate import annotate, events_for
from modelhub_worker.errors import ServingLost
from modelhub_worker.serving import ModelFailed


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


class Calls:
    """Several mini-batches per call (ServeClient.predict_chunks) over a ChunkModel: records each
    call's batches; `whole_call_fails` plays a replica of an older hub (no such calls)."""

    def __init__(self, model: ChunkModel, spread: int, whole_call_fails: bool = False) -> None:
        self.model, self.replicas, self.whole_call_fails, self.calls = model, spread, whole_call_fails, []

    def spread(self, deployment):
        return self.replicas

    async def predict_chunks(self, deployment, batches):
        self.calls.append([len(b) for b in batches])
        if self.whole_call_fails:
            raise ModelFailed("the replica takes one mini-batch per call")
        results = []
        for batch in batches:
            try:
                results.append(await self.model(deployment, batch))
            except Exception as exc:
                results.append(exc)
        return results


def mini_batched(texts: list[str]) -> TaskScheduled:
    return task(texts, inputs={"text": "text"}).model_copy(update={"mini_batch": 4})


async def test_a_tasks_mini_batches_are_spread_over_one_call_per_replica():
    texts = [f"t{i:02d}" for i in range(30)]  # 8 mini-batches of 4 (the last of 2)
    model = ChunkModel(poison="t09")
    calls = Calls(model, spread=2)
    docs = {t: {"_id": t, "filepath": "/x", "fields": {"text": t}} for t in texts}
    outcomes = await annotate(mini_batched(texts), docs, model, str, calls)

    assert calls.calls == [[4, 4, 4, 4], [4, 4, 4, 2]]  # two calls, each mini-batch one predict
    assert {t for t, o in outcomes.items() if o.error} == {"t09"}
    assert all(outcomes[t].fields == {"prediction": {"label": t, "confidence": 1.0}} for t in texts if t != "t09")
    # the failed mini-batch (t08-t11) is halved, not called whole again: [t08 t09] [t08] [t09] [t10 t11]
    assert model.batches[8:] == [["t08", "t09"], ["t08"], ["t09"], ["t10", "t11"]]


async def test_a_big_tasks_calls_carry_at_most_call_samples_each():
    texts = [f"t{i:04d}" for i in range(2_000)]  # a task sized by its deployment's pace: 500 mini-batches of 4
    model = ChunkModel(poison="-")
    calls = Calls(model, spread=2)
    docs = {t: {"_id": t, "filepath": "/x", "fields": {"text": t}} for t in texts}
    outcomes = await annotate(mini_batched(texts), docs, model, str, calls)

    assert not any(o.error for o in outcomes.values()) and len(outcomes) == 2_000
    # not two calls of 1,000 samples: calls of up to CALL_SAMPLES (512), all at once
    assert sorted(sum(c) for c in calls.calls) == [464, 512, 512, 512]
    assert all(size == 4 for c in calls.calls for size in c)


async def test_without_replicas_known_or_when_the_call_fails_each_mini_batch_is_a_call():
    texts = [f"t{i:02d}" for i in range(12)]
    docs = {t: {"_id": t, "filepath": "/x", "fields": {"text": t}} for t in texts}
    for calls in (
        Calls(ChunkModel(poison="-"), spread=0),
        Calls(ChunkModel(poison="-"), spread=1, whole_call_fails=True),
    ):
        model = ChunkModel(poison="-")
        outcomes = await annotate(mini_batched(texts), docs, model, str, calls)
        assert not any(o.error for o in outcomes.values())
        assert sorted(map(tuple, model.batches)) == [tuple(texts[i : i + 4]) for i in (0, 4, 8)]
        assert calls.calls == ([] if calls.replicas == 0 else [[4, 4, 4]])  # the failed call, then one each


async def test_no_answer_from_a_several_batch_call_gives_the_task_back():
    class Lost(Calls):
        async def predict_chunks(self, deployment, batches):
            raise ServingLost("deployment 'dep' gave no answer")

    texts = [f"t{i:02d}" for i in range(8)]
    docs = {t: {"_id": t, "filepath": "/x", "fields": {"text": t}} for t in texts}
    with pytest.raises(ServingLost):
        await annotate(mini_batched(texts), docs, ChunkModel(poison="-"), str, Lost(ChunkModel(poison="-"), spread=1))
