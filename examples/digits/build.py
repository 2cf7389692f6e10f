"""Build the digits example: a packaged model, its schema and an image data set.

    .venv/bin/python examples/digits/build.py [--out examples/digits/build]

Trains a small MLP with scikit-learn on the first 1,400 images of
``sklearn.datasets.load_digits()`` (bundled, no network) and writes to OUT:

    digits-classifier.zip   model.py + weights.npz + manifest.json
    schema.json             the model schema to upload with the zip
    dataset/digit-NNNN.png  the other 397 digits, upscaled to 32x32
    dataset/labels.json     file name -> true label

It then unpacks the zip and runs its Model on the PNG files to report accuracy.
The output is deterministic: the same inputs give byte-identical files.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.neural_network import MLPClassifier

HERE = Path(__file__).resolve().parent
MODEL_PY = HERE / "model" / "model.py"
N_TRAIN = 1400
PNG_SIDE = 32
ZIP_DATE = (2024, 1, 1, 0, 0, 0)  # fixed timestamps keep the archives byte-identical
SCHEMA = {
    "inputs": {"type": "object", "properties": {"image_paths": {"type": "local"}}},
    "outputs": {"type": "object", "properties": {"predictions": {"type": "classification"}}},
}


def shifted(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The images plus copies moved one pixel up, down, left and right."""
    out = [images]
    for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        moved = np.zeros_like(images)
        moved[:, max(dy, 0) : 8 + min(dy, 0), max(dx, 0) : 8 + min(dx, 0)] = images[
            :, max(-dy, 0) : 8 + min(-dy, 0), max(-dx, 0) : 8 + min(-dx, 0)
        ]
        out.append(moved)
    return np.concatenate(out), np.tile(labels, len(out))


def train(images: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    x, y = shifted(images, labels)
    clf = MLPClassifier(hidden_layer_sizes=(64,), alpha=0.1, max_iter=1000, random_state=0)
    clf.fit(x.reshape(len(x), -1) / 16.0, y)
    return {
        "x_scale": np.array(1.0 / 16.0),
        "w1": clf.coefs_[0],
        "b1": clf.intercepts_[0],
        "w2": clf.coefs_[1],
        "b2": clf.intercepts_[1],
        "classes": clf.classes_.astype(np.int64),
    }


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return buf.getvalue()


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """Like numpy.savez, but with fixed timestamps; loads with allow_pickle=False."""
    files = {}
    for name, arr in arrays.items():
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=False)
        files[name + ".npy"] = buf.getvalue()
    return zip_bytes(files)


def write_dataset(images: np.ndarray, labels: np.ndarray, out: Path) -> dict[str, str]:
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("digit-*.png"):
        old.unlink()
    truth = {}
    for i, (img, label) in enumerate(zip(images, labels, strict=True)):
        name = f"digit-{i:04d}.png"
        pixels = np.rint(img * (255.0 / 16.0)).astype(np.uint8)
        Image.fromarray(pixels, "L").resize((PNG_SIDE, PNG_SIDE), Image.Resampling.NEAREST).save(out / name)
        truth[name] = str(int(label))
    (out / "labels.json").write_text(json.dumps(truth, indent=1) + "\n")
    return truth


def evaluate(package: Path, dataset: Path, truth: dict[str, str]) -> float:
    """Unpack the zip and run its Model, as a replica would, on the PNG files."""
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(package) as zf:
            zf.extractall(tmp)
        spec = importlib.util.spec_from_file_location("digits_package_model", Path(tmp) / "model.py")
        assert spec is not None and spec.loader is not None, "model.py is a Python file"
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return accuracy(module.Model(tmp), dataset, truth, "image_paths", "predictions")


def accuracy(model, dataset: Path, truth: dict[str, str], image_input: str, output: str) -> float:
    """The share of PNG files whose predicted label is the truth, asked 64 files a call as a
    mini-batch would (`model.predict({image_input: [path, ...]})[output]`)."""
    names = sorted(truth)
    preds = []
    for start in range(0, len(names), 64):
        chunk = [str(dataset / n) for n in names[start : start + 64]]
        preds += model.predict({image_input: chunk})[output]
    assert len(preds) == len(names)
    return sum(p["label"] == truth[n] for n, p in zip(names, preds, strict=True)) / len(names)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=HERE / "build", help="output folder (default: %(default)s)")
    args = ap.parse_args(argv)
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()

    data, target = load_digits(return_X_y=True)
    labels = np.asarray(target)  # typed as arrays (sklearn's stubs also allow pandas' frames)
    images = np.asarray(data).reshape(-1, 8, 8)  # the 8x8 images, flattened in `data`
    weights = train(images[:N_TRAIN], labels[:N_TRAIN])

    package = out / "digits-classifier.zip"
    package.write_bytes(
        zip_bytes(
            {
                "model.py": MODEL_PY.read_bytes(),
                "weights.npz": npz_bytes(weights),
                "manifest.json": json.dumps({"entrypoint": "model:Model"}, indent=2).encode() + b"\n",
            }
        )
    )
    schema = out / "schema.json"
    schema.write_text(json.dumps(SCHEMA, indent=2) + "\n")
    dataset = out / "dataset"
    truth = write_dataset(images[N_TRAIN:], labels[N_TRAIN:], dataset)

    print(f"trained on {N_TRAIN} digits, {len(truth)} held out")
    print(f"wrote {package} ({package.stat().st_size} bytes)")
    print(f"wrote {schema}")
    print(f"wrote {dataset}/digit-0000.png .. digit-{len(truth) - 1:04d}.png and labels.json")
    accuracy = evaluate(package, dataset, truth)
    print(f"packaged model accuracy on the dataset PNGs: {accuracy:.1%} ({time.monotonic() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
