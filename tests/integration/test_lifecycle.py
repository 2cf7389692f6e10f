"""Removing what users made: a dataset with its jobs and ledgers, a field a run wrote (the undo),
samples by id, a model version no deployment uses, and a person (off-boarding). Each is refused
while something still depends on it, leaves nothing behind, and a second delete answers 404."""

import json

import pytest
from conftest import (
    SCHEMA_TEXT_TO_CLASS,
    add_text_samples,
    all_samples,
    create_model,
    deploy,
    make_zip,
    run_job,
    slow_model,
    unique,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

QUICK = slow_model(0.0)
SLOW = slow_model(0.3)


@pytest.fixture(scope="module")
def deployments(stack, tmp_path_factory):
    """A quick and a slow running deployment of the text model (slow: jobs on it are still running
    when a test acts on them)."""
    tmp = tmp_path_factory.mktemp("lifecycle")
    names = {}
    for kind, code in (("quick", QUICK), ("slow", SLOW)):
        model, dep = unique(f"life-{kind}"), unique(f"life-{kind}")
        create_model(stack.client, model, make_zip(tmp / f"{kind}.zip", {"model.py": code}), SCHEMA_TEXT_TO_CLASS)
        assert deploy(stack.client, model, dep, mini_batch=2)["status"] == "running"
        names[kind] = (model, dep)
    return names


def start_slow_job(client, dataset: str, deployment: str, field: str = "label") -> str:
    job = client.post(f"/datasets/{dataset}/jobs", json={"deployment": deployment, "outputs": {"label": field}})
    assert job.status_code == 202, job.text
    return job.json()["id"]


def test_deleting_a_dataset_takes_its_samples_jobs_and_ledgers_and_frees_the_name(stack, deployments):
    client, dataset = stack.client, unique("del-ds")
    add_text_samples(client, dataset, ["a", "b", "c"])
    job = run_job(client, dataset, deployments["quick"][1], {"label": "label"})
    assert job["status"] == "completed"

    assert client.delete(f"/datasets/{dataset}").status_code == 204
    assert client.get(f"/datasets/{dataset}").status_code == 404
    assert client.get(f"/jobs/{job['id']}").status_code == 404
    assert client.get(f"/jobs/{job['id']}/failures").status_code == 404
    assert client.delete(f"/datasets/{dataset}").status_code == 404  # a second delete
    # the name is free at once, and the new dataset starts empty
    assert client.post("/datasets", json={"name": dataset}).status_code == 201
    assert client.get(f"/datasets/{dataset}/samples").json()["total"] == 0
    assert client.get(f"/datasets/{dataset}/jobs").json()["items"] == []


def test_a_dataset_with_a_running_job_is_not_deleted(stack, deployments):
    client, dataset = stack.client, unique("busy-ds")
    add_text_samples(client, dataset, [f"s{i}" for i in range(60)])
    job_id = start_slow_job(client, dataset, deployments["slow"][1])
    refused = client.delete(f"/datasets/{dataset}")
    assert refused.status_code == 409 and job_id in refused.json()["detail"]
    assert client.get(f"/datasets/{dataset}/samples").json()["total"] == 60
    assert client.post(f"/jobs/{job_id}/cancel").status_code == 202
    assert client.delete(f"/datasets/{dataset}").status_code == 204


def test_removing_a_field_undoes_a_run_and_is_refused_while_a_job_writes_it(stack, deployments):
    client, dataset = stack.client, unique("undo")
    add_text_samples(client, dataset, ["x", "y", "z"])
    job = run_job(client, dataset, deployments["quick"][1], {"label": "wrong"})
    assert all("wrong" in s["fields"] for s in all_samples(client, dataset))
    # each written field says who wrote it: the job, the model version, the deployment, when
    model, dep = deployments["quick"]
    for sample in all_samples(client, dataset):
        lineage = sample["lineage"]["wrong"]
        assert (lineage["job_id"], lineage["model"], lineage["version"], lineage["deployment"]) == (
            job["id"],
            model,
            1,
            dep,
        ) and lineage["at"]

    removed = client.delete(f"/datasets/{dataset}/fields/wrong")
    assert removed.status_code == 200 and removed.json() == {"removed": 3}
    assert not any("wrong" in s["fields"] or "wrong" in s["lineage"] for s in all_samples(client, dataset))
    assert all(s["fields"]["text"] for s in all_samples(client, dataset))  # other fields stay
    assert client.delete(f"/datasets/{dataset}/fields/wrong").json() == {"removed": 0}
    assert client.delete(f"/datasets/{dataset}/fields/a.b").status_code == 422

    add_text_samples(client, dataset, [f"more{i}" for i in range(40)], create=False)
    job_id = start_slow_job(client, dataset, deployments["slow"][1], field="busy")
    refused = client.delete(f"/datasets/{dataset}/fields/busy")
    assert refused.status_code == 409 and job_id in refused.json()["detail"]
    # a field the running job does not write can go
    assert client.delete(f"/datasets/{dataset}/fields/text").status_code == 200
    client.post(f"/jobs/{job_id}/cancel")


def test_samples_are_deleted_by_id_within_their_dataset_only(stack):
    client, mine, theirs = stack.client, unique("trim"), unique("other")
    add_text_samples(client, mine, ["keep", "drop1", "drop2"])
    add_text_samples(client, theirs, ["safe"])
    ids = {s["fields"]["text"]: s["id"] for s in all_samples(client, mine)}
    other_id = all_samples(client, theirs)[0]["id"]
    deleted = client.post(f"/datasets/{mine}/samples/delete", json={"ids": [ids["drop1"], ids["drop2"], other_id]})
    assert deleted.status_code == 200 and deleted.json() == {"deleted": 2}
    assert [s["fields"]["text"] for s in all_samples(client, mine)] == ["keep"]
    assert client.get(f"/datasets/{mine}").json()["num_samples"] == 1
    assert len(all_samples(client, theirs)) == 1
    assert client.post(f"/datasets/{mine}/samples/delete", json={"ids": []}).status_code == 422


def test_a_version_in_use_is_kept_and_an_unused_one_is_deleted_with_its_package(stack, deployments, tmp_path):
    client = stack.client
    model, dep = deployments["quick"]
    make_zip(tmp_path / "v.zip", {"model.py": QUICK})
    with (tmp_path / "v.zip").open("rb") as fh:
        v2 = client.post(
            f"/models/{model}/versions",
            files={"file": ("v.zip", fh)},
            data={"schema": json.dumps(SCHEMA_TEXT_TO_CLASS)},
        ).json()["version"]
    refused = client.delete(f"/models/{model}/versions/1")
    assert refused.status_code == 409 and dep in refused.json()["detail"]
    assert client.get(f"/models/{model}/versions/1/archive").status_code == 200

    assert client.delete(f"/models/{model}/versions/{v2}").status_code == 204
    assert client.get(f"/models/{model}/versions/{v2}").status_code == 404
    assert client.get(f"/models/{model}/versions/{v2}/archive").status_code == 404
    assert client.delete(f"/models/{model}/versions/{v2}").status_code == 404
    assert [v["version"] for v in client.get(f"/models/{model}").json()["versions"]] == [1]
    with (tmp_path / "v.zip").open("rb") as fh:  # numbers are not reused
        again = client.post(
            f"/models/{model}/versions",
            files={"file": ("v.zip", fh)},
            data={"schema": json.dumps(SCHEMA_TEXT_TO_CLASS)},
        )
    assert again.json()["version"] == v2 + 1


def test_offboarding_a_user_stops_their_tokens_at_once_and_keeps_what_they_own(stack, tmp_path):
    admin, name = stack.client, unique("leaver")
    token = admin.post("/users", json={"username": name}).json()["token"]
    leaver = stack.user_client(token)
    model = unique("left-behind")
    assert leaver.post("/models", json={"name": model}).status_code == 201
    assert leaver.get("/users").status_code == 403
    assert leaver.delete(f"/users/{name}").status_code == 403

    listed = {u["username"]: u for u in admin.get("/users").json()["items"]}
    assert listed[name]["disabled"] is False and listed["admin"]["is_admin"] is True
    assert admin.delete(f"/users/{name}").status_code == 204
    assert leaver.get("/users/me").status_code == 401
    assert leaver.post("/users/me/token").status_code == 401  # no way back in
    assert {u["username"]: u for u in admin.get("/users").json()["items"]}[name]["disabled"] is True
    assert admin.post("/users", json={"username": name.upper()}).status_code == 409  # the name stays taken
    assert admin.get(f"/models/{model}").json()["owner"] == name  # what they own stays
    assert admin.delete(f"/users/{name}").status_code == 404
    assert admin.delete("/users/admin").status_code == 409
