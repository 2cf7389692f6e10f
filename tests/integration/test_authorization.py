"""Authorization matrix: every route × {anonymous, admin, owner, run-share, edit-share, stranger}.

A route added without a row here fails `test_matrix_covers_every_route`.
"""

import json

import httpx
import pytest
from conftest import SCHEMA_TEXT_TO_CLASS, create_model, deploy, make_zip, run_job, unique, wait_for
from PIL import Image

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ROLES = ("anonymous", "admin", "owner", "runner", "editor", "stranger")
MODEL = """
class Model:
    def __init__(self, model_dir):
        pass

    def predict(self, batch):
        return {"label": [{"label": t, "confidence": 1.0} for t in batch["text"]]}
"""
SCHEMA = SCHEMA_TEXT_TO_CLASS


class World:
    """Users, a model shared with a runner and an editor, a running deployment, a dataset, a job."""

    def __init__(self, stack, tmp_path) -> None:
        self.stack, self.tmp_path = stack, tmp_path
        admin = stack.client
        self.names = {role: unique(role) for role in ROLES if role not in ("anonymous", "admin")}
        self.clients = {"anonymous": httpx.Client(base_url=stack.url, timeout=60), "admin": admin}
        for role, username in self.names.items():
            created = admin.post("/users", json={"username": username})
            assert created.status_code == 201, created.text
            self.clients[role] = stack.user_client(created.json()["token"])
        self.names["admin"] = "admin"
        owner = self.clients["owner"]
        self.package = make_zip(tmp_path / "m.zip", {"model.py": MODEL})
        self.model, self.deployment, self.dataset = unique("model"), unique("dep"), unique("ds")
        create_model(owner, self.model, self.package, SCHEMA)
        shared = owner.put(
            f"/models/{self.model}/sharing",
            json={"everyone": "none", "users": {self.names["runner"]: "run", self.names["editor"]: "edit"}},
        )
        assert shared.status_code == 200, shared.text
        assert deploy(owner, self.model, self.deployment)["status"] == "running"
        assert owner.post("/datasets", json={"name": self.dataset}).status_code == 201
        assert (
            owner.post(
                f"/datasets/{self.dataset}/samples", json={"samples": [{"filepath": "/x/a", "fields": {"text": "a"}}]}
            ).status_code
            == 201
        )
        self.job = run_job(owner, self.dataset, self.deployment, {"label": "label"})["id"]
        # an image sample for the thumbnail route, added after the job so the job's counts stay as they are
        image = tmp_path / "pixel.png"
        Image.new("RGB", (4, 4)).save(image)
        assert (
            owner.post(f"/datasets/{self.dataset}/samples", json={"samples": [{"filepath": str(image)}]}).status_code
            == 201
        )
        samples = owner.get(f"/datasets/{self.dataset}/samples").json()["items"]
        self.image_sample = next(s["id"] for s in samples if s["filepath"] == str(image))

    def fresh_dataset(self) -> str:
        name = unique("gone")
        assert self.clients["owner"].post("/datasets", json={"name": name}).status_code == 201
        return name

    def fresh_user(self) -> str:
        name = unique("leaver")
        assert self.stack.client.post("/users", json={"username": name}).status_code == 201
        return name

    def root(self, path: str) -> str:
        """A URL at the gateway's root (OIP's /v2 is not under /api/v1)."""
        return f"http://127.0.0.1:{self.stack.port}{path}"

    def alias(self, prefix: str) -> str:
        """An alias of the world's model, set by its owner for the call."""
        name = unique(prefix)
        set_ = self.clients["owner"].put(f"/models/{self.model}/aliases/{name}", json={"version": 1})
        assert set_.status_code == 200, set_.text
        return name

    def evaluation(self) -> str:
        """An evaluation of the world's dataset, made by its owner for the call."""
        name = unique("ev")
        body = {"name": name, "prediction": "label", "ground_truth": "text"}
        made = self.clients["owner"].post(f"/datasets/{self.dataset}/evaluations", json=body)
        assert made.status_code == 201, made.text
        return name

    def upload(self, client: httpx.Client) -> httpx.Response:
        with self.package.open("rb") as fh:
            return client.post(
                f"/models/{self.model}/versions", files={"file": ("m.zip", fh)}, data={"schema": json.dumps(SCHEMA)}
            )


