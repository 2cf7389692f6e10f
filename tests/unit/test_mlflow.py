"""MLflow models as saved (API.md section 3, "MLflow models"), without a stack: the package is
recognised, its MLmodel read as data, its signature gives or checks the schema, the deployer
refuses what the hub cannot serve, and the replica's adapter runs real MLflow models (saved here
with the real `mlflow` package) and maps their results. tests/integration/test_mlflow.py runs one
through the whole stack."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.metadata
import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature
from mlflow.pyfunc.model import PythonModel
from mlflow.sklearn import save_model as save_sklearn
from sklearn.linear_model import LogisticRegression
from test_deployer import FakeServe, MemoryStore, make_spec

from modelhub_contracts.events import AddVersion, RpcReply
from modelhub_contracts.mlmodel import MLmodelError, model_schema, parse_mlmodel, signature
from modelhub_contracts.package import FORMAT_ENTRYPOINTS, PackageError, PackageLimits, inspect_package
from modelhub_deployer import mlflow_env, serving
from modelhub_deployer.deploy import Deployer, DeployError, PreparedPackage, check_mlflow, runtime_env
from modelhub_deployer.environments import Host
from modelhub_gateway.models import name_types
from modelhub_registry.models import _checked
from modelhub_replica import host, jail
from modelhub_replica.jail import JailSpec, ModelProcess
from modelhub_replica.modelhub_formats.mlflow_model import Model

pytestmark = pytest.mark.timeout(120)

IRIS_COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
ONE_ROW = {"sepal_length": [5.1], "sepal_width": [3.5], "petal_length": [1.4], "petal_width": [0.2]}
TICK = "tick custom env to build the model's own environment from its requirements.txt"


def zipped(folder: Path, out: Path, prefix: str = "") -> Path:
    """The folder's files in a zip, under `prefix` (as `zip -r m.zip my_model/` writes them)."""
    with zipfile.ZipFile(out, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, prefix + path.relative_to(folder).as_posix())
    return out


@pytest.fixture(scope="module")
def iris(tmp_path_factory) -> Path:
    """A real scikit-learn model saved by mlflow.sklearn with a column signature (4 doubles in,
    an unnamed int64 tensor out: the class per row)."""
    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(60, 4)), columns=IRIS_COLUMNS)
    y = (x["petal_length"] > 0).astype(int) + (x["petal_width"] > 1).astype(int)
    clf = LogisticRegression(max_iter=500).fit(x, y)
    folder = tmp_path_factory.mktemp("iris") / "iris_model"
    # stated requirements: inferring them runs the model in a subprocess, seconds per save
    requirements = ["mlflow-skinny", "scikit-learn", "skops"]
    save_sklearn(clf, str(folder), signature=infer_signature(x, clf.predict(x)), pip_requirements=requirements)
    return folder


def pyfunc(tmp: Path, mode: str, sig: Any = None) -> Path:
    """A real MLflow PythonModel whose predict returns its result as `mode` says (a class made
    here, so that cloudpickle saves it by value and a jailed process can load it)."""

    class Echo(PythonModel):
        def predict(self, context, model_input, params=None):
            text = model_input["text"].tolist()
            n = np.array([len(t) for t in text])
            if mode == "frame":
                return pd.DataFrame({"label": [t.upper() for t in text], "size": n})
            if mode == "dict":
                return {"label": np.array([t.upper() for t in text]), "size": n}
            if mode == "series":
                return pd.Series(n)
            if mode == "list":
                return [{"n": np.int64(v), "v": np.arange(2)} for v in n]
            if mode == "short":
                return n[:-1]
            return n

    folder = tmp / f"echo_{mode}"
    shutil.rmtree(folder, ignore_errors=True)
    mlflow.pyfunc.save_model(str(folder), python_model=Echo(), signature=sig, pip_requirements=["mlflow-skinny"])
    return folder


def mlmodel_of(folder: Path) -> dict:
    return parse_mlmodel((folder / "MLmodel").read_bytes())


# ---------------------------------------------------------------- the package


