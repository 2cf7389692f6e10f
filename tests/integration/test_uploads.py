"""Refused uploads store nothing: no version, no bytes left in the object store."""

import asyncio
import io
import json
import zipfile

import nats
import pytest
from conftest import SCHEMA_LOCAL_TO_CLASS, make_zip, unique

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

GOOD_MODEL = "class Model:\n    def __init__(self, d): pass\n    def predict(self, b): return {}\n"


def stored_objects(stack) -> tuple[int, int]:
    """(live objects, bytes held) in the packages bucket; deleted objects leave only a tombstone."""

    async def count() -> tuple[int, int]:
        nc = await nats.connect(stack.nats_url)
        try:
            js = nc.jetstream()
            store = await js.object_store("modelhub-packages")
            held = (await js.stream_info("OBJ_modelhub-packages")).state.bytes
            try:
                return len(await store.list(ignore_deletes=True)), held
            except Exception:  # nats-py raises NotFoundError when no live object is left
                return 0, held
        finally:
            await nc.close()

    return asyncio.run(count())


def symlink_zip(path):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("model.py", GOOD_MODEL)
        info = zipfile.ZipInfo("weights.bin")
        info.external_attr = 0o120777 << 16
        zf.writestr(info, "/etc/passwd")
    return path


CASES = [
    ("not-a-zip", lambda p: (p.write_bytes(b"this is not a zip"), p)[1], SCHEMA_LOCAL_TO_CLASS, 400, "not a zip"),
    (
        "zip-slip",
        lambda p: make_zip(p, {"model.py": GOOD_MODEL, "../evil.py": "x"}),
        SCHEMA_LOCAL_TO_CLASS,
        400,
        "../evil.py",
    ),
    (
        "absolute",
        lambda p: make_zip(p, {"model.py": GOOD_MODEL, "/etc/evil": "x"}),
        SCHEMA_LOCAL_TO_CLASS,
        400,
        "/etc/evil",
    ),
    ("symlink", symlink_zip, SCHEMA_LOCAL_TO_CLASS, 400, "weights.bin"),
    ("no-model-py", lambda p: make_zip(p, {"weights.bin": "x"}), SCHEMA_LOCAL_TO_CLASS, 400, "model.py"),
    (
        "truncated",
        lambda p: (p.write_bytes(make_zip(p, {"model.py": GOOD_MODEL * 50}).read_bytes()[:120]), p)[1],
        SCHEMA_LOCAL_TO_CLASS,
        400,
        "zip",
    ),
    (
        "unknown-type",
        lambda p: make_zip(p, {"model.py": GOOD_MODEL}),
        {
            "inputs": {"type": "object", "properties": {"x": {"type": "blob"}}},
            "outputs": {"type": "object", "properties": {"y": {"type": "text"}}},
        },
        422,
        "inputs.properties.x.type",
    ),
    (
        "no-outputs",
        lambda p: make_zip(p, {"model.py": GOOD_MODEL}),
        {"inputs": {"type": "object", "properties": {"x": {"type": "text"}}}},
        422,
        "outputs",
    ),
]


@pytest.mark.parametrize("case, build, schema, status, needle", CASES, ids=[c[0] for c in CASES])
def test_refused_upload_stores_nothing(stack, tmp_path, case, build, schema, status, needle):
    client = stack.client
    model = unique("upl")
    assert client.post("/models", json={"name": model}).status_code == 201
    before = stored_objects(stack)
    package = build(tmp_path / f"{case}.zip")
    with package.open("rb") as fh:
        response = client.post(
            f"/models/{model}/versions",
            files={"file": (package.name, fh, "application/zip")},
            data={"schema": json.dumps(schema)},
        )
    assert response.status_code == status, response.text
    assert needle in response.json()["detail"]
    assert client.get(f"/models/{model}").json()["versions"] == []
    live, held = stored_objects(stack)
    assert live == before[0]
    assert held - before[1] < max(package.stat().st_size, 1024), "the package's bytes were kept"


def test_schema_that_is_not_json_is_refused(stack):
    client = stack.client
    model = unique("upl")
    assert client.post("/models", json={"name": model}).status_code == 201
    package = io.BytesIO()
    with zipfile.ZipFile(package, "w") as zf:
        zf.writestr("model.py", GOOD_MODEL)
    response = client.post(
        f"/models/{model}/versions", files={"file": ("m.zip", package.getvalue())}, data={"schema": "{not json"}
    )
    assert response.status_code == 422 and "not valid JSON" in response.json()["detail"]
    assert client.get(f"/models/{model}").json()["versions"] == []


def test_versions_count_up_and_archive_round_trips(stack, tmp_path):
    client = stack.client
    model = unique("ver")
    assert client.post("/models", json={"name": model}).status_code == 201
    for expected in (1, 2):
        package = make_zip(tmp_path / f"v{expected}.zip", {"model.py": GOOD_MODEL + f"# v{expected}\n"})
        with package.open("rb") as fh:
            response = client.post(
                f"/models/{model}/versions",
                files={"file": ("m.zip", fh)},
                data={"schema": json.dumps(SCHEMA_LOCAL_TO_CLASS)},
            )
        assert response.status_code == 201 and response.json()["version"] == expected
    archive = client.get(f"/models/{model}/versions/2/archive")
    assert archive.status_code == 200 and archive.content == (tmp_path / "v2.zip").read_bytes()
    assert client.post("/models", json={"name": model.upper()}).status_code == 409