@pytest.fixture(scope="module")
def world(stack, tmp_path_factory) -> World:
    return World(stack, tmp_path_factory.mktemp("authz"))


#  (method, path template, request builder, expected status per role in ROLES order)
#  Paths use {model}, {deployment}, {dataset}, {job}; builders get (world, client, role).
def _get(path):
    return lambda w, c, role: c.get(path.format(**vars(w)))


def _json(method, path, body):
    return lambda w, c, role: c.request(method, path.format(**vars(w)), json=body(w, role) if callable(body) else body)


OIP_INFER = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["hi"]}]}

MATRIX = [
    ("GET", "/health", _get("/health"), (200, 200, 200, 200, 200, 200)),
    # the published event contract (AsyncAPI), public like the OpenAPI document
    ("GET", "/asyncapi.json", _get("/asyncapi.json"), (200, 200, 200, 200, 200, 200)),
    ("GET", "/asyncapi", _get("/asyncapi"), (200, 200, 200, 200, 200, 200)),
    ("GET", "/users/me", _get("/users/me"), (401, 200, 200, 200, 200, 200)),
    ("POST", "/users", _json("POST", "/users", lambda w, r: {"username": unique("u")}), (401, 201, 403, 403, 403, 403)),
    ("POST", "/models", _json("POST", "/models", lambda w, r: {"name": unique("m")}), (401, 201, 201, 201, 201, 201)),
    ("GET", "/models", _get("/models"), (401, 200, 200, 200, 200, 200)),
    ("GET", "/models/{name}", _get("/models/{model}"), (401, 200, 200, 200, 200, 404)),
    (
        "PATCH",
        "/models/{name}",
        _json("PATCH", "/models/{model}", {"description": "changed"}),
        (401, 200, 200, 403, 200, 404),
    ),
    (
        "PUT",
        "/models/{name}/sharing",
        _json(
            "PUT",
            "/models/{model}/sharing",
            lambda w, r: {"everyone": "none", "users": {w.names["runner"]: "run", w.names["editor"]: "edit"}},
        ),
        (401, 200, 200, 403, 403, 404),
    ),
    ("POST", "/models/{name}/versions", lambda w, c, r: w.upload(c), (401, 201, 201, 403, 201, 404)),
    ("GET", "/models/{name}/versions/{version}", _get("/models/{model}/versions/1"), (401, 200, 200, 200, 200, 404)),
    (
        "GET",
        "/models/{name}/versions/{version}/archive",
        _get("/models/{model}/versions/1/archive"),
        (401, 200, 200, 200, 200, 404),
    ),
    # model_type 'training' is refused (422) only after the authorization decision: nothing deploys
    (
        "POST",
        "/models/{name}/deployments",
        _json("POST", "/models/{model}/deployments", lambda w, r: {"name": unique("d"), "model_type": "training"}),
        (401, 422, 422, 422, 422, 404),
    ),
    # owner and admin pass the authorization but the model has a running deployment: 409
    ("DELETE", "/models/{name}", lambda w, c, r: c.delete(f"/models/{w.model}"), (401, 409, 409, 403, 403, 404)),
    ("GET", "/deployments", _get("/deployments"), (401, 200, 200, 200, 200, 200)),
    ("GET", "/deployments/{name}", _get("/deployments/{deployment}"), (401, 200, 200, 200, 200, 404)),
    (
        "POST",
        "/deployments/{name}/predict",
        _json("POST", "/deployments/{deployment}/predict", {"inputs": {"text": ["hi"]}}),
        (401, 200, 200, 200, 200, 404),
    ),
    # stopping is for its creator and the model's editors; the allowed case runs last, in its own test
    ("DELETE", "/deployments/{name}", None, (401, None, None, 403, None, 404)),
    (
        "POST",
        "/datasets",
        _json("POST", "/datasets", lambda w, r: {"name": unique("ds")}),
        (401, 201, 201, 201, 201, 201),
    ),
    ("GET", "/datasets", _get("/datasets"), (401, 200, 200, 200, 200, 200)),
    ("GET", "/datasets/{name}", _get("/datasets/{dataset}"), (401, 200, 200, 404, 404, 404)),
    ("GET", "/datasets/{name}/samples", _get("/datasets/{dataset}/samples"), (401, 200, 200, 404, 404, 404)),
    (
        "POST",
        "/datasets/{name}/samples",
        _json("POST", "/datasets/{dataset}/samples", {"samples": [{"filepath": "/x/b", "fields": {"text": "b"}}]}),
        (401, 201, 201, 404, 404, 404),
    ),
    ("GET", "/datasets/{name}/fields", _get("/datasets/{dataset}/fields"), (401, 200, 200, 404, 404, 404)),
    ("GET", "/datasets/{name}/export", _get("/datasets/{dataset}/export"), (401, 200, 200, 404, 404, 404)),
    (
        "GET",
        "/datasets/{name}/samples/{sample_id}/thumbnail",
        _get("/datasets/{dataset}/samples/{image_sample}/thumbnail"),
        (401, 200, 200, 404, 404, 404),
    ),
    ("GET", "/datasets/{name}/jobs", _get("/datasets/{dataset}/jobs"), (401, 200, 200, 404, 404, 404)),
    # each call deletes a dataset of the owner's made for it
    (
        "DELETE",
        "/datasets/{name}",
        lambda w, c, r: c.delete(f"/datasets/{w.fresh_dataset()}"),
        (401, 204, 204, 404, 404, 404),
    ),
    (
        "DELETE",
        "/datasets/{name}/fields/{field}",
        lambda w, c, r: c.delete(f"/datasets/{w.dataset}/fields/nothing"),
        (401, 200, 200, 404, 404, 404),
    ),
    (
        "POST",
        "/datasets/{name}/samples/delete",
        _json("POST", "/datasets/{dataset}/samples/delete", {"ids": ["none"]}),
        (401, 200, 200, 404, 404, 404),
    ),
    # version 1 runs in the world's deployment: allowed callers are told so (409)
    (
        "DELETE",
        "/models/{name}/versions/{version}",
        lambda w, c, r: c.delete(f"/models/{w.model}/versions/1"),
        (401, 409, 409, 403, 409, 404),
    ),
    ("GET", "/users", _get("/users"), (401, 200, 403, 403, 403, 403)),
    (
        "DELETE",
        "/users/{username}",
        lambda w, c, r: c.delete(f"/users/{w.fresh_user()}"),
        (401, 204, 403, 403, 403, 403),
    ),
    (
        "POST",
        "/datasets/{name}/jobs",
        _json(
            "POST", "/datasets/{dataset}/jobs", lambda w, r: {"deployment": w.deployment, "outputs": {"label": "l2"}}
        ),
        (401, 202, 202, 404, 404, 404),
    ),
    ("GET", "/jobs/{job_id}", _get("/jobs/{job}"), (401, 200, 200, 404, 404, 404)),
    ("GET", "/jobs/{job_id}/events", _get("/jobs/{job}/events"), (401, 200, 200, 404, 404, 404)),
    ("GET", "/jobs/{job_id}/failures", _get("/jobs/{job}/failures"), (401, 200, 200, 404, 404, 404)),
    # the job has completed with no failures: allowed callers get 409, others never learn it exists
    ("POST", "/jobs/{job_id}/cancel", _json("POST", "/jobs/{job}/cancel", None), (401, 409, 409, 404, 404, 404)),
    ("POST", "/jobs/{job_id}/retry", _json("POST", "/jobs/{job}/retry", None), (401, 409, 409, 404, 404, 404)),
    # aliases: setting and removing need edit, the history is for whoever may see the model
    (
        "PUT",
        "/models/{name}/aliases/{alias}",
        _json("PUT", "/models/{model}/aliases/prod", {"version": 1}),
        (401, 200, 200, 403, 200, 404),
    ),
    (
        "DELETE",
        "/models/{name}/aliases/{alias}",
        lambda w, c, r: c.delete(f"/models/{w.model}/aliases/{w.alias('gone')}"),
        (401, 204, 204, 403, 204, 404),
    ),
    (
        "GET",
        "/models/{name}/aliases/{alias}/history",
        lambda w, c, r: c.get(f"/models/{w.model}/aliases/{w.alias('kept')}/history"),
        (401, 200, 200, 200, 200, 404),
    ),
    # evaluations read the dataset: its owner and the admin (datasets are not shared)
    (
        "POST",
        "/datasets/{name}/evaluations",
        _json(
            "POST",
            "/datasets/{dataset}/evaluations",
            lambda w, r: {"name": unique("ev"), "prediction": "label", "ground_truth": "text"},
        ),
        (401, 201, 201, 404, 404, 404),
    ),
    ("GET", "/datasets/{name}/evaluations", _get("/datasets/{dataset}/evaluations"), (401, 200, 200, 404, 404, 404)),
    (
        "GET",
        "/datasets/{name}/evaluations/{evaluation}",
        lambda w, c, r: c.get(f"/datasets/{w.dataset}/evaluations/{w.evaluation()}"),
        (401, 200, 200, 404, 404, 404),
    ),
    (
        "DELETE",
        "/datasets/{name}/evaluations/{evaluation}",
        lambda w, c, r: c.delete(f"/datasets/{w.dataset}/evaluations/{w.evaluation()}"),
        (401, 204, 204, 404, 404, 404),
    ),
    # the Open Inference Protocol at the root: probes are open, a model is a deployment one may run
    ("GET", "/v2", lambda w, c, r: c.get(w.root("/v2")), (200, 200, 200, 200, 200, 200)),
    ("GET", "/v2/health/live", lambda w, c, r: c.get(w.root("/v2/health/live")), (200, 200, 200, 200, 200, 200)),
    ("GET", "/v2/health/ready", lambda w, c, r: c.get(w.root("/v2/health/ready")), (200, 200, 200, 200, 200, 200)),
    (
        "GET",
        "/v2/models/{name}",
        lambda w, c, r: c.get(w.root(f"/v2/models/{w.deployment}")),
        (401, 200, 200, 200, 200, 404),
    ),
    (
        "GET",
        "/v2/models/{name}/ready",
        lambda w, c, r: c.get(w.root(f"/v2/models/{w.deployment}/ready")),
        (401, 200, 200, 200, 200, 404),
    ),
    (
        "GET",
        "/v2/models/{name}/versions/{version}",
        lambda w, c, r: c.get(w.root(f"/v2/models/{w.deployment}/versions/1")),
        (401, 200, 200, 200, 200, 404),
    ),
    (
        "GET",
        "/v2/models/{name}/versions/{version}/ready",
        lambda w, c, r: c.get(w.root(f"/v2/models/{w.deployment}/versions/1/ready")),
        (401, 200, 200, 200, 200, 404),
    ),
    (
        "POST",
        "/v2/models/{name}/infer",
        lambda w, c, r: c.post(w.root(f"/v2/models/{w.deployment}/infer"), json=OIP_INFER),
        (401, 200, 200, 200, 200, 404),
    ),
    (
        "POST",
        "/v2/models/{name}/versions/{version}/infer",
        lambda w, c, r: c.post(w.root(f"/v2/models/{w.deployment}/versions/1/infer"), json=OIP_INFER),
        (401, 200, 200, 200, 200, 404),
    ),
    # rotation is checked in its own test (it replaces the caller's token)
    ("POST", "/users/me/token", None, (401, None, None, None, None, None)),
]