def test_an_mlflow_directory_is_a_package_of_format_mlflow_flat_or_zipped_as_a_folder(iris, tmp_path):
    flat = inspect_package(zipped(iris, tmp_path / "flat.zip"))
    assert (flat.format, flat.root, flat.entrypoint) == ("mlflow", "", FORMAT_ENTRYPOINTS["mlflow"])
    assert flat.has_requirements and "MLmodel" in flat.files
    folder = inspect_package(zipped(iris, tmp_path / "folder.zip", prefix="iris_model/"))
    assert (folder.format, folder.root) == ("mlflow", "iris_model/")


def test_a_package_with_its_own_model_py_stays_python_even_beside_an_mlmodel(tmp_path):
    path = tmp_path / "p.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("MLmodel", "flavors: {python_function: {}}\n")
        zf.writestr("model.py", "class Model: pass\n")
    assert (inspect_package(path).format, inspect_package(path).entrypoint) == ("python", "model:Model")
    with zipfile.ZipFile(tmp_path / "none.zip", "w") as zf:
        zf.writestr("README", "no model here")
    with pytest.raises(PackageError, match="needs model.py"):
        inspect_package(tmp_path / "none.zip")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (b"a: &x [1, 2]\nb: *x\n", "aliases"),
        (b"- just a list\n", "must be a YAML mapping"),
        (b"flavors: {sklearn: {}}\n", "no python_function flavor"),
        (b"flavors: [: oops", "not valid YAML"),
        (b"!!python/object:os.system {}\n", "not valid YAML"),
        (b"x: " + b"y" * (1 << 20) + b"\n", "over 1048576 bytes"),
    ],
)
def test_mlmodel_is_read_as_bounded_plain_yaml(text, reason):
    with pytest.raises(MLmodelError, match=reason):
        parse_mlmodel(text)


# ---------------------------------------------------------------- the schema


def test_the_schema_is_derived_from_the_signature_with_the_types_the_user_states(iris):
    derived = model_schema(mlmodel_of(iris), None)
    assert derived == {
        "inputs": {"type": "object", "properties": {c: {"type": "number"} for c in IRIS_COLUMNS}},
        "outputs": {"type": "object", "properties": {"predictions": {"type": "json"}}},
    }
    assert model_schema(mlmodel_of(iris), None, output_types={"predictions": "number"})["outputs"] == {
        "type": "object",
        "properties": {"predictions": {"type": "number"}},
    }


def test_string_columns_are_text_unless_stated_local_and_named_outputs_keep_their_names(tmp_path):
    sig = infer_signature(
        pd.DataFrame({"image": ["/a.png"], "caption": ["x"], "n": [1]}), pd.DataFrame({"label": ["a"], "p": [0.5]})
    )
    mlmodel = mlmodel_of(pyfunc(tmp_path, "frame", sig))
    derived = model_schema(mlmodel, None, ["image"], {"p": "number"})
    assert derived["inputs"]["properties"] == {
        "image": {"type": "local"},
        "caption": {"type": "text"},
        "n": {"type": "number"},
    }
    assert derived["outputs"]["properties"] == {"label": {"type": "json"}, "p": {"type": "number"}}
    with pytest.raises(MLmodelError, match="local input 'n' must be a string column"):
        model_schema(mlmodel, None, ["n"])
    with pytest.raises(MLmodelError, match="local input 'nope' is not an input"):
        model_schema(mlmodel, None, ["nope"])
    with pytest.raises(MLmodelError, match="output 'q' is not an output of the MLflow signature"):
        model_schema(mlmodel, None, [], {"q": "number"})
    with pytest.raises(MLmodelError, match="type 'float' is not one of"):
        model_schema(mlmodel, None, [], {"p": "float"})


def schema_of(inputs: list[str], outputs: list[str]) -> dict:
    return {
        "inputs": {"type": "object", "properties": {n: {"type": "number"} for n in inputs}},
        "outputs": {"type": "object", "properties": {n: {"type": "json"} for n in outputs}},
    }


def test_a_schema_sent_with_a_signed_model_must_name_what_the_signature_names(iris):
    mlmodel = mlmodel_of(iris)
    good = schema_of(IRIS_COLUMNS, ["predictions"])
    assert model_schema(mlmodel, good) is good
    with pytest.raises(MLmodelError) as caught:
        model_schema(mlmodel, schema_of([*IRIS_COLUMNS[:3], "petal"], ["label"]))
    message = str(caught.value)
    assert "input(s) 'petal_width' of the signature are missing from the schema" in message
    assert "input(s) 'petal' are not in the signature" in message
    assert "output(s) 'label' are not in the signature" in message
    assert "the signature's output has no name, so modelhub calls it 'predictions'" in message
    with pytest.raises(MLmodelError, match="local_inputs and output_types describe a schema derived"):
        model_schema(mlmodel, good, ["sepal_length"])


