"""The model schema (API.md §4): its meta-schema, validation that names the faulty path, and
the check that one model output matches its declared type.

A schema is refused at upload if it has an unknown type, no inputs or no outputs; at run time
each output a model returns is checked with `check_output`, and a mismatch fails that sample only.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

INPUT_TYPES = ("local", "text", "number", "json")
OUTPUT_TYPES = ("classification", "detections", "number", "text", "json")

# `(?!\n)` because Python's `$` (which jsonschema uses for "pattern") also matches just before a
# trailing newline, so "name\n" would pass; under ECMA regex semantics it changes nothing.
FIELD_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}(?!\n)$"
FIELD_NAME_RE = re.compile(FIELD_NAME_PATTERN)
# Sample documents already use these keys for their own bookkeeping.
RESERVED_FIELD_NAMES = frozenset({"id", "_id", "filepath"})
_NAME_RULE = "use letters, digits and _, not starting with a digit, at most 64 characters"

_SECTION_NOUNS = {"inputs": "input", "outputs": "output"}


class SchemaError(ValueError):
    """A model schema that does not follow API.md §4; the message starts with the JSON path."""


def _section_schema(types: Sequence[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["type", "properties"],
        "properties": {
            "type": {"const": "object"},
            "properties": {
                "type": "object",
                "minProperties": 1,
                "propertyNames": {"type": "string", "pattern": FIELD_NAME_PATTERN},
                # Extra keys such as "description" are allowed next to the required type.
                "additionalProperties": {
                    "type": "object",
                    "required": ["type"],
                    "properties": {"type": {"enum": list(types)}},
                },
            },
        },
    }


META_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://modelhub.local/schemas/model-schema.json",
    "title": "modelhub model schema",
    "type": "object",
    "required": ["inputs", "outputs"],
    "properties": {
        "inputs": {"$ref": "#/$defs/inputs"},
        "outputs": {"$ref": "#/$defs/outputs"},
    },
    "$defs": {"inputs": _section_schema(INPUT_TYPES), "outputs": _section_schema(OUTPUT_TYPES)},
}

_VALIDATOR = Draft202012Validator(META_SCHEMA)


def validate_model_schema(schema: object) -> None:
    """Return if `schema` is a valid model schema; else raise SchemaError naming the path.

    The error reported is jsonschema's best match, so the same bad schema always gives the
    same message, e.g. ``inputs.properties: must declare at least one input``.
    """
    if not isinstance(schema, dict):
        raise SchemaError("schema must be a JSON object")
    error = best_match(_VALIDATOR.iter_errors(schema))
    if error is not None:
        raise SchemaError(_describe(error))


def _describe(error: ValidationError) -> str:
    path = ".".join(str(part) for part in error.absolute_path)
    kind = error.validator
    # the keyword's value in the schema: a list for "required" and "enum"
    expected = list(error.validator_value) if isinstance(error.validator_value, list | tuple) else []
    if kind == "required":
        missing = next(k for k in expected if k not in error.instance)
        return f"{_join(path, missing)}: is required"
    if kind == "minProperties":
        return f"{path}: must declare at least one {_SECTION_NOUNS[path.split('.')[0]]}"
    if kind == "enum":
        return f"{path}: {error.instance!r} is not one of {expected}"
    if kind == "pattern":
        # Only property names have a pattern; jsonschema reports them at the properties object.
        return f"{path}: {error.instance!r} is not a valid name ({_NAME_RULE})"
    if kind == "type":
        return f"{path or 'schema'}: must be a JSON {error.validator_value}"
    if kind == "const":
        return f"{path}: must be {error.validator_value!r}"
    return f"{path or 'schema'}: {error.message}"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def input_types(schema: object) -> dict[str, str]:
    """Map each input name of a valid schema to its type; raise SchemaError if invalid."""
    return _types(schema, "inputs")


def output_types(schema: object) -> dict[str, str]:
    """Map each output name of a valid schema to its type; raise SchemaError if invalid."""
    return _types(schema, "outputs")


def _types(schema: object, section: str) -> dict[str, str]:
    validate_model_schema(schema)
    assert isinstance(schema, dict)  # narrowed by validation
    return {name: spec["type"] for name, spec in schema[section]["properties"].items()}


def check_field_name(name: str) -> str | None:
    """Return None if `name` may name a sample field, else a short reason it may not."""
    if not isinstance(name, str):
        return f"field name must be a string, got {_kind(name)}"
    if name in RESERVED_FIELD_NAMES:
        return f"{name!r} is reserved"
    if not FIELD_NAME_RE.match(name):
        return f"{name!r} is not a valid field name ({_NAME_RULE})"
    return None


def check_output(output_type: str, value: object) -> str | None:
    """Return None if `value` is a valid model output of `output_type`, else a short reason.

    Numbers must be int or float (never bool) and finite; values are stored as JSON, so anything
    a classification or detections dict carries besides its required keys must be JSON too.
    Raises ValueError for an output type that is not one of OUTPUT_TYPES.
    """
    try:
        check = _OUTPUT_CHECKS[output_type]
    except KeyError:
        raise ValueError(f"unknown output type {output_type!r}, not one of {list(OUTPUT_TYPES)}") from None
    return check(value)


def _check_classification(value: object) -> str | None:
    if not isinstance(value, dict):
        return f"expected an object with label and confidence, got {_kind(value)}"
    return _check_labelled(value, "") or _check_json(value)


def _check_detections(value: object) -> str | None:
    if not isinstance(value, dict) or "detections" not in value:
        return f"expected an object with a detections list, got {_kind(value)}"
    items = value["detections"]
    if not isinstance(items, list):
        return f"detections must be a list, got {_kind(items)}"
    for index, item in enumerate(items):
        problem = _check_detection(item, f"detections[{index}]")
        if problem:
            return problem
    return _check_json(value)


def _check_detection(item: object, where: str) -> str | None:
    if not isinstance(item, dict):
        return f"{where} must be an object, got {_kind(item)}"
    return _check_labelled(item, f"{where}.") or _check_box(item, f"{where}.bounding_box")


def _check_labelled(item: dict, prefix: str) -> str | None:
    for key in ("label", "confidence"):
        if key not in item:
            return f"{prefix}{key} is missing"
    if not isinstance(item["label"], str):
        return f"{prefix}label must be a string, got {_kind(item['label'])}"
    return _check_unit(item["confidence"], f"{prefix}confidence")


def _check_box(item: dict, where: str) -> str | None:
    box = item.get("bounding_box")
    # Tuples are accepted because they serialise to the same JSON array.
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        return f"{where} must be a list of 4 numbers [x, y, w, h], got {box!r}"
    for index, coordinate in enumerate(box):
        problem = _check_unit(coordinate, f"{where}[{index}]")
        if problem:
            return problem
    return None


def _check_unit(value: object, where: str) -> str | None:
    if not _is_finite_number(value):
        return f"{where} must be a finite number, got {value!r}"
    if not 0 <= value <= 1:  # type: ignore[operator]
        return f"{where} must be in [0, 1], got {value!r}"
    return None


def _check_number(value: object) -> str | None:
    return None if _is_finite_number(value) else f"expected a finite number, got {value!r}"


def _check_text(value: object) -> str | None:
    return None if isinstance(value, str) else f"expected a string, got {_kind(value)}"


def _check_json(value: object) -> str | None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        return f"not JSON-serialisable: {exc}"
    return None


def _is_finite_number(value: object) -> bool:
    # bool is an int subclass but True is not a confidence; ints are always finite
    # (and math.isfinite would overflow on huge ones).
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, int) or math.isfinite(value)


def _kind(value: object) -> str:
    return type(value).__name__


_OUTPUT_CHECKS: dict[str, Callable[[object], str | None]] = {
    "classification": _check_classification,
    "detections": _check_detections,
    "number": _check_number,
    "text": _check_text,
    "json": _check_json,
}