def test_matrix_covers_every_route(stack):
    spec = httpx.get(f"{stack.url}/openapi.json").json()
    routes = {(method.upper(), path.removeprefix("/api/v1")) for path, ops in spec["paths"].items() for method in ops}
    assert routes == {(m, p) for m, p, _, _ in MATRIX}


@pytest.mark.parametrize("method, path, call, expected", MATRIX, ids=[f"{m} {p}" for m, p, _, _ in MATRIX])
def test_route_answers_each_role_as_expected(world, method, path, call, expected):
    for role, status in zip(ROLES, expected, strict=True):
        if status is None:
            continue
        client = world.clients[role]
        response = (
            call(world, client, role)
            if call
            else client.request(method, path.format(name=world.deployment, job_id=world.job))
        )
        assert response.status_code == status, f"{role}: {response.status_code} {response.text[:200]}"
        if status == 404:
            body = response.json()
            detail = body["error"] if path.startswith("/v2") else body["detail"]  # OIP's error shape
            assert world.model not in detail or role == "stranger", detail


def test_lists_show_exactly_what_each_role_may_see(world):
    for role in ("admin", "owner", "runner", "editor", "stranger"):
        client = world.clients[role]
        models = {m["name"] for m in client.get("/models").json()["items"]}
        deployments = {d["name"] for d in client.get("/deployments").json()["items"]}
        datasets = {d["name"] for d in client.get("/datasets").json()["items"]}
        sees_model = role != "stranger"
        assert (world.model in models) == sees_model, role
        assert (world.deployment in deployments) == sees_model, role
        assert (world.dataset in datasets) == (role in ("admin", "owner")), role
        for item in client.get("/models").json()["items"]:
            assert (
                role == "admin"
                or item["owner"] == world.names[role]
                or world.names[role] in item["sharing"]["users"]
                or item["sharing"]["everyone"] != "none"
            ), item