def test_without_signature_a_schema_is_needed_and_any_schema_is_taken(tmp_path):
    mlmodel = mlmodel_of(pyfunc(tmp_path, "array"))
    assert signature(mlmodel) is None
    with pytest.raises(MLmodelError, match="a schema is needed: this MLflow model has no signature"):
        model_schema(mlmodel, None)
    assert model_schema(mlmodel, schema_of(["text"], ["n"])) == schema_of(["text"], ["n"])


def test_a_tensor_signature_needs_a_schema_and_leaves_its_input_names_unchecked(tmp_path):
    sig = infer_signature(np.zeros((2, 3)), np.zeros(2))
    mlmodel = mlmodel_of(pyfunc(tmp_path, "array", sig))
    with pytest.raises(MLmodelError, match="inputs have no column names"):
        model_schema(mlmodel, None)
    assert model_schema(mlmodel, schema_of(["a", "b", "c"], ["predictions"]))


async def test_the_registry_derives_stores_the_format_and_refuses_with_400(iris, tmp_path):
    package = zipped(iris, tmp_path / "iris.zip", prefix="iris_model/")

    async def checked(path: Path, **kw: Any) -> Any:
        return await _checked(path, PackageLimits(), AddVersion(name="m", upload_object="o", acting_user="u", **kw))

    schema, info = await checked(package)
    assert info.format == "mlflow" and set(schema["inputs"]["properties"]) == set(IRIS_COLUMNS)
    refusal = await checked(package, model_schema=schema_of(["x"], ["y"]))
    assert isinstance(refusal, RpcReply) and refusal.status == 400
    assert str(refusal.detail).startswith("the schema does not match the MLflow model's signature: ")
    python = tmp_path / "python.zip"
    with zipfile.ZipFile(python, "w") as zf:
        zf.writestr("model.py", "class Model: pass\n")
    refusal = await checked(python)
    assert isinstance(refusal, RpcReply) and refusal.status == 400 and "a schema is needed" in str(refusal.detail)
    refusal = await checked(python, model_schema=schema_of(["x"], ["y"]), local_inputs=["x"])
    assert isinstance(refusal, RpcReply) and "apply only to an MLflow model" in str(refusal.detail)


def test_the_gateway_reads_output_types_as_name_type_pairs():
    assert name_types("predictions=number, p = json") == {"predictions": "number", "p": "json"}
    assert name_types("") == {}
    with pytest.raises(Exception, match="is not name=type"):
        name_types("predictions")


# ---------------------------------------------------------------- the deployer


