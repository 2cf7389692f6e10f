"""The worker's use cases without Ray: input resolution, type checks and poison isolation."""

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