def test_run_share_runs_the_model_on_its_own_dataset_and_revoking_is_immediate(world):
    runner = world.clients["runner"]
    dataset = unique("runner-ds")
    assert runner.post("/datasets", json={"name": dataset}).status_code == 201
    assert (
        runner.post(
            f"/datasets/{dataset}/samples", json={"samples": [{"filepath": "/y", "fields": {"text": "mine"}}]}
        ).status_code
        == 201
    )
    job = run_job(runner, dataset, world.deployment, {"label": "label"})
    assert (job["status"], job["succeeded"]) == ("completed", 1)
    # on someone else's dataset: 404, and nothing runs
    assert (
        runner.post(
            f"/datasets/{world.dataset}/jobs", json={"deployment": world.deployment, "outputs": {"label": "x"}}
        ).status_code
        == 404
    )

    owner = world.clients["owner"]
    assert (
        owner.put(
            f"/models/{world.model}/sharing", json={"everyone": "none", "users": {world.names["editor"]: "edit"}}
        ).status_code
        == 200
    )
    assert runner.get(f"/models/{world.model}").status_code == 404
    assert runner.post(f"/deployments/{world.deployment}/predict", json={"inputs": {"text": ["x"]}}).status_code == 404
    assert (
        owner.put(
            f"/models/{world.model}/sharing", json={"everyone": "run", "users": {world.names["editor"]: "edit"}}
        ).status_code
        == 200
    )
    assert world.clients["stranger"].get(f"/models/{world.model}").status_code == 200
    assert world.clients["stranger"].patch(f"/models/{world.model}", json={"tags": ["x"]}).status_code == 403
    assert (
        owner.put(
            f"/models/{world.model}/sharing",
            json={"everyone": "none", "users": {world.names["runner"]: "run", world.names["editor"]: "edit"}},
        ).status_code
        == 200
    )
    unknown = owner.put(f"/models/{world.model}/sharing", json={"users": {"no-such-user": "run"}})
    assert (unknown.status_code, unknown.json()["detail"]) == (404, "user 'no-such-user' not found")


