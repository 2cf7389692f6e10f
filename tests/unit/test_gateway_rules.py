"""Request rules the gateway enforces before anything is sent on: names and online predict inputs."""

from types import SimpleNamespace

import pytest
from faststream.nats import NatsBroker
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from pydantic import ValidationError

from modelhub_contracts import subjects
from modelhub_contracts.errors import Busy, Conflict, DomainError, Invalid
from modelhub_contracts.events import PredictRequest, RpcReply
from modelhub_gateway.api.errors import as_http
from modelhub_gateway.bus.rpc import call
from modelhub_gateway.online import InFlight, check_predict_inputs
from modelhub_gateway.schemas import DatasetCreate, DeploymentCreate, ModelCreate, PredictIn, UserCreate
from modelhub_runtime import bus


@pytest.mark.parametrize("name", [".", "..", "...", "", "a/b", "x" * 65, "a b", "$x"])
def test_names_that_would_be_paths_or_junk_are_refused(name):
    for model in (ModelCreate, DatasetCreate, DeploymentCreate):
        with pytest.raises(ValidationError):
            model(name=name)
    with pytest.raises(ValidationError):
        UserCreate(username=name)


@pytest.mark.parametrize("name", ["a", "a.b", ".hidden", "digits-v2_final", "x" * 64])
def test_ordinary_names_pass(name):
    assert ModelCreate(name=name).name == name


@pytest.mark.parametrize(
    "inputs, message",
    [
        ({}, "exactly the model's"),
        ({"text": ["a"], "extra": ["b"]}, "exactly the model's"),
        ({"text": ["a"], "n": [1, 2]}, "same length"),
        ({"text": [], "n": []}, "1 to 10000"),
    ],
)
def test_predict_inputs_must_match_the_schema(inputs, message):
    with pytest.raises(Invalid) as refused:
        check_predict_inputs(PredictIn(inputs=inputs), {"text": "text", "n": "number"})
    answer = as_http(refused.value)
    assert answer.status_code == 422 and message in answer.detail


def test_predict_inputs_that_match_pass():
    check_predict_inputs(PredictIn(inputs={"text": ["a", "b"], "n": [1, 2]}), {"text": "text", "n": "number"})


def test_a_deployment_over_its_in_flight_limit_answers_429_at_once_and_frees_what_it_held():
    in_flight = InFlight()
    with in_flight.hold("d", 3, limit=4):
        with pytest.raises(Busy) as refused, in_flight.hold("d", 2, limit=4):
            pass
        answer = as_http(refused.value)
        assert answer.status_code == 429 and answer.headers == {"Retry-After": "1"}
        assert "3 samples in flight (its max_in_flight is 4)" in answer.detail
        with in_flight.hold("other", 2, limit=4):  # the limit is per deployment
            pass
    with pytest.raises(RuntimeError), in_flight.hold("d", 4, limit=4):
        raise RuntimeError("the worker failed")
    assert in_flight.counts == {}  # released on success and on error alike
    with in_flight.hold("d", 10, limit=4):  # larger than the limit: runs when the deployment is idle
        assert in_flight.counts == {"d": 10}


def Broker(reply: RpcReply | None = None, error: Exception | None = None) -> NatsBroker:
    """A broker whose declared predict publisher answers every request with one reply, or raises
    one error (FastStream's publisher.request)."""
    broker = NatsBroker()
    publisher = bus.declare(broker, "gateway", subjects.RPC_PREDICT, PredictRequest, "online predict")

    async def request(body, timeout):
        if error:
            raise error
        return SimpleNamespace(body=reply.model_dump_json())

    publisher.request = request  # pyright: ignore[reportAttributeAccessIssue]  (the test double answers instead of NATS)
    return broker


async def test_a_worker_that_is_full_makes_a_429_with_retry_after():
    with pytest.raises(DomainError) as refused:
        await call(
            Broker(RpcReply(status=429, detail="worker full", retry_after=0.5)),
            subjects.RPC_PREDICT,
            PredictIn(inputs={}),
        )
    assert (refused.value.status, refused.value.message, refused.value.retry_after) == (429, "worker full", 0.5)


async def test_a_refusal_of_a_named_kind_comes_back_as_that_kind():
    with pytest.raises(Conflict) as refused:
        await call(
            Broker(RpcReply(status=409, detail="a model named 'm' already exists")),
            subjects.RPC_PREDICT,
            PredictIn(inputs={}),
        )
    assert refused.value.message == "a model named 'm' already exists"


async def test_no_answer_in_time_is_504_for_predict_and_503_when_no_worker_listens():
    with pytest.raises(DomainError) as late:
        await call(
            Broker(error=NatsTimeout()), subjects.RPC_PREDICT, PredictIn(inputs={}), timeout=65, timeout_status=504
        )
    assert (late.value.status, late.value.message) == (504, "no answer from worker within 65 s")
    with pytest.raises(DomainError) as nobody:
        await call(Broker(error=NoRespondersError()), subjects.RPC_PREDICT, PredictIn(inputs={}), timeout_status=504)
    assert nobody.value.status == 503


def test_half_surrogates_in_a_body_become_replacement_characters_not_a_server_error():
    import json as _json

    from modelhub_gateway.schemas import SamplesIn

    body = _json.loads(
        '{"samples": [{"filepath": "/a\\udc00", "fields": {"k\\ud800": ["v\\udfff", {"\\ud83d\\ude0d": 1}]}}]}'
    )
    sample = SamplesIn.model_validate(body).samples[0]
    assert sample.filepath == "/a\ufffd"
    assert sample.fields == {"k\ufffd": ["v\ufffd", {"\U0001f60d": 1}]}  # a whole pair stays what it was
    sample.model_dump_json().encode("utf-8")  # storable: valid UTF-8 throughout


def test_integers_beyond_64_bits_are_stored_as_doubles():
    from modelhub_gateway.schemas import SamplesIn

    sample = SamplesIn.model_validate({"samples": [{"filepath": "/a", "fields": {"n": [2**70, -(2**63), 7, True]}}]})
    assert sample.samples[0].fields["n"] == [float(2**70), -(2**63), 7, True]
