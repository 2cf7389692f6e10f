"""MLflow models at deploy time: can the hub's own environment serve this one, and which pip
environment a custom env builds for it (API.md section 3, "MLflow models").

Without custom env, a replica's model process runs in the hub's environment, which has
`mlflow-skinny`, `pandas`, `scikit-learn`, `skops` and `cloudpickle` (the deployer's own
dependencies: on the embedded stack the replica nodes run the deployer's environment, and the
compose images install the same pins). That serves `python_function` models whose loader is
MLflow's pyfunc itself (a `PythonModel`) or a module the package brings in its `code/` folder, and
`sklearn` models saved with the hub's scikit-learn major.minor. Anything else needs packages the
hub does not have: the deploy is refused at once with what to do, instead of failing later in the
replica with an ImportError.

Everything here reads YAML as data (MLmodel, python_env.yaml); nothing of the model is imported.
"""

import contextlib
import importlib.metadata
import sys
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from modelhub_contracts.mlmodel import MLMODEL_MAX_BYTES, PYFUNC, MLmodelError, parse_mlmodel, safe_yaml
from modelhub_contracts.package import MLMODEL

# What the hub's environment brings for MLflow models (the replica's modelhub_formats.mlflow_model).
HUB_PACKAGES = ("mlflow-skinny", "pandas", "scikit-learn", "skops", "cloudpickle")
PYTHON_ENV = "python_env.yaml"
TICK_CUSTOM_ENV = "tick custom env to build the model's own environment from its requirements.txt"
# How each sklearn serialization format is loaded ("pickle" is the standard library's).
_SKLEARN_LOADERS = {"skops": "skops", "cloudpickle": "cloudpickle", "pickle": None}


@cache
def hub_packages() -> dict[str, str]:
    """The version of each of HUB_PACKAGES installed here (read from metadata, not imported)."""
    found = {}
    for name in HUB_PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    return found


def read_mlmodel(root: Path) -> dict[str, Any]:
    """The unpacked package's MLmodel, as data; MLmodelError when it cannot be read as one."""
    with (root / MLMODEL).open("rb") as fh:
        return parse_mlmodel(fh.read(MLMODEL_MAX_BYTES + 1))


def hub_refusal(mlmodel: dict[str, Any], root: Path, provided: Mapping[str, str]) -> str | None:
    """Why the hub's own environment cannot serve this MLflow model, or None when it can."""
    pyfunc = mlmodel["flavors"][PYFUNC]
    loader = str(pyfunc.get("loader_module") or "")
    if "mlflow-skinny" not in provided and "mlflow" not in provided:
        return f"the hub's environment has no MLflow to load this model; {TICK_CUSTOM_ENV}"
    if loader == "mlflow.sklearn":
        return _sklearn_refusal(mlmodel["flavors"].get("sklearn") or {}, provided)
    if loader == "mlflow.pyfunc" or loader.startswith("mlflow.pyfunc."):
        return None  # MLflow's own pyfunc: a PythonModel (cloudpickled or from code)
    if loader.startswith("mlflow."):
        return _no_flavor(loader.split(".")[1])
    if _in_code_folder(loader, pyfunc.get("code"), root):
        return None
    return (
        f"this MLflow model's loader module {loader!r} is neither MLflow's nor in the package's code folder; "
        f"{TICK_CUSTOM_ENV}"
    )


def _no_flavor(flavor: str) -> str:
    return f"this MLflow model's flavor {flavor} needs packages the hub does not provide; {TICK_CUSTOM_ENV}"


def _sklearn_refusal(flavor: dict[str, Any], provided: Mapping[str, str]) -> str | None:
    have = provided.get("scikit-learn")
    loader = _SKLEARN_LOADERS.get(str(flavor.get("serialization_format") or "cloudpickle"), "?")
    if have is None or (loader is not None and loader not in provided):
        return _no_flavor("sklearn")
    saved = str(flavor.get("sklearn_version") or "")
    # A pickled estimator is only promised to load under the version that pickled it; the same
    # major.minor is where scikit-learn keeps its estimators' attributes, so that much must match.
    if saved and _minor(saved) != _minor(have):
        return (
            f"this MLflow model's flavor sklearn was saved with scikit-learn {saved} and the hub provides "
            f"scikit-learn {have} (a saved estimator needs the same major.minor); {TICK_CUSTOM_ENV}"
        )
    return None


def _minor(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:2])


def _in_code_folder(loader: str, code: object, root: Path) -> bool:
    """The loader module is a file of the package's code folder (MLflow puts that on sys.path)."""
    if not loader or not isinstance(code, str) or not code:
        return False
    folder = (root / code).resolve()
    if not folder.is_relative_to(root.resolve()):
        return False
    base = folder / loader.replace(".", "/")
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def python_env(root: Path) -> dict[str, Any] | None:
    """The package's python_env.yaml (MLflow's virtualenv description), or None without one."""
    path = root / PYTHON_ENV
    if not path.is_file():
        return None
    with path.open("rb") as fh:
        data = safe_yaml(fh.read(MLMODEL_MAX_BYTES + 1), PYTHON_ENV)
    if not isinstance(data, dict):
        raise MLmodelError(f"{PYTHON_ENV} must be a YAML mapping")
    return data


def python_refusal(root: Path, node: tuple[int, int] = sys.version_info[:2]) -> str | None:
    """Why a custom env cannot run this model: python_env.yaml asks for another Python than the
    replica nodes' (a pip environment is built on the node's own interpreter, and a model pickled
    under another Python version may not load)."""
    env = python_env(root)
    wanted = str((env or {}).get("python") or "")
    if not wanted or tuple(wanted.split(".")[:2]) == tuple(str(n) for n in node):
        return None
    return (
        f"this MLflow model asks for Python {wanted} ({PYTHON_ENV}) and the hub's replicas run Python "
        f"{node[0]}.{node[1]}; a custom env builds on the replicas' own Python, so save the model "
        f"under Python {node[0]}.{node[1]}"
    )


def python_env_pip(root: Path) -> list[str]:
    """python_env.yaml's `dependencies` as pip requirement lines (`-r FILE` read from the package)."""
    lines: list[str] = []
    for item in (python_env(root) or {}).get("dependencies") or []:
        item = str(item).strip()
        if item.startswith("-r "):
            lines += _requirements_file(root, item[3:].strip())
        elif item:
            lines.append(item)
    return lines


def _requirements_file(root: Path, name: str) -> list[str]:
    path = (root / name).resolve()
    if not path.is_relative_to(root.resolve()) or not path.is_file():
        raise MLmodelError(f"{PYTHON_ENV} names {name}, which is not a file of the package")
    text = path.read_text(errors="replace")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