def test_token_rotation_retires_the_old_token(stack):
    username = unique("rot")
    token = stack.client.post("/users", json={"username": username}).json()["token"]
    old = stack.user_client(token)
    rotated = old.post("/users/me/token")
    assert rotated.status_code == 200 and rotated.json()["token"] != token
    assert old.get("/users/me").status_code == 401
    assert stack.user_client(rotated.json()["token"]).get("/users/me").json()["username"] == username
    assert httpx.post(f"{stack.url}/users/me/token").status_code == 401


def test_an_editor_may_stop_a_deployment_it_did_not_create(world):
    assert world.clients["editor"].delete(f"/deployments/{world.deployment}").status_code == 202
    assert wait_for(
        lambda: world.clients["owner"].get(f"/deployments/{world.deployment}").json()["status"] == "stopped",
        120,
        "the deployment to stop",
    )
    assert world.clients["owner"].delete(f"/models/{world.model}").status_code == 204
    assert world.clients["admin"].get(f"/models/{world.model}").status_code == 404


def test_forged_deployment_event_from_a_stranger_deploys_nothing(world, stack):
    """An event on NATS is authorised like an HTTP request: a stranger's DeploymentRequested fails."""
    import asyncio

    import nats

    from modelhub_contracts import subjects
    from modelhub_contracts.events import DeploymentRequested

    owner = world.clients["owner"]
    model = unique("private")
    create_model(owner, model, world.package, SCHEMA)
    version = owner.get(f"/models/{model}/versions/1").json()
    # the document a gateway would have written, then an event claiming a stranger asked for it
    name = unique("forged")

    async def forge():
        from pymongo import AsyncMongoClient

        from modelhub_contracts.events import utcnow

        mongo = AsyncMongoClient(stack.mongo_url)
        doc = await mongo["modelhub"]["versions"].find_one({"model_id": model.lower(), "version": 1})
        now = utcnow()
        await mongo["modelhub"]["deployments"].insert_one(
            {
                "_id": name,
                "name": name,
                "model": model,
                "version": 1,
                "model_type": "inference",
                "mini_batch": 1,
                "num_replicas": 1,
                "num_gpus": 0,
                "custom_env": False,
                "status": "pending",
                "error": None,
                "ready_replicas": 0,
                "created_by": world.names["stranger"],
                "created_at": now,
                "updated_at": now,
                "package_object": doc["package_object"],
                "package_sha256": doc["sha256"],
            }
        )
        await mongo.close()
        nc = await nats.connect(stack.nats_url)
        event = DeploymentRequested(
            deployment=name,
            model=model,
            version=1,
            package_object=doc["package_object"],
            package_sha256=version["sha256"],
            mini_batch=1,
            num_replicas=1,
            num_gpus=0,
            custom_env=False,
            requested_by=world.names["stranger"],
        )
        await nc.jetstream().publish(subjects.DEPLOYMENT_REQUESTED, event.model_dump_json().encode())
        await nc.close()

    asyncio.run(forge())
    failed = wait_for(
        lambda: (d := stack.client.get(f"/deployments/{name}").json())["status"] == "failed" and d,
        60,
        "the forged deployment to be refused",
    )
    assert "may not run" in failed["error"]


