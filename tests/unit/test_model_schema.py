"""The model schema of API.md §4: what is refused at upload, and the per-output type checks."""

import copy
import math

import pytest
from jsonschema import Draft202012Validator

from modelhub_contracts.model_schema import (
    FIELD_NAME_RE,
    INPUT_TYPES,
    META_SCHEMA,
    OUTPUT_TYPES,
    SchemaError,
    check_field_name,
    check_output,
    input_types,
    output_types,
    validate_model_schema,
)

API_EXAMPLE = {
    "inputs": {"type": "object", "properties": {"image_paths": {"type": "local"}}},
    "outputs": {"type": "object", "properties": {"predictions": {"type": "classification"}}},
}

DELETE = object()


def schema_with(**changes):
    schema = copy.deepcopy(API_EXAMPLE)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = schema
        for key in parents:
            node = node[key]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return schema


def refusal(schema) -> str:
    with pytest.raises(SchemaError) as caught:
        validate_model_schema(schema)
    return str(caught.value)


def test_meta_schema_is_a_valid_draft_2020_12_schema():
    Draft202012Validator.check_schema(META_SCHEMA)
    assert META_SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_api_example_is_accepted():
    assert validate_model_schema(API_EXAMPLE) is None


def test_every_declared_type_is_accepted_with_extra_keys():
    schema = {
        "inputs": {"type": "object", "properties": {f"in_{t}": {"type": t} for t in INPUT_TYPES}},
        "outputs": {
            "type": "object",
            "properties": {f"out_{t}": {"type": t, "description": "extra keys are fine"} for t in OUTPUT_TYPES},
        },
    }
    validate_model_schema(schema)


def test_unknown_output_type_names_path_and_lists_allowed_types():
    message = refusal(schema_with(outputs__properties__predictions__type="foo"))
    assert message == (
        "outputs.properties.predictions.type: 'foo' is not one of "
        "['classification', 'detections', 'number', 'text', 'json']"
    )


def test_unknown_input_type_lists_input_types():
    message = refusal(schema_with(inputs__properties__image_paths__type="classification"))
    assert message == (
        "inputs.properties.image_paths.type: 'classification' is not one of ['local', 'text', 'number', 'json']"
    )


def test_no_inputs_declared_is_refused():
    message = refusal(schema_with(inputs__properties={}))
    assert message == "inputs.properties: must declare at least one input"


def test_no_outputs_declared_is_refused():
    message = refusal(schema_with(outputs__properties={}))
    assert message == "outputs.properties: must declare at least one output"


def test_missing_outputs_section_is_refused():
    assert refusal(schema_with(outputs=DELETE)) == "outputs: is required"


def test_missing_inputs_section_is_refused():
    assert refusal(schema_with(inputs=DELETE)) == "inputs: is required"


def test_property_without_type_is_refused():
    message = refusal(schema_with(inputs__properties__image_paths={"description": "x"}))
    assert message == "inputs.properties.image_paths.type: is required"


def test_section_must_be_an_object_type():
    assert refusal(schema_with(inputs__type="array")) == "inputs.type: must be 'object'"
    assert refusal(schema_with(outputs=[])) == "outputs: must be a JSON object"


@pytest.mark.parametrize("name", ["a.b", "$x", "1abc", "", "x" * 65, "bad name", "ok\n"])
def test_bad_property_names_are_refused(name):
    schema = schema_with(outputs__properties={name: {"type": "text"}})
    assert refusal(schema) == (
        f"outputs.properties: {name!r} is not a valid name "
        "(use letters, digits and _, not starting with a digit, at most 64 characters)"
    )


@pytest.mark.parametrize("schema", [[], "{}", None, 3])
def test_non_object_schema_is_refused(schema):
    assert refusal(schema) == "schema must be a JSON object"


def test_schema_error_is_a_value_error():
    assert issubclass(SchemaError, ValueError)


def test_input_and_output_types_map_names_to_types():
    assert input_types(API_EXAMPLE) == {"image_paths": "local"}
    assert output_types(API_EXAMPLE) == {"predictions": "classification"}


def test_input_types_refuses_an_invalid_schema():
    with pytest.raises(SchemaError):
        input_types(schema_with(inputs__properties={}))


@pytest.mark.parametrize("name", ["a", "_x", "image_paths", "A9_", "x" * 64])
def test_good_field_names(name):
    assert check_field_name(name) is None
    assert FIELD_NAME_RE.match(name)


@pytest.mark.parametrize("name", ["a.b", "$set", "9a", "", "x" * 65, "a-b", "a\n", "é"])
def test_bad_field_names(name):
    assert check_field_name(name) == (
        f"{name!r} is not a valid field name "
        "(use letters, digits and _, not starting with a digit, at most 64 characters)"
    )
    assert not FIELD_NAME_RE.match(name)