def write_mlmodel(root: Path, flavors: dict, files: dict[str, str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "MLmodel").write_text(json.dumps({"flavors": flavors}))  # JSON is YAML
    for name, text in (files or {}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


HUB = {"mlflow-skinny": "3.18.0", "pandas": "3.1.1", "scikit-learn": "1.9.1", "skops": "0.16.0", "cloudpickle": "3.1.3"}


def refusal_of(root: Path, provided: dict = HUB) -> str | None:
    return mlflow_env.hub_refusal(mlflow_env.read_mlmodel(root), root, provided)


def test_the_hub_serves_sklearn_pyfunc_and_packaged_loaders_and_refuses_other_flavors(iris, tmp_path):
    assert refusal_of(iris, mlflow_env.hub_packages()) is None  # saved here, with the hub's own scikit-learn
    assert refusal_of(pyfunc(tmp_path, "array")) is None
    own = write_mlmodel(
        tmp_path / "own",
        {"python_function": {"loader_module": "my_loader", "code": "code"}},
        {"code/my_loader.py": "def _load_pyfunc(path): ..."},
    )
    assert refusal_of(own) is None
    torch = write_mlmodel(tmp_path / "torch", {"python_function": {"loader_module": "mlflow.pytorch"}, "pytorch": {}})
    assert refusal_of(torch) == f"this MLflow model's flavor pytorch needs packages the hub does not provide; {TICK}"
    lost = write_mlmodel(tmp_path / "lost", {"python_function": {"loader_module": "my_loader", "code": "code"}})
    assert "loader module 'my_loader' is neither MLflow's nor in the package's code folder" in str(refusal_of(lost))


def test_a_sklearn_model_from_another_minor_version_or_without_its_loader_is_refused(tmp_path):
    def sklearn(version: str, fmt: str = "skops") -> Path:
        flavors = {"python_function": {"loader_module": "mlflow.sklearn"}, "sklearn": {"sklearn_version": version}}
        flavors["sklearn"]["serialization_format"] = fmt
        return write_mlmodel(tmp_path / f"sk-{version}-{fmt}", flavors)

    assert refusal_of(sklearn("1.9.0")) is None and refusal_of(sklearn("1.9.1", "pickle")) is None
    old = refusal_of(sklearn("1.3.2"))
    assert old is not None and "saved with scikit-learn 1.3.2 and the hub provides scikit-learn 1.9.1" in old
    assert old.endswith(TICK)
    assert refusal_of(sklearn("1.9.1"), {k: v for k, v in HUB.items() if k != "skops"}) == (
        f"this MLflow model's flavor sklearn needs packages the hub does not provide; {TICK}"
    )


def test_a_custom_env_comes_from_python_env_yaml_on_the_replicas_python_only(tmp_path):
    root = write_mlmodel(
        tmp_path / "env",
        {"python_function": {"loader_module": "mlflow.pytorch"}},
        {
            "python_env.yaml": "python: 3.11.7\ndependencies:\n- mlflow-skinny==3.18.0\n- -r extra.txt\n",
            "extra.txt": "# torch for the model\ntorch==2.9.0\n",
        },
    )
    assert mlflow_env.python_env_pip(root) == ["mlflow-skinny==3.18.0", "torch==2.9.0"]
    assert mlflow_env.python_refusal(root, (3, 11)) is None
    assert "asks for Python 3.11.7 (python_env.yaml) and the hub's replicas run Python 3.12" in str(
        mlflow_env.python_refusal(root, (3, 12))
    )
    package = PreparedPackage(root, tmp_path / "p.zip", FORMAT_ENTRYPOINTS["mlflow"], False, False, "mlflow")
    plan = runtime_env(make_spec(custom_env=True), package, Host())
    assert plan is not None and plan.route == "pip" and plan.file == "python_env.yaml"
    assert plan.runtime_env == {"pip": ["mlflow-skinny==3.18.0", "torch==2.9.0"]}
    check_mlflow(make_spec(custom_env=True), package)  # torch is the custom env's business
    with pytest.raises(DeployError, match="flavor pytorch needs packages"):
        check_mlflow(make_spec(custom_env=False), package)


class MlflowPackages:
    def __init__(self, root: Path) -> None:
        self.root = root

    async def prepare(self, name: str, package_object: str, sha256: str) -> PreparedPackage:
        return PreparedPackage(self.root, self.root / "p.zip", FORMAT_ENTRYPOINTS["mlflow"], True, False, "mlflow")


async def test_a_deploy_the_hub_cannot_serve_fails_at_once_saying_to_tick_custom_env(tmp_path):
    root = write_mlmodel(tmp_path / "torch", {"python_function": {"loader_module": "mlflow.pytorch"}, "pytorch": {}})
    store, serve = MemoryStore(), FakeServe()
    deployer = Deployer(store, serve, MlflowPackages(root), timeout_s=0.3, replica_node_wait_s=0.2, poll_s=0.01)
    spec = make_spec()
    store.add(spec)
    await deployer.request(spec)
    await asyncio.wait_for(deployer.join(spec.name), 5)
    doc = store.docs[spec.name]
    assert doc["status"] == "failed" and serve.submitted == []
    assert doc["error"] == f"this MLflow model's flavor pytorch needs packages the hub does not provide; {TICK}"


def test_the_replica_zip_ships_the_format_adapters_and_the_jail_binds_them_beside_host_py(tmp_path):
    _, data = serving.replica_module_zip()
    (tmp_path / "r.zip").write_bytes(data)
    names = zipfile.ZipFile(tmp_path / "r.zip").namelist()
    assert {
        "modelhub_replica/modelhub_formats/__init__.py",
        "modelhub_replica/modelhub_formats/mlflow_model.py",
    } <= set(names)
    argv = jail.command(str(tmp_path), 3, FORMAT_ENTRYPOINTS["mlflow"], JailSpec([], [], False))
    at = argv.index(jail.FORMATS_DIR)
    assert argv[at - 1 : at + 2] == ["--ro-bind", jail.FORMATS_DIR, "/run/modelhub/modelhub_formats"]
    assert Path(jail.FORMATS_DIR).parent == Path(jail.HOST_FILE).parent


# ---------------------------------------------------------------- the adapter


def test_the_adapter_casts_json_numbers_to_the_signature_s_columns_and_names_an_unnamed_result(iris):
    model = Model(str(iris))
    batch = {"sepal_length": [5, 7.0], "sepal_width": [3, 3.2], "petal_length": [-2, 2], "petal_width": [0, 2]}
    out = model.predict(batch)
    assert list(out) == ["predictions"] and all(type(v) is int for v in out["predictions"])
    assert list(model.frame(batch).dtypes) == ["float64"] * 4
    assert host.rows(out, 2) == [{"predictions": out["predictions"][0]}, {"predictions": out["predictions"][1]}]
    with pytest.raises(Exception, match="petal_width"):  # MLflow's own check names what is missing
        model.predict({k: v for k, v in ONE_ROW.items() if k != "petal_width"})


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("frame", {"label": ["AB", "C"], "size": [2, 1]}),
        ("dict", {"label": ["AB", "C"], "size": [2, 1]}),
        ("series", {"predictions": [2, 1]}),
        ("array", {"predictions": [2, 1]}),
        ("list", {"predictions": [{"n": 2, "v": [0, 1]}, {"n": 1, "v": [0, 1]}]}),
    ],
)
def test_the_adapter_maps_frames_dicts_and_single_results_to_plain_outputs(tmp_path, mode, expected):
    out = Model(str(pyfunc(tmp_path, mode))).predict({"text": ["ab", "c"]})
    assert out == expected
    assert json.loads(json.dumps(out)) == expected  # plain Python: numpy scalars and arrays converted


