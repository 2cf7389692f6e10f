"""Seeing the data through the API: filters over model outputs, per-field label counts and their
writers, streamed export (JSONL, CSV, and the CLI), and thumbnails that are always re-encoded and
only for files a dataset holds, never inside the hub's data dir."""

import csv
import io
import json
import subprocess
import sys

import pytest
from conftest import unique
from PIL import Image

CAT = {"label": "cat", "confidence": 0.9}
DOG = {"label": "dog", "confidence": 0.4}
BOXES = {
    "detections": [
        {"label": "cat", "confidence": 0.3, "bounding_box": [0, 0, 0.5, 0.5]},
        {"label": "car", "confidence": 0.8, "bounding_box": [0.5, 0.5, 0.5, 0.5]},
    ]
}


@pytest.fixture(scope="module")
def labelled(stack, tmp_path_factory):
    """A dataset of four PNGs with classification and detection fields, one without any field."""
    folder = tmp_path_factory.mktemp("pictures")
    paths = []
    for i, color in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255), (9, 9, 9)]):
        paths.append(folder / f"{i}.png")
        Image.new("RGB", (40, 20), color).save(paths[-1])
    fields = [{"pet": CAT, "objects": BOXES}, {"pet": DOG}, {"pet": CAT}, {}]
    name = unique("view")
    client = stack.client
    assert client.post("/datasets", json={"name": name}).status_code == 201
    added = client.post(
        f"/datasets/{name}/samples",
        json={"samples": [{"filepath": str(p), "fields": f} for p, f in zip(paths, fields, strict=True)]},
    )
    assert added.status_code == 201, added.text
    items = client.get(f"/datasets/{name}/samples").json()["items"]
    return name, items


def ids(page: dict) -> list[str]:
    return [s["filepath"].rsplit("/", 1)[1] for s in page["items"]]


def test_filters_select_by_label_confidence_and_missing_field(stack, labelled):
    name, _ = labelled
    get = lambda **params: stack.client.get(f"/datasets/{name}/samples", params=params)  # noqa: E731
    assert ids(get(field="pet", label="cat").json()) == ["0.png", "2.png"]
    assert get(field="pet", label="cat").json()["total"] == 2
    assert ids(get(field="pet", min_confidence=0.5).json()) == ["0.png", "2.png"]
    assert ids(get(field="objects", label="car").json()) == ["0.png"]
    # label and confidence must hold for the same detection: the cat box has 0.3
    assert ids(get(field="objects", label="cat", min_confidence=0.5).json()) == []
    assert ids(get(missing="pet").json()) == ["3.png"]
    refused = get(label="cat")
    assert refused.status_code == 422 and "field" in refused.text
    assert get(field="pet", min_confidence=2).status_code == 422


def test_the_fields_summary_counts_samples_and_labels(stack, labelled):
    name, _ = labelled
    fields = {f["name"]: f for f in stack.client.get(f"/datasets/{name}/fields").json()["items"]}
    assert fields["pet"]["samples"] == 3
    assert fields["pet"]["labels"] == [{"label": "cat", "count": 2}, {"label": "dog", "count": 1}]
    assert fields["objects"]["labels"] == [{"label": "car", "count": 1}, {"label": "cat", "count": 1}]
    assert fields["pet"]["jobs"] == []  # added by hand, not written by a job


def test_export_streams_jsonl_and_csv_with_chosen_fields(stack, labelled):
    name, items = labelled
    jsonl = stack.client.get(f"/datasets/{name}/export", params={"format": "jsonl"})
    assert jsonl.status_code == 200 and jsonl.headers["content-type"].startswith("application/x-ndjson")
    rows = [json.loads(line) for line in jsonl.text.splitlines()]
    assert [r["id"] for r in rows] == [s["id"] for s in items]
    assert rows[0]["fields"] == {"pet": CAT, "objects": BOXES}

    table = stack.client.get(f"/datasets/{name}/export", params={"format": "csv", "fields": "pet"})
    assert table.headers["content-type"].startswith("text/csv")
    parsed = list(csv.reader(io.StringIO(table.text)))
    assert parsed[0] == ["id", "filepath", "pet"]
    assert [json.loads(r[2]) if r[2] else None for r in parsed[1:]] == [CAT, DOG, CAT, None]


def test_the_cli_exports_to_a_file(stack, labelled, tmp_path):
    name, items = labelled
    out = tmp_path / "export.csv"
    env = {"MODELHUB_URL": f"http://127.0.0.1:{stack.port}", "MODELHUB_TOKEN": stack.token, "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "modelhub", "datasets", "export", name, "--format", "csv", "-o", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert f"exported {len(items)} samples" in done.stderr
    header = out.read_text().splitlines()[0]
    assert header == "id,filepath,objects,pet"


def test_a_thumbnail_is_a_reencoded_jpeg_of_the_asked_size(stack, labelled):
    name, items = labelled
    answer = stack.client.get(f"/datasets/{name}/samples/{items[0]['id']}/thumbnail", params={"size": 128})
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
    image = Image.open(io.BytesIO(answer.content))
    assert image.format == "JPEG" and image.size == (128, 64)
    assert (
        stack.client.get(f"/datasets/{name}/samples/{items[0]['id']}/thumbnail", params={"size": 10_000}).status_code
        == 422
    )


def test_thumbnails_refuse_non_images_and_the_hubs_own_files(stack):
    name = unique("sneaky")
    client = stack.client
    assert client.post("/datasets", json={"name": name}).status_code == 201
    token_file = stack.data_dir / "admin-token"
    readme = stack.data_dir.parent / "notes.txt"
    readme.write_text("plain text")
    assert (
        client.post(
            f"/datasets/{name}/samples",
            json={
                "samples": [{"filepath": str(token_file)}, {"filepath": str(readme)}, {"filepath": "/no/such/file.png"}]
            },
        ).status_code
        == 201
    )
    items = client.get(f"/datasets/{name}/samples").json()["items"]
    answers = [client.get(f"/datasets/{name}/samples/{s['id']}/thumbnail") for s in items]
    assert [a.status_code for a in answers] == [403, 415, 404]
    assert all(stack.token not in a.text for a in answers)
    # a sample of another dataset is not reachable through this one
    other = unique("other")
    assert client.post("/datasets", json={"name": other}).status_code == 201
    assert client.get(f"/datasets/{other}/samples/{items[1]['id']}/thumbnail").status_code == 404
