"""MLflow models as saved (API.md §3, "MLflow models"): the `MLmodel` file read as data, and the
model schema that its signature gives or checks.

An MLflow model directory (what `mlflow.<flavor>.save_model` writes) describes itself in `MLmodel`,
a YAML file: its flavors (`python_function` says how `mlflow.pyfunc.load_model` loads it) and
maybe a signature, whose `inputs` and `outputs` are JSON text (a list of column specs
`{"type", "name"?, "required"?}` or tensor specs `{"type": "tensor", "tensor-spec", "name"?}`).

The registry and the deployer read that file here and nothing else of the model: it is parsed
with PyYAML's safe loader (no Python objects), bounded in size, and refused when it uses YAML
aliases (a few aliases can stand for an exponential amount of data). Only the model process,
inside its jail, ever calls MLflow on the package.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from modelhub_contracts.model_schema import OUTPUT_TYPES
from modelhub_contracts.package import MLMODEL, PackageInfo

MLMODEL_MAX_BYTES = 1024 * 1024
# A model whose result has no column names (an array, a list, a Series, an unnamed tensor) gives
# one output under this name, the key MLflow's own scoring server answers predictions under.
UNNAMED_OUTPUT = "predictions"
PYFUNC = "python_function"

# MLflow column types -> the schema's input types (strings are `text` unless stated `local`).
_INPUT_TYPES = {
    "string": "text",
    "double": "number",
    "float": "number",
    "long": "number",
    "integer": "number",
    "boolean": "json",
    "array": "json",
    "object": "json",
    "map": "json",
    "any": "json",
    "datetime": "text",
}


class MLmodelError(ValueError):
    """An MLmodel file, or a schema against its signature, that modelhub refuses; says why."""


@dataclass(frozen=True)
class Column:
    """One input of a signature: its name, MLflow type ("double", "string", "tensor", ...)."""

    name: str
    type: str
    required: bool = True


@dataclass(frozen=True)
class Signature:
    """What a signature says of names. `inputs` is None when its inputs have no names (an unnamed
    tensor); `outputs` is None when it declares none, else the output names the model process
    gives (UNNAMED_OUTPUT for an unnamed result)."""

    inputs: tuple[Column, ...] | None
    outputs: tuple[str, ...] | None


class _PlainLoader(yaml.SafeLoader):
    """The safe loader, refusing aliases: MLflow never writes them, and they can make a small
    file stand for a huge structure."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("YAML aliases (*name) are not accepted")
        return super().compose_node(parent, index)


def safe_yaml(raw: bytes, label: str) -> Any:
    """A small YAML file of MLflow's (MLmodel, python_env.yaml) as plain data: at most
    MLMODEL_MAX_BYTES, no Python objects, no aliases; MLmodelError otherwise."""
    if len(raw) > MLMODEL_MAX_BYTES:
        raise MLmodelError(f"{label} is over {MLMODEL_MAX_BYTES} bytes")
    try:
        return yaml.load(raw.decode("utf-8-sig"), Loader=_PlainLoader)  # noqa: S506 - a safe loader
    except (UnicodeDecodeError, yaml.YAMLError, RecursionError) as exc:
        raise MLmodelError(f"{label} is not valid YAML ({exc})") from exc


def parse_mlmodel(raw: bytes, label: str = MLMODEL) -> dict[str, Any]:
    """The MLmodel file's content as plain data; MLmodelError when it is not one (or has no
    python_function flavor, which is what mlflow.pyfunc.load_model loads)."""
    data = safe_yaml(raw, label)
    if not isinstance(data, dict):
        raise MLmodelError(f"{label} must be a YAML mapping")
    flavors = data.get("flavors")
    if not isinstance(flavors, dict) or not all(isinstance(v, dict) for v in flavors.values()):
        raise MLmodelError(f"{label} has no flavors mapping")
    if PYFUNC not in flavors:
        raise MLmodelError(
            f"{label} has no {PYFUNC} flavor (its flavors: {', '.join(map(str, flavors)) or 'none'}), so "
            "mlflow.pyfunc.load_model cannot load it; save it with a flavor that adds python_function"
        )
    return data


def read_mlmodel(path: str | Path, info: PackageInfo) -> dict[str, Any]:
    """The MLmodel of a package that `inspect_package` checked (format "mlflow")."""
    with zipfile.ZipFile(path) as zf:
        entry = zf.getinfo(info.root + MLMODEL)
        if entry.file_size > MLMODEL_MAX_BYTES:
            raise MLmodelError(f"{MLMODEL} is over {MLMODEL_MAX_BYTES} bytes")
        with zf.open(entry) as fh:
            return parse_mlmodel(fh.read(MLMODEL_MAX_BYTES + 1))


def signature(mlmodel: dict[str, Any]) -> Signature | None:
    """The signature's names, or None when the MLmodel has no signature."""
    sig = mlmodel.get("signature")
    if not isinstance(sig, dict):
        return None
    inputs, outputs = _specs(sig, "inputs"), _specs(sig, "outputs")
    if inputs is None and outputs is None:
        return None
    return Signature(_inputs(inputs), _outputs(outputs))


def _specs(sig: dict[str, Any], key: str) -> list[dict[str, Any]] | None:
    text = sig.get(key)
    if text is None:
        return None
    try:
        specs = json.loads(text) if isinstance(text, str) else text
    except (ValueError, RecursionError) as exc:
        raise MLmodelError(f"{MLMODEL}: signature.{key} is not valid JSON ({exc})") from exc
    if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
        raise MLmodelError(f"{MLMODEL}: signature.{key} must be a list of column or tensor specs")
    return specs or None