def test_an_unnamed_result_takes_the_signature_s_one_output_name_and_a_wrong_length_is_the_batch_s_error(tmp_path):
    sig = infer_signature(pd.DataFrame({"text": ["a"]}), pd.DataFrame({"size": [1]}))
    assert Model(str(pyfunc(tmp_path, "array", sig))).predict({"text": ["ab"]}) == {"size": [2]}
    short = Model(str(pyfunc(tmp_path, "short"))).predict({"text": ["ab", "c"]})
    with pytest.raises(ValueError, match="returned 1 values for output 'predictions' but the batch has 2 samples"):
        host.rows(short, 2)


@pytest.mark.skipif(jail.jail_available() is not None, reason=f"bubblewrap cannot jail here: {jail.jail_available()}")
async def test_a_jailed_model_process_loads_an_mlflow_package_through_its_adapter(iris, tmp_path):
    package = zipped(iris, tmp_path / "iris.zip", prefix="iris_model/")
    sha = hashlib.sha256(package.read_bytes()).hexdigest()
    (tmp_path / "work").mkdir()
    entrypoint = inspect_package(package).entrypoint
    process = ModelProcess(str(package), sha, entrypoint, str(tmp_path / "work"), JailSpec([], [], False), False)
    try:
        assert process.jailed
        [(result, _)] = await process.predict(
            [[{k: v[0] for k, v in ONE_ROW.items()}, {**dict.fromkeys(IRIS_COLUMNS, 1)}]]
        )
        assert [set(o) for o in result["outputs"]] == [{"predictions"}, {"predictions"}]
        assert all(isinstance(o["predictions"], int) for o in result["outputs"])
    finally:
        process.close()


def test_the_hub_packages_versions_come_from_their_metadata():
    found = mlflow_env.hub_packages()
    assert found["scikit-learn"] == importlib.metadata.version("scikit-learn")
    assert {"mlflow-skinny", "pandas", "skops", "cloudpickle"} <= set(found)
