"""Clusters: MODELHUB_NATS_URL as a server pool, how many JetStream replicas, what happens to an
existing stream (brought to the number, or left with a clear message where JetStream refuses), and
the MongoDB options that keep the ledger exact on a replica set."""

import asyncio
import logging
from types import SimpleNamespace
from urllib.parse import urlparse

import pytest
from nats.js.api import StreamConfig
from nats.js.errors import APIError, NotFoundError
from prometheus_client import CollectorRegistry
from pymongo import ReadPreference

from modelhub_runtime import cluster, mongo, ops
from modelhub_runtime.settings import ServiceSettings, nats_pool


def test_a_comma_separated_url_is_a_server_pool_with_one_set_of_credentials():
    pool = nats_pool("nats://modelhub:pw@127.0.0.1:4222, nats://127.0.0.1:4223,127.0.0.1:4224")
    assert pool.servers == ["nats://127.0.0.1:4222", "nats://127.0.0.1:4223", "nats://127.0.0.1:4224"]
    assert (pool.user, pool.password, pool.token) == ("modelhub", "pw", None)


def test_one_url_stays_one_server_and_a_token_stays_a_token():
    assert nats_pool("nats://127.0.0.1:4222").servers == ["nats://127.0.0.1:4222"]
    pool = nats_pool("nats://s3cret@bus:4222")
    assert (pool.servers, pool.user, pool.token) == (["nats://bus:4222"], None, "s3cret")


@pytest.mark.parametrize("url", ["", " , ", "nats://:4222"])
def test_a_url_naming_no_server_is_refused(url):
    with pytest.raises(ValueError, match="MODELHUB_NATS_URL"):
        nats_pool(url)


def test_the_broker_gets_the_pool_and_credentials_as_options(monkeypatch):
    """nats-py authenticates to servers learned from the cluster only with client options, so no
    credential may stay inside the URLs (where the old single URL kept it)."""
    monkeypatch.setenv("MODELHUB_NATS_URL", "nats://modelhub:pw@127.0.0.1:1,nats://127.0.0.1:2")
    tel = SimpleNamespace(tracer_provider=None, registry=CollectorRegistry(), service="test")
    broker = ops.make_broker(ServiceSettings(), tel)  # type: ignore[arg-type]
    kwargs = broker._connection_kwargs  # what FastStream hands nats.connect()
    assert kwargs["servers"] == ["nats://127.0.0.1:1", "nats://127.0.0.1:2"]
    assert (kwargs["user"], kwargs["password"]) == ("modelhub", "pw")


def test_replicas_are_the_setting_else_three_at_most_and_one_on_one_server():
    servers = [urlparse(u) for u in ("nats://a:1", "nats://a:2", "nats://modelhub:pw@a:2", "nats://a:3", "nats://b")]
    assert cluster.cluster_size(servers) == 4  # credentials aside, a:2 is one server
    assert cluster.wanted_replicas(None, 1) == 1
    assert cluster.wanted_replicas(None, 2) == 2
    assert cluster.wanted_replicas(None, 5) == 3
    assert cluster.wanted_replicas(5, 5) == 5
    assert cluster.wanted_replicas(1, 3) == 1


class FakeJetStream:
    """stream_info / update_stream over one stream; `refuse` makes updates fail as JetStream does."""

    def __init__(self, replicas: int | None, refuse: bool = False) -> None:
        self.config = None if replicas is None else StreamConfig(name="S", subjects=["s.>"], num_replicas=replicas)
        self.refuse, self.updates = refuse, []

    async def stream_info(self, name):
        if self.config is None:
            raise NotFoundError()
        return SimpleNamespace(config=self.config)

    async def update_stream(self, config):
        if self.refuse:
            raise APIError(code=500, err_code=10074, description="insufficient resources")
        self.updates.append(config)
        self.config = config


def test_an_existing_stream_is_brought_to_the_replicas_keeping_its_config():
    js = FakeJetStream(1)
    assert asyncio.run(cluster.settle_replicas(js, "S", 3)) == 3  # type: ignore[arg-type]
    assert [c.num_replicas for c in js.updates] == [3] and js.updates[0].subjects == ["s.>"]


def test_a_missing_stream_is_left_to_its_declaration_and_a_settled_one_untouched():
    assert asyncio.run(cluster.settle_replicas(FakeJetStream(None), "S", 3)) == 3  # type: ignore[arg-type]
    js = FakeJetStream(3)
    assert asyncio.run(cluster.settle_replicas(js, "S", 3)) == 3 and not js.updates  # type: ignore[arg-type]


def test_a_refused_change_keeps_the_stream_and_says_how_to_fix_it(caplog):
    js = FakeJetStream(1, refuse=True)
    with caplog.at_level(logging.WARNING):
        assert asyncio.run(cluster.settle_replicas(js, "S", 3)) == 1  # type: ignore[arg-type]
    assert "S keeps 1 replica(s), not 3" in caplog.text and "nats stream edit S --replicas 3" in caplog.text
    assert "MODELHUB_NATS_REPLICAS" in caplog.text


def test_mongo_on_one_server_waits_for_the_journal_only():
    options = mongo.client_options("mongodb://127.0.0.1:27017", None)
    assert options["journal"] is True and "w" not in options
    assert options["retryWrites"] and options["retryReads"] and options["read_preference"] == ReadPreference.PRIMARY


@pytest.mark.parametrize(
    "url", ["mongodb://a:1,b:2,c:3/?authSource=admin", "mongodb://u:p@a:1/?replicaSet=rs0&authSource=admin"]
)
def test_mongo_on_a_replica_set_waits_for_a_majority(url):
    options = mongo.client_options(url, None)
    assert options["w"] == "majority" and options["journal"] is True


def test_mongo_majority_can_be_forced_and_a_urls_own_write_concern_wins():
    assert mongo.client_options("mongodb://a:1", True)["w"] == "majority"
    assert "w" not in mongo.client_options("mongodb://a:1,b:2", False)
    assert "w" not in mongo.client_options("mongodb://a:1,b:2/?w=2", None)
