"""FiftyOne round trip (issue 24), against the real stack and the real FiftyOne, nothing mocked:
`modelhub datasets export NAME --format fiftyone DIR` loaded by `fo.Dataset.from_dir`, and a
dataset made and exported by FiftyOne brought in by `modelhub datasets import`, then out again.

FiftyOne runs in a virtualenv of its own (`make fiftyone-venv`, which `make test` runs: FiftyOne
pins pymongo and motor older than the hub's), as a subprocess running fiftyone_side.py, on a mongod
this module starts (the hub's own binary, a data dir of its own, loopback only).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, Stack, free_port, unique, wait_for
from PIL import Image
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from modelhub.stack.binaries import find_mongod

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

FO_VENV = Path(os.environ.get("MODELHUB_FIFTYONE_VENV", ROOT / ".venv-fiftyone"))
SIDE = Path(__file__).with_name("fiftyone_side.py")
CLASSIFICATION = "fiftyone.core.fields.EmbeddedDocumentField(fiftyone.core.labels.Classification)"
DETECTIONS = "fiftyone.core.fields.EmbeddedDocumentField(fiftyone.core.labels.Detections)"


@pytest.fixture(scope="module")
def fo_mongo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A mongod for FiftyOne alone: FiftyOne keeps its datasets in MongoDB."""
    data = tmp_path_factory.mktemp("fiftyone-db")
    port = free_port()
    log = (data / "mongod.log").open("w")
    mongod = subprocess.Popen(
        [find_mongod(), "--dbpath", str(data), "--port", str(port), "--bind_ip", "127.0.0.1"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    uri = f"mongodb://127.0.0.1:{port}"

    def answers(client: MongoClient) -> bool:
        assert mongod.poll() is None, f"FiftyOne's mongod exited:\n{(data / 'mongod.log').read_text()[-3000:]}"
        try:
            return bool(client.admin.command("ping"))
        except PyMongoError:  # not listening yet
            return False

    try:
        with MongoClient(uri, serverSelectionTimeoutMS=500) as client:
            wait_for(lambda: answers(client), 120, "FiftyOne's mongod to answer")
        yield uri
    finally:
        mongod.terminate()
        mongod.wait(30)
        log.close()


@pytest.fixture(scope="module")
def fiftyone(fo_mongo: str, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Any]:
    """Run fiftyone_side.py with the real FiftyOne; its JSON answer. The tests ask for it before
    `stack`, so that a missing virtualenv fails them at once rather than after the stack's start."""
    python = FO_VENV / "bin" / "python"
    if not python.exists():
        pytest.fail(f"no FiftyOne virtualenv at {FO_VENV}: run `make fiftyone-venv` (`make test` does)")
    env = {
        **os.environ,
        "FIFTYONE_DATABASE_URI": fo_mongo,
        # the hub's mongod is 6.0, which FiftyOne 1.22 calls its oldest supported major version
        "FIFTYONE_DATABASE_VALIDATION": "false",
        "FIFTYONE_DO_NOT_TRACK": "true",  # no usage analytics: tests reach no network
        "HOME": str(tmp_path_factory.mktemp("fiftyone-home")),  # FiftyOne's ~/.fiftyone
    }
    env.pop("PYTHONPATH", None)

    def run(*args: str) -> Any:
        done = subprocess.run([str(python), str(SIDE), *args], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"FiftyOne failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
        return json.loads(done.stdout.strip().splitlines()[-1])

    return run


def modelhub(stack: Stack, *args: str) -> subprocess.CompletedProcess:
    """The `modelhub` command as a user runs it, on this stack (its URL and token from DIR)."""
    env = {**os.environ, "MODELHUB_DATA_DIR": str(stack.data_dir)}
    env.pop("MODELHUB_URL", None)
    env.pop("MODELHUB_TOKEN", None)
    done = subprocess.run(
        [sys.executable, "-m", "modelhub", *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"modelhub {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


def picture(path: Path, size: tuple[int, int], colour: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def samples_of(stack: Stack, dataset: str, **params: Any) -> dict:
    response = stack.client.get(f"/datasets/{dataset}/samples", params={"limit": 100, **params})
    assert response.status_code == 200, response.text
    return response.json()


BOXES = {
    "detections": [
        {"label": "dog", "confidence": 0.8, "bounding_box": [0.1, 0.2, 0.3, 0.4]},
        {"label": "cat", "confidence": 0.6, "bounding_box": [0.5, 0.5, 0.25, 0.5]},
    ]
}


def test_a_hub_dataset_exported_as_fiftyone_loads_in_fiftyone(
    fiftyone: Callable[..., Any], stack: Stack, tmp_path: Path
) -> None:
    """Classification fields come out as Classification, detections as Detections with the same
    relative [x, y, w, h] boxes, the files copied under data/; other fields as their JSON."""
    name = unique("fo-out")
    first, second = picture(tmp_path / "m/a.png", (64, 32), "red"), picture(tmp_path / "m/b.png", (20, 40), "blue")
    gone = str(tmp_path / "m/gone.png")  # a sample whose file is not there: the export keeps its path
    rows = [
        {
            "filepath": str(first),
            "fields": {
                "gt": {"label": "cat"},
                "pred": {"label": "cat", "confidence": 0.9},
                "boxes": BOXES,
                "tags": ["train"],
                "score": 0.5,
                "note": "hello",
                "extra": {"k": [1, 2]},
                "metadata": {"camera": "x"},
            },
        },
        {
            "filepath": str(second),
            "fields": {"pred": {"label": "dog", "confidence": 0.4}, "boxes": {"detections": []}, "score": 1},
        },
        {"filepath": gone, "fields": {"gt": {"label": "dog"}}},
    ]
    assert stack.client.post("/datasets", json={"name": name, "description": "for FiftyOne"}).status_code == 201
    assert stack.client.post(f"/datasets/{name}/samples", json={"samples": rows}).status_code == 201
    out = tmp_path / "export"

    done = modelhub(stack, "datasets", "export", name, "--format", "fiftyone", str(out))

    assert f"exported 3 samples of {name}" in done.stderr and "2 files copied into data/" in done.stderr
    assert "1 files could not be read here" in done.stderr and gone in done.stderr
    assert (out / "data/a.png").read_bytes() == first.read_bytes()

    loaded = fiftyone("load", str(out))

    assert loaded["schema"]["gt"] == CLASSIFICATION and loaded["schema"]["pred"] == CLASSIFICATION
    assert loaded["schema"]["boxes"] == DETECTIONS
    assert loaded["schema"]["score"] == "fiftyone.core.fields.FloatField"
    assert loaded["schema"]["hub_metadata"] == "fiftyone.core.fields.DictField"
    one, two, three = loaded["samples"]
    assert one["filepath"] == str(out / "data/a.png") and one["file_exists"] and one["tags"] == ["train"]
    assert one["gt"] == {"_cls": "Classification", "tags": [], "label": "cat"}  # confidence None: not serialised
    assert one["pred"]["label"] == "cat" and one["pred"]["confidence"] == 0.9
    assert [(d["_cls"], d["label"], d["bounding_box"], d["confidence"]) for d in one["boxes"]["detections"]] == [
        ("Detection", "dog", [0.1, 0.2, 0.3, 0.4], 0.8),
        ("Detection", "cat", [0.5, 0.5, 0.25, 0.5], 0.6),
    ]
    assert (one["score"], one["note"], one["extra"], one["hub_metadata"]) == (
        0.5,
        "hello",
        {"k": [1, 2]},
        {"camera": "x"},
    )
    assert two["filepath"] == str(out / "data/b.png") and two["boxes"]["detections"] == [] and two["score"] == 1.0
    assert three["filepath"] == gone and not three["file_exists"] and three["gt"]["label"] == "dog"
    assert loaded["counts"]["pred.label"] == {"cat": 1, "dog": 1, "null": 1}  # (JSON's name for None)
    assert loaded["counts"]["boxes.detections.label"] == {"dog": 1, "cat": 1}
    assert loaded["info"]["modelhub"]["renamed_fields"] == {"hub_metadata": "metadata"}


def test_a_fiftyone_export_imports_into_the_hub_and_goes_back_out(
    fiftyone: Callable[..., Any], stack: Stack, tmp_path: Path
) -> None:
    """Ground truth and predictions made in FiftyOne become hub fields the hub's own filters and
    thumbnails read; exported again, FiftyOne finds the labels it made."""
    images = [
        picture(tmp_path / "fo-made/cat.png", (40, 30), "green"),
        picture(tmp_path / "fo-made/dog.png", (30, 40), "white"),
    ]
    fo_dir, media = tmp_path / "fo-export", tmp_path / "media"
    made = fiftyone("make", str(fo_dir), *map(str, images))
    name = unique("fo-in")

    done = modelhub(
        stack, "datasets", "import", name, "--format", "fiftyone", str(fo_dir), "--media-dir", str(media), "--json"
    )

    report = json.loads(done.stdout)
    assert report["created"] and report["added"] == 2 and report["copied"] == 2
    assert report["skipped"] == [] and report["missing"] == []
    assert report["left_out"] == {"objects.detections.mask left out: binary data (the hub stores JSON)": 1}
    first, second = samples_of(stack, name)["items"]
    assert first["fields"] == {
        "tags": ["train"],
        "ground_truth": {"label": "cat"},
        "objects": {
            "detections": [
                {"label": "cat", "bounding_box": [0.1, 0.2, 0.5, 0.4], "confidence": 0.9},
                {"label": "ball", "bounding_box": [0.6, 0.6, 0.2, 0.25]},
            ]
        },
        "weight": 3,
        # a label type the hub has none for keeps its class, for the way back to FiftyOne
        "attributes": {"_cls": "Classifications", "classifications": [{"label": "indoor", "confidence": 0.7}]},
    }
    assert second["fields"] == {
        "ground_truth": {"label": "dog"},
        "objects": {"detections": [{"label": "dog", "bounding_box": [0, 0, 1, 1]}]},
        "weight": 5,
    }
    # the files were copied where the hub reads them, and it does
    assert Path(first["filepath"]).parent == media and Path(first["filepath"]).read_bytes() == images[0].read_bytes()
    thumbnail = stack.client.get(f"/datasets/{name}/samples/{first['id']}/thumbnail", params={"size": 64})
    assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/jpeg"
    # the hub's label filters read imported ground truth and detections like model outputs
    assert samples_of(stack, name, field="ground_truth", label="dog")["total"] == 1
    assert samples_of(stack, name, field="objects", label="cat", min_confidence=0.8)["total"] == 1

    out = tmp_path / "back"
    modelhub(stack, "datasets", "export", name, "--format", "fiftyone", str(out), "--media", "skip")
    back = fiftyone("load", str(out))

    def labels(sample: dict) -> dict:
        return {k: sample.get(k) for k in ("tags", "ground_truth", "objects", "weight", "attributes")}

    original = [labels(s) for s in made["samples"]]
    for sample in original:  # the mask is what the hub could not hold
        for detection in sample["objects"]["detections"]:
            detection.pop("mask", None)
    assert [labels(s) for s in back["samples"]] == original
    assert (
        back["schema"]["attributes"]
        == "fiftyone.core.fields.EmbeddedDocumentField(fiftyone.core.labels.Classifications)"
    )
    assert [s["filepath"] for s in back["samples"]] == [first["filepath"], second["filepath"]]