def test_sharing_names_are_case_insensitive_so_revoking_works(stack, tmp_path):
    admin = stack.client
    username = unique("Mixed")
    token = admin.post("/users", json={"username": username}).json()["token"]
    guest = stack.user_client(token)
    model = unique("casey")
    assert admin.post("/models", json={"name": model}).status_code == 201
    granted = admin.put(f"/models/{model}/sharing", json={"users": {username.upper(): "run"}})
    assert granted.status_code == 200 and granted.json()["users"] == {username: "run"}
    assert guest.get(f"/models/{model}").status_code == 200
    assert admin.put(f"/models/{model}/sharing", json={"users": {}}).status_code == 200
    assert guest.get(f"/models/{model}").status_code == 404


def test_forged_job_event_from_a_stranger_annotates_nothing(world, stack):
    """A JobSubmitted naming a user who may not annotate the dataset is refused by the scheduler:
    the job fails with the reason and no sample gets the field."""
    import asyncio

    import nats

    from modelhub_contracts import subjects
    from modelhub_contracts.events import JobSubmitted

    owner = world.clients["owner"]
    dataset = unique("victim")
    assert owner.post("/datasets", json={"name": dataset}).status_code == 201
    assert (
        owner.post(
            f"/datasets/{dataset}/samples", json={"samples": [{"filepath": "/v", "fields": {"text": "v"}}]}
        ).status_code
        == 201
    )
    # its own model: an earlier test in this module deletes the shared one
    model, deployment = unique("victim-model"), unique("dep")
    create_model(owner, model, world.package, SCHEMA)
    assert deploy(owner, model, deployment)["status"] == "running"
    job_id = unique("forged-job")

    async def forge():
        # a live job document, as if the gateway had accepted it, then the event naming the stranger
        await insert_live_job(stack, job_id, dataset, deployment, model, world.names["owner"])
        nc = await nats.connect(stack.nats_url)
        event = JobSubmitted(
            job_id=job_id,
            attempt=1,
            dataset=dataset,
            deployment=deployment,
            inputs={"text": "text"},
            outputs={"label": "forged"},
            output_types={"label": "classification"},
            mini_batch=1,
            submitted_by=world.names["stranger"],
        )
        await nc.jetstream().publish(subjects.JOB_SUBMITTED, event.model_dump_json().encode())
        await nc.close()

    asyncio.run(forge())
    failed = wait_for(
        lambda: (j := owner.get(f"/jobs/{job_id}").json())["status"] == "failed" and j,
        60,
        "the forged job to be refused",
    )
    assert "may not annotate" in failed["error"] and failed["succeeded"] == 0
    samples = owner.get(f"/datasets/{dataset}/samples").json()["items"]
    assert "forged" not in samples[0]["fields"]
    owner.delete(f"/deployments/{deployment}")