def _named(specs: list[dict[str, Any]]) -> bool:
    return all(isinstance(s.get("name"), str) and s["name"] for s in specs)


def _inputs(specs: list[dict[str, Any]] | None) -> tuple[Column, ...] | None:
    if specs is None or not _named(specs):
        return None
    return tuple(Column(s["name"], str(s.get("type")), s.get("required", True) is not False) for s in specs)


def _outputs(specs: list[dict[str, Any]] | None) -> tuple[str, ...] | None:
    if specs is None:
        return None
    return tuple(s["name"] for s in specs) if _named(specs) else (UNNAMED_OUTPUT,)


def model_schema(
    mlmodel: dict[str, Any],
    schema: dict[str, Any] | None,
    local_inputs: list[str] | tuple[str, ...] = (),
    output_types: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The version's model schema: `schema` when given (checked against the signature's names),
    else derived from the signature. MLmodelError says what does not fit."""
    sig = signature(mlmodel)
    if schema is not None:
        if local_inputs or output_types:
            raise MLmodelError(
                "local_inputs and output_types describe a schema derived from the MLflow signature; "
                "with a schema of your own, state the types in it"
            )
        if sig is not None:
            check_schema(schema, sig)
        return schema
    if sig is None:
        raise MLmodelError(
            "a schema is needed: this MLflow model has no signature to derive one from "
            "(save it with signature=..., or upload a schema)"
        )
    return derive_schema(sig, local_inputs, output_types or {})


def derive_schema(sig: Signature, local_inputs: list[str] | tuple[str, ...], output_types: dict[str, str]) -> dict:
    """The schema a signature gives: its columns as inputs (`text`, or `local` where stated, for
    strings; `number` for numbers; `json` for the rest) and its outputs as `json` unless stated."""
    if sig.inputs is None:
        raise MLmodelError(
            "a schema is needed: the MLflow signature's inputs have no column names (a tensor); "
            "upload a schema that names the inputs"
        )
    columns = {c.name: c for c in sig.inputs}
    outputs = sig.outputs or (UNNAMED_OUTPUT,)
    _check_stated(columns, outputs, local_inputs, output_types)
    inputs = {name: {"type": _input_type(column, local_inputs)} for name, column in columns.items()}
    return {
        "inputs": {"type": "object", "properties": inputs},
        "outputs": {"type": "object", "properties": {o: {"type": output_types.get(o, "json")} for o in outputs}},
    }


def _input_type(column: Column, local_inputs: list[str] | tuple[str, ...]) -> str:
    if column.name in local_inputs:
        return "local"
    if column.type == "tensor":
        raise MLmodelError(
            f"a schema is needed: the MLflow signature's input {column.name!r} is a tensor; "
            "upload a schema that says how its values come"
        )
    try:
        return _INPUT_TYPES[column.type]
    except KeyError:
        raise MLmodelError(
            f"a schema is needed: the MLflow signature's input {column.name!r} has type {column.type!r}, "
            "which JSON cannot carry as is"
        ) from None


def _check_stated(
    columns: dict[str, Column],
    outputs: tuple[str, ...],
    local_inputs: list[str] | tuple[str, ...],
    output_types: dict[str, str],
) -> None:
    for name in local_inputs:
        if name not in columns:
            raise MLmodelError(f"local input {name!r} is not an input of the MLflow signature ({_names(columns)})")
        if columns[name].type != "string":
            raise MLmodelError(f"local input {name!r} must be a string column, the signature says {columns[name].type}")
    for name, kind in output_types.items():
        if name not in outputs:
            raise MLmodelError(f"output {name!r} is not an output of the MLflow signature ({_names(outputs)})")
        if kind not in OUTPUT_TYPES:
            raise MLmodelError(f"output {name!r}: type {kind!r} is not one of {list(OUTPUT_TYPES)}")


def check_schema(schema: dict[str, Any], sig: Signature) -> None:
    """The schema's input and output names against the signature's: every required input and
    no input the signature lacks; exactly the signature's outputs. MLmodelError names the difference."""
    problems = []
    inputs, outputs = _section(schema, "inputs"), _section(schema, "outputs")
    if sig.inputs is not None:
        known = {c.name for c in sig.inputs}
        required = {c.name for c in sig.inputs if c.required}
        if missing := sorted(required - inputs):
            problems.append(f"input(s) {_names(missing)} of the signature are missing from the schema")
        if extra := sorted(inputs - known):
            problems.append(f"input(s) {_names(extra)} are not in the signature (its inputs: {_names(known)})")
    if sig.outputs is not None and outputs != set(sig.outputs):
        if missing := sorted(set(sig.outputs) - outputs):
            problems.append(f"output(s) {_names(missing)} of the signature are missing from the schema")
        if extra := sorted(outputs - set(sig.outputs)):
            problems.append(f"output(s) {_names(extra)} are not in the signature (its outputs: {_names(sig.outputs)})")
        if sig.outputs == (UNNAMED_OUTPUT,):
            problems.append(f"the signature's output has no name, so modelhub calls it {UNNAMED_OUTPUT!r}")
    if problems:
        raise MLmodelError("the schema does not match the MLflow model's signature: " + "; ".join(problems))


def _section(schema: dict[str, Any], key: str) -> set[str]:
    properties = (schema.get(key) or {}).get("properties") or {}
    return set(properties) if isinstance(properties, dict) else set()


def _names(names: Any) -> str:
    return ", ".join(repr(n) for n in (sorted(names) if isinstance(names, set | dict) else names))
