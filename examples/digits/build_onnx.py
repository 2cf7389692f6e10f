"""Build the digits example as an ONNX package: a model file and a manifest, no code.

    .venv/bin/python examples/digits/build_onnx.py [--out examples/digits/build]

Trains the same small MLP as build.py (scikit-learn, the first 1,400 of
``sklearn.datasets.load_digits()``), exports it with skl2onnx, and writes to OUT:

    digits-onnx.zip           model.onnx + manifest.json ({"format": "onnx", ...})
    digits-onnx-schema.json   the model schema to upload with it
    dataset/                  the 397 held-out digits as PNGs (as build.py writes them)

It then runs the package through the replica's own ONNX adapter
(services/deployer/modelhub_replica/modelhub_formats/onnx_model.py), as a deployment would, on
the PNG files and reports the accuracy. The model reads 64 pixels scaled to [0, 1] (the 8x8
digits' 0..16, divided by 16); the manifest says how a PNG becomes that: grayscale, shrunk to
8x8 by area averaging, pixel / 255.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from onnx import ModelProto
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType, Int64TensorType
from sklearn.datasets import load_digits
from sklearn.neural_network import MLPClassifier

HERE = Path(__file__).resolve().parent
ADAPTERS = HERE.parents[1] / "services" / "deployer" / "modelhub_replica"
LABELS = [str(d) for d in range(10)]
MANIFEST = {
    "format": "onnx",
    "onnx": {
        "file": "model.onnx",
        "input": "image",
        "output": "probabilities",
        "output_kind": "probabilities",  # scikit-learn's predict_proba: no softmax on top
        "image": {"size": [8, 8], "color": "L", "resample": "box", "scale": 1 / 255},
        "labels": LABELS,
    },
}
SCHEMA = {
    "inputs": {"type": "object", "properties": {"image": {"type": "local"}}},
    "outputs": {"type": "object", "properties": {"probabilities": {"type": "classification"}}},
}


def _sibling(name: str):
    """build.py's helpers (training data, the dataset's PNGs, reproducible zips)."""
    spec = importlib.util.spec_from_file_location(f"digits_{name}", HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def export(images: np.ndarray, labels: np.ndarray, shifted) -> bytes:
    """The MLP of build.py, trained on pixels / 16, as ONNX: input `image` [N, 64] float, outputs
    `label` and `probabilities` [N, 10] (a plain tensor, not skl2onnx's default ZipMap)."""
    x, y = shifted(images, labels)
    clf = MLPClassifier(hidden_layer_sizes=(64,), alpha=0.1, max_iter=1000, random_state=0)
    clf.fit(x.reshape(len(x), -1) / 16.0, y)
    model = convert_sklearn(
        clf,
        initial_types=[("image", FloatTensorType([None, 64]))],
        final_types=[("label", Int64TensorType([None])), ("probabilities", FloatTensorType([None, 10]))],
        options={id(clf): {"zipmap": False}},
    )
    assert isinstance(model, ModelProto)  # (convert_sklearn can also answer a topology; not asked here)
    return model.SerializeToString()


def evaluate(package: Path, dataset: Path, truth: dict[str, str]) -> float:
    """Unpack the zip and run it with the replica's ONNX adapter, on the PNG files."""
    sys.path.insert(0, str(ADAPTERS))
    adapter = importlib.import_module("modelhub_formats.onnx_model")

    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(package) as zf:
            zf.extractall(tmp)
        return _sibling("build").accuracy(adapter.Model(tmp), dataset, truth, "image", "probabilities")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=HERE / "build", help="output folder (default: %(default)s)")
    args = ap.parse_args(argv)
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    build = _sibling("build")

    data, labels = (np.asarray(a) for a in load_digits(return_X_y=True))
    images = data.reshape(-1, 8, 8)
    onnx_bytes = export(images[: build.N_TRAIN], labels[: build.N_TRAIN], build.shifted)
    package = out / "digits-onnx.zip"
    manifest = json.dumps(MANIFEST, indent=2).encode() + b"\n"
    package.write_bytes(build.zip_bytes({"model.onnx": onnx_bytes, "manifest.json": manifest}))
    schema = out / "digits-onnx-schema.json"
    schema.write_text(json.dumps(SCHEMA, indent=2) + "\n")
    dataset = out / "dataset"
    truth = build.write_dataset(images[build.N_TRAIN :], labels[build.N_TRAIN :], dataset)

    print(f"wrote {package} ({package.stat().st_size} bytes): model.onnx + manifest.json")
    print(f"wrote {schema}")
    print(f"wrote {dataset}/digit-0000.png .. digit-{len(truth) - 1:04d}.png and labels.json")
    accuracy = evaluate(package, dataset, truth)
    print(f"ONNX package accuracy on the dataset PNGs: {accuracy:.1%} ({time.monotonic() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
