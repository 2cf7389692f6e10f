"""Hostile input through the real gateway: refused with a message, and nothing stored."""

import http.client
import json
import zipfile
from urllib.parse import urlsplit

import pytest
from conftest import SCHEMA_LOCAL_TO_CLASS, unique
from test_uploads import GOOD_MODEL, stored_objects

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

MiB = 1024 * 1024


def test_a_zip_bomb_by_ratio_is_refused_naming_the_entry_and_nothing_is_stored(stack, tmp_path):
    client, model = stack.client, unique("bomb")
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("model.py", GOOD_MODEL)
        zf.writestr("weights.bin", bytes(20 * MiB))  # ~20 KiB packed: about 1000x, over the 200x cap
    assert bomb.stat().st_size < 100 * 1024
    assert client.post("/models", json={"name": model}).status_code == 201
    before = stored_objects(stack)

    with bomb.open("rb") as fh:
        response = client.post(
            f"/models/{model}/versions",
            files={"file": (bomb.name, fh, "application/zip")},
            data={"schema": json.dumps(SCHEMA_LOCAL_TO_CLASS)},
        )
    assert response.status_code == 400, response.text
    assert "weights.bin" in response.json()["detail"] and "zip bomb" in response.json()["detail"]
    assert client.get(f"/models/{model}").json()["versions"] == []
    live, held = stored_objects(stack)
    assert live == before[0] and held - before[1] < bomb.stat().st_size, "the bomb's bytes were kept"


def test_a_body_declared_larger_than_the_cap_is_refused_before_it_is_sent(stack):
    # Only the headers go out: the gateway must answer 413 from Content-Length alone.
    url = urlsplit(stack.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        conn.putrequest("POST", f"{url.path}/models/{unique('big')}/versions")
        conn.putheader("Authorization", f"Bearer {stack.token}")
        conn.putheader("Content-Type", "multipart/form-data; boundary=x")
        conn.putheader("Content-Length", str(64 * 1024 * MiB))  # 64 GiB
        conn.endheaders()
        response = conn.getresponse()
        assert response.status == 413
        assert "limit" in json.loads(response.read())["detail"]
    finally:
        conn.close()


def test_a_malformed_json_body_is_a_422(stack):
    response = stack.client.post("/datasets", content=b'{"name": "x", ', headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert (
        stack.client.post("/datasets", content=b"[1, 2", headers={"Content-Type": "application/json"}).status_code
        == 422
    )


@pytest.mark.parametrize("fields", [{"$where": "1"}, {"a.b": 1}], ids=["dollar", "dot"])
def test_sample_field_names_that_mongodb_would_interpret_are_refused(stack, fields):
    client, dataset = stack.client, unique("ds")
    assert client.post("/datasets", json={"name": dataset}).status_code == 201
    response = client.post(
        f"/datasets/{dataset}/samples",
        json={
            "samples": [
                {"filepath": "/data/fine.txt", "fields": {"text": "fine"}},  # refused along with its bad neighbour
                {"filepath": "/data/bad.txt", "fields": fields},
            ]
        },
    )
    assert response.status_code == 422, response.text
    assert client.get(f"/datasets/{dataset}/samples").json() == {"items": [], "total": 0}
    assert client.get(f"/datasets/{dataset}").json()["num_samples"] == 0


def test_keys_inside_a_fields_value_are_stored_as_data_never_interpreted(stack):
    """A field's value is any JSON: keys inside it that look like operators or paths are kept
    literally (MongoDB 5+ stores them as data) and come back unchanged; nothing else changes."""
    client, dataset = stack.client, unique("ds")
    value = {"$set": {"x": 1}, "a.b": {"$where": "sleep(1000)"}, "": [{"$gt": ""}]}
    assert client.post("/datasets", json={"name": dataset}).status_code == 201
    added = client.post(
        f"/datasets/{dataset}/samples",
        json={
            "samples": [
                {"filepath": "/data/one.txt", "fields": {"text": "one", "meta": value}},
                {"filepath": "/data/two.txt", "fields": {"text": "two"}},
            ]
        },
    )
    assert added.status_code == 201, added.text
    items = client.get(f"/datasets/{dataset}/samples").json()["items"]
    assert [s["fields"] for s in items] == [{"text": "one", "meta": value}, {"text": "two"}]
    exported = [json.loads(line) for line in client.get(f"/datasets/{dataset}/export").text.splitlines()]
    assert exported[0]["fields"]["meta"] == value
    # a NUL cannot be part of a stored key: it becomes U+FFFD rather than a server error
    nul = client.post(
        f"/datasets/{dataset}/samples",
        json={"samples": [{"filepath": "/data/three.txt", "fields": {"k\u0000": {"in\u0000side": 1}}}]},
    )
    assert nul.status_code == 201, nul.text
    assert client.get(f"/datasets/{dataset}/samples").json()["items"][2]["fields"] == {"k\ufffd": {"in\ufffdside": 1}}
