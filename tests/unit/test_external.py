"""Commands from other systems: answered as the token's user, every refusal a reply with a reason."""

from typing import Annotated, cast

from pydantic import TypeAdapter, WrapValidator

from modelhub_contracts.errors import NotFound
from modelhub_contracts.external import AddSamples, Malformed, lenient
from modelhub_gateway import auth
from modelhub_gateway.bus.external import answer
from modelhub_gateway.store import GatewayStore


class Store:
    """The users part of GatewayStore, in memory."""

    def __init__(self, **tokens: str) -> None:
        self.by_hash = {
            auth.hash_token(t): {"username": u, "token_hash": auth.hash_token(t)} for u, t in tokens.items()
        }

    async def user_by_token_hash(self, digest: str):
        return self.by_hash.get(digest)


def store_of(**tokens: str) -> GatewayStore:
    return cast(GatewayStore, Store(**tokens))  # the fake stands in for the users part


async def whoami(user):
    return {"username": user["username"]}


async def test_the_command_runs_as_the_user_whose_token_it_carries():
    reply = await answer(store_of(bob="tb", carol="tc"), "Bearer tc", object(), whoami)
    assert (reply.status, reply.data) == (200, {"username": "carol"})


async def test_no_token_or_a_wrong_one_is_401_and_nothing_runs():
    ran = []

    async def work(user):
        ran.append(user)

    for header in (None, "", "Bearer", "Bearer nope", "Basic tb", "tb"):
        reply = await answer(store_of(bob="tb"), header, object(), work)
        assert reply.status == 401 and "Authorization: Bearer" in (reply.detail or ""), header
    assert ran == []


async def test_a_refusal_of_the_use_case_is_the_reply():
    async def refuse(user):
        raise NotFound("dataset 'x' not found")

    reply = await answer(store_of(bob="tb"), "Bearer tb", object(), refuse)
    assert (reply.status, reply.detail) == (404, "dataset 'x' not found")


async def test_a_malformed_command_is_a_422_naming_the_field():
    parse = TypeAdapter(Annotated[AddSamples, WrapValidator(lenient)]).validate_python
    assert isinstance(parse({"dataset": "d", "samples": [{"filepath": "/a"}]}), AddSamples)
    bad = parse({"dataset": "d", "samples": [{"path": "/a"}]})
    assert isinstance(bad, Malformed)
    reply = await answer(store_of(bob="tb"), "Bearer tb", bad, whoami)
    assert reply.status == 422 and "samples.0.filepath" in (reply.detail or "")