def test_forged_tasks_cannot_write_into_another_users_dataset(world, stack):
    """TaskScheduled carries no user: the worker only writes for a task that matches its (authorised)
    job, and only into that job's dataset."""
    import asyncio

    import nats

    from modelhub_contracts import subjects
    from modelhub_contracts.events import TaskScheduled

    owner, runner = world.clients["owner"], world.clients["runner"]
    model, deployment = unique("lease-model"), unique("dep")
    create_model(owner, model, world.package, SCHEMA)
    assert deploy(owner, model, deployment)["status"] == "running"
    mine, theirs = unique("mine"), unique("theirs")
    for client, dataset in ((owner, mine), (runner, theirs)):
        assert client.post("/datasets", json={"name": dataset}).status_code == 201
        assert (
            client.post(
                f"/datasets/{dataset}/samples", json={"samples": [{"filepath": "/s", "fields": {"text": "t"}}]}
            ).status_code
            == 201
        )
    victim = runner.get(f"/datasets/{theirs}/samples").json()["items"][0]["id"]
    job_id = unique("live-job")

    async def forge() -> int:
        await insert_live_job(stack, job_id, mine, deployment, model, world.names["owner"])
        nc = await nats.connect(stack.nats_url)
        js = nc.jetstream()
        last = 0
        for index, dataset in enumerate((mine, theirs)):  # naming the victim's sample, under either dataset
            task = TaskScheduled(
                task_id=f"{job_id}.1.{index}",
                job_id=job_id,
                attempt=1,
                dataset=dataset,
                deployment=deployment,
                sample_ids=[victim],
                inputs={"text": "text"},
                outputs={"label": "forged"},
                output_types={"label": "classification"},
            )
            last = (await js.publish(subjects.TASK_SCHEDULED, task.model_dump_json().encode())).seq
        await nc.close()
        return last

    async def handled(seq: int) -> bool:
        nc = await nats.connect(stack.nats_url)
        try:
            info = await nc.jetstream().consumer_info(subjects.STREAM, subjects.DURABLE_WORKER_TASKS)
            return info.ack_floor.stream_seq >= seq
        finally:
            await nc.close()

    seq = asyncio.run(forge())
    wait_for(lambda: asyncio.run(handled(seq)), 120, "the worker to have handled the forged tasks")
    assert "forged" not in runner.get(f"/datasets/{theirs}/samples").json()["items"][0]["fields"]
    owner.delete(f"/deployments/{deployment}")


async def insert_live_job(stack, job_id: str, dataset: str, deployment: str, model: str, owner: str) -> None:
    """A running job document of `owner`'s, as if the gateway had accepted it (inputs text → text,
    output label → forged): what forged events then try to ride on."""
    from pymongo import AsyncMongoClient

    from modelhub_contracts.events import utcnow

    mongo = AsyncMongoClient(stack.mongo_url)
    now = utcnow()
    await mongo["modelhub"]["jobs"].insert_one(
        {
            "_id": job_id,
            "dataset": dataset,
            "deployment": deployment,
            "model": model,
            "version": 1,
            "inputs": {"text": "text"},
            "outputs": {"label": "forged"},
            "status": "running",
            "attempt": 1,
            "total": 1,
            "succeeded": 0,
            "failed": 0,
            "progress": 0.0,
            "error": None,
            "created_by": owner,
            "owner": owner,
            "created_at": now,
            "started_at": now,
            "finished_at": None,
        }
    )
    await mongo.close()
