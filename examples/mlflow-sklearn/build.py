"""Build the MLflow example: a scikit-learn classifier saved the way MLflow saves it, zipped as is.

    .venv/bin/python examples/mlflow-sklearn/build.py [--out examples/mlflow-sklearn/build]

Trains a logistic regression on 120 of the 150 rows of scikit-learn's bundled iris data (no
network), saves it with `mlflow.sklearn.save_model` and a signature (four `double` columns in, the
species name out), and writes to OUT:

    iris-mlflow.zip     the saved folder iris_model/ as `zip -r iris-mlflow.zip iris_model/` packs it:
                        MLmodel, model.skops, requirements.txt, python_env.yaml, conda.yaml
    rows/iris-NNN.json  the other 30 rows, one file each (the measurements and the true species)
    samples.json        those rows as a `POST /api/v1/datasets/{name}/samples` body: each file as a
                        sample whose fields are its measurements and `species`

No model.py and no schema: modelhub runs the saved model with `mlflow.pyfunc.load_model` and
derives the schema from the signature. It then loads the saved model back with MLflow and reports
its accuracy on the held-out rows.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from mlflow.sklearn import save_model
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

HERE = Path(__file__).resolve().parent
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
N_TRAIN = 120
ZIP_DATE = (2024, 1, 1, 0, 0, 0)


def data() -> tuple[pd.DataFrame, np.ndarray]:
    """The iris measurements (columns named as the signature will name them) and species names,
    shuffled once with a fixed seed so that training and held-out rows hold every species."""
    iris: Any = load_iris()  # a Bunch (sklearn types it as a union with the return_X_y tuple)
    order = np.random.default_rng(0).permutation(len(iris.target))
    frame = pd.DataFrame(iris.data[order], columns=COLUMNS)
    return frame, iris.target_names[iris.target[order]]


def save(model: LogisticRegression, x: pd.DataFrame, folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    # The requirements are stated rather than inferred (MLflow infers them by running the model in
    # a subprocess): they are what the model's custom env would install.
    requirements = [
        f"{name}=={importlib.metadata.version(name)}" for name in ("mlflow-skinny", "scikit-learn", "skops")
    ]
    save_model(
        model,
        str(folder),
        signature=infer_signature(x, model.predict(x)),
        pip_requirements=requirements,
    )


def zip_folder(folder: Path, package: Path) -> None:
    """As `zip -r` packs a folder: every file under `<folder name>/` (fixed dates: same bytes)."""
    with zipfile.ZipFile(package, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                info = zipfile.ZipInfo(f"{folder.name}/{path.relative_to(folder).as_posix()}", date_time=ZIP_DATE)
                info.compress_type, info.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
                zf.writestr(info, path.read_bytes())


def write_samples(x: pd.DataFrame, species: np.ndarray, out: Path) -> list[dict]:
    rows = out / "rows"
    shutil.rmtree(rows, ignore_errors=True)
    rows.mkdir(parents=True)
    samples = []
    for i, (values, name) in enumerate(zip(x.to_dict("records"), species, strict=True)):
        fields = {**{k: float(v) for k, v in values.items()}, "species": str(name)}
        path = rows / f"iris-{i:03d}.json"
        path.write_text(json.dumps(fields) + "\n")
        samples.append({"filepath": str(path), "fields": fields})
    (out / "samples.json").write_text(json.dumps({"samples": samples}, indent=1) + "\n")
    return samples


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=HERE / "build", help="output folder (default: %(default)s)")
    args = ap.parse_args(argv)
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)

    x, species = data()
    train, held_out = x.head(N_TRAIN), x.tail(len(x) - N_TRAIN).reset_index(drop=True)
    model = LogisticRegression(max_iter=1000).fit(train, species[:N_TRAIN])
    folder = out / "iris_model"
    save(model, train, folder)
    package = out / "iris-mlflow.zip"
    zip_folder(folder, package)
    samples = write_samples(held_out, species[N_TRAIN:], out)

    loaded = mlflow.pyfunc.load_model(str(folder))  # as modelhub's model process will load it
    predicted = loaded.predict(held_out)
    accuracy = float(np.mean(np.asarray(predicted) == species[N_TRAIN:]))
    print(f"trained on {N_TRAIN} iris rows, {len(samples)} held out")
    print(f"wrote {package} ({package.stat().st_size} bytes): {', '.join(sorted(p.name for p in folder.iterdir()))}")
    print(f"wrote {out / 'samples.json'} and {out / 'rows'}/iris-000.json ..")
    print(f"the saved model's accuracy on the held-out rows (mlflow.pyfunc.load_model): {accuracy:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