@pytest.mark.parametrize("name", ["id", "_id", "filepath"])
def test_reserved_field_names(name):
    assert FIELD_NAME_RE.match(name)
    assert check_field_name(name) == f"{name!r} is reserved"


def test_non_string_field_name():
    # on purpose not a str: a schema is JSON, and JSON may name a field with a number
    assert check_field_name(3) == "field name must be a string, got int"  # pyright: ignore[reportArgumentType]


# --- check_output -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        {"label": "cat", "confidence": 0.9},
        {"label": "cat", "confidence": 0},
        {"label": "cat", "confidence": 1},
        {"label": "", "confidence": 1.0, "logits": [0.1, 0.9]},
    ],
)
def test_valid_classification(value):
    assert check_output("classification", value) is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("cat", "expected an object with label and confidence, got str"),
        ({"confidence": 0.5}, "label is missing"),
        ({"label": "cat"}, "confidence is missing"),
        ({"label": 3, "confidence": 0.5}, "label must be a string, got int"),
        ({"label": "cat", "confidence": True}, "confidence must be a finite number, got True"),
        ({"label": "cat", "confidence": "0.5"}, "confidence must be a finite number, got '0.5'"),
        ({"label": "cat", "confidence": math.nan}, "confidence must be a finite number, got nan"),
        ({"label": "cat", "confidence": 1.5}, "confidence must be in [0, 1], got 1.5"),
        ({"label": "cat", "confidence": -0.1}, "confidence must be in [0, 1], got -0.1"),
    ],
)
def test_invalid_classification(value, reason):
    assert check_output("classification", value) == reason


def test_classification_extras_must_be_json():
    reason = check_output("classification", {"label": "cat", "confidence": 0.5, "x": {1, 2}})
    assert reason.startswith("not JSON-serialisable: ")


def detection(**overrides):
    item = {"label": "dog", "confidence": 0.75, "bounding_box": [0.1, 0.2, 0.5, 0.5]}
    item.update(overrides)
    return item


def test_valid_detections():
    assert check_output("detections", {"detections": []}) is None
    value = {"detections": [detection(), detection(bounding_box=(0, 0, 1, 1))]}
    assert check_output("detections", value) is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ([detection()], "expected an object with a detections list, got list"),
        ({"boxes": []}, "expected an object with a detections list, got dict"),
        ({"detections": detection()}, "detections must be a list, got dict"),
        ({"detections": ["dog"]}, "detections[0] must be an object, got str"),
        (
            {"detections": [detection(), detection(label=None)]},
            "detections[1].label must be a string, got NoneType",
        ),
        (
            {"detections": [detection(confidence=2)]},
            "detections[0].confidence must be in [0, 1], got 2",
        ),
        (
            {"detections": [{"label": "dog", "confidence": 0.5}]},
            "detections[0].bounding_box must be a list of 4 numbers [x, y, w, h], got None",
        ),
        (
            {"detections": [detection(bounding_box=[0.1, 0.2, 0.3])]},
            "detections[0].bounding_box must be a list of 4 numbers [x, y, w, h], got [0.1, 0.2, 0.3]",
        ),
        (
            {"detections": [detection(bounding_box=[0.1, 1.2, 0.3, 0.3])]},
            "detections[0].bounding_box[1] must be in [0, 1], got 1.2",
        ),
        (
            {"detections": [detection(bounding_box=[0.1, 0.2, math.inf, 0.3])]},
            "detections[0].bounding_box[2] must be a finite number, got inf",
        ),
        (
            {"detections": [detection(bounding_box=[0.1, 0.2, False, 0.3])]},
            "detections[0].bounding_box[2] must be a finite number, got False",
        ),
    ],
)
def test_invalid_detections(value, reason):
    assert check_output("detections", value) == reason


@pytest.mark.parametrize("value", [0, -3, 2.5, 10**400])
def test_valid_number(value):
    assert check_output("number", value) is None


@pytest.mark.parametrize("value", [True, "1", None, math.nan, math.inf, [1]])
def test_invalid_number(value):
    assert check_output("number", value) == f"expected a finite number, got {value!r}"


def test_text():
    assert check_output("text", "") is None
    assert check_output("text", "hello") is None
    assert check_output("text", b"hello") == "expected a string, got bytes"
    assert check_output("text", 1) == "expected a string, got int"


@pytest.mark.parametrize("value", [None, 1, "x", [1, {"a": [True]}], {"a": 1.5}])
def test_valid_json(value):
    assert check_output("json", value) is None


def test_invalid_json():
    assert check_output("json", math.nan).startswith("not JSON-serialisable: ")
    assert check_output("json", {"a": object()}).startswith("not JSON-serialisable: ")
    looped: list = []
    looped.append(looped)
    assert check_output("json", looped).startswith("not JSON-serialisable: ")


def test_unknown_output_type_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown output type 'image'"):
        check_output("image", "x")
