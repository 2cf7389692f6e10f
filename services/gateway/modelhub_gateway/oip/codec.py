"""OIP tensors to online predict's samples and back: pure functions, no I/O.

A deployment's schema types become one-dimensional tensors of shape [N], one value per sample
(docs/API.md section 12): `local`, `text` and `json` inputs are BYTES (UTF-8; a `json` input's
values are JSON text), a `number` input is FP64 and also takes FP32, FP16 and the INT/UINT types;
`number` outputs are FP64, every other output BYTES (a `text` output's string, the others' JSON
text).

Tensor data comes as JSON (`data`) or, with Triton's binary tensor data extension (what
tritonclient sends by default), as bytes after the JSON object whose length the
`Inference-Header-Content-Length` header gives: little-endian, row-major, each BYTES element a
4-byte little-endian length and then its bytes. Anything that does not fit the model, or that
the protocol does not allow, is refused with 400 naming the input and what was wrong, before
online predict runs.
"""

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pydantic_core
from pydantic import ValidationError

from modelhub_contracts.errors import DomainError, from_status
from modelhub_gateway.oip.protocol import (
    HEADER_LENGTH,
    INPUT_DATATYPES,
    INT_RANGES,
    NUMBER_FORMATS,
    OUTPUT_DATATYPES,
    PLATFORM,
    InferenceRequest,
    ModelMetadata,
    RequestInput,
    TensorMetadata,
)

_LENGTH = struct.Struct("<I")
_SHARED_MEMORY = "shared_memory_region"
_NUMBER_TYPES = ", ".join(NUMBER_FORMATS)


class BadRequest(DomainError):
    """A request the protocol cannot read, or tensors that do not fit the model."""

    status = 400


@dataclass(frozen=True)
class Decoded:
    """An inference request, read: its `id`, each input's N values as online predict takes them,
    and the outputs to answer, in order, each with whether it goes as binary data."""

    id: str | None
    inputs: dict[str, list[Any]]
    outputs: tuple[tuple[str, bool], ...]


@dataclass(frozen=True)
class Encoded:
    """An inference response's body; `header_length` is the JSON part's length when binary data
    follows it (then the answer is `application/octet-stream` with that header), else None."""

    body: bytes
    header_length: int | None


def model_metadata(name: str, version: int, inputs: Mapping[str, str], outputs: Mapping[str, str]) -> ModelMetadata:
    """The metadata of a deployment serving `version`, whose schema has these input and output types."""
    return ModelMetadata(
        name=name,
        versions=[str(version)],
        platform=PLATFORM,
        inputs=[TensorMetadata(name=n, datatype=INPUT_DATATYPES[t], shape=[-1]) for n, t in inputs.items()],
        outputs=[TensorMetadata(name=n, datatype=OUTPUT_DATATYPES[t], shape=[-1]) for n, t in outputs.items()],
    )


def decode_request(
    body: bytes, header_length: str | None, inputs: Mapping[str, str], outputs: Mapping[str, str]
) -> Decoded:
    """Read an inference request for a model with these input and output types; BadRequest (400)
    for anything that does not fit them."""
    header, binary = split_body(body, header_length)
    try:
        request = InferenceRequest.model_validate_json(header)
    except ValidationError as exc:
        raise BadRequest(f"not an inference request: {_issues(exc)}") from None
    return Decoded(request.id, read_inputs(request.inputs, binary, inputs), requested_outputs(request, outputs))


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """(the JSON part, the binary tensor data after it)."""
    if header_length is None:
        return body, b""
    if not (header_length.isascii() and header_length.isdigit()):
        raise BadRequest(f"{HEADER_LENGTH} must be a whole number of bytes, not {header_length[:40]!r}")
    length = int(header_length)
    if length > len(body):
        raise BadRequest(f"{HEADER_LENGTH} is {length}, but the body holds only {len(body)} bytes")
    return body[:length], body[length:]


def read_inputs(tensors: Sequence[RequestInput], binary: bytes, declared: Mapping[str, str]) -> dict[str, list[Any]]:
    """Each declared input's values, from its JSON `data` or its share of `binary` (taken in the
    order the inputs come, as the extension says)."""
    values: dict[str, list[Any]] = {}
    offset = 0
    for tensor in tensors:
        kind = _declared_kind(tensor, declared, values)
        count = _sample_count(tensor)
        size = _binary_size(tensor)
        if size is None:
            values[tensor.name] = _from_json(tensor, kind, count)
            continue
        if offset + size > len(binary):
            raise BadRequest(
                f"input '{tensor.name}' declares {size} bytes of binary data, but only {len(binary) - offset} are left"
            )
        values[tensor.name] = _from_binary(tensor, kind, count, binary[offset : offset + size])
        offset += size
    if offset != len(binary):
        raise BadRequest(f"the body holds {len(binary)} bytes of binary data, but the inputs declare {offset}")
    if missing := [name for name in declared if name not in values]:
        raise BadRequest(f"missing input(s): {', '.join(missing)} (the model's inputs: {_names(declared)})")
    counts = {name: len(column) for name, column in values.items()}
    if len(set(counts.values())) > 1:
        shapes = ", ".join(f"'{name}' [{n}]" for name, n in counts.items())
        raise BadRequest(f"every input must hold the same number of samples N, with shape [N]; got {shapes}")
    return values


def requested_outputs(request: InferenceRequest, declared: Mapping[str, str]) -> tuple[tuple[str, bool], ...]:
    """The outputs to answer, in order, each with whether it goes as binary: the request's
    `outputs` (each output's `binary_data`, else the request's `binary_data_output`), or all."""
    default = _flag(request.parameters, "binary_data_output", False, "the request's")
    if not request.outputs:
        return tuple((name, default) for name in declared)
    chosen: dict[str, bool] = {}
    for output in request.outputs:
        if output.name not in declared:
            raise BadRequest(f"unknown output '{output.name}' (the model's outputs: {_names(declared)})")
        if output.name in chosen:
            raise BadRequest(f"output '{output.name}' is requested twice")
        parameters = output.parameters or {}
        if _SHARED_MEMORY in parameters:
            raise BadRequest("the shared-memory extension is not supported: outputs come in the body")
        if parameters.get("classification"):
            raise BadRequest(
                "the classification extension is not supported: a classification output's JSON text "
                "holds its label and confidence"
            )
        chosen[output.name] = _flag(parameters, "binary_data", default, f"output '{output.name}''s")
    return tuple(chosen.items())


def encode_response(
    model_name: str,
    model_version: int,
    decoded: Decoded,
    values: Mapping[str, Sequence[Any]],
    output_types: Mapping[str, str],
) -> Encoded:
    """The inference response for online predict's `values` (each output's N values): the
    requested outputs, in the requested order, each as JSON data or binary data."""
    entries: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for name, binary in decoded.outputs:
        column = values[name]
        kind = output_types[name]
        items = _doubles(name, column) if kind == "number" else column if kind == "text" else _json_texts(column)
        entry: dict[str, Any] = {"name": name, "datatype": OUTPUT_DATATYPES[kind], "shape": [len(column)]}
        if binary:
            raw = struct.pack(f"<{len(items)}d", *items) if kind == "number" else _pack_bytes(items)
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = items
        entries.append(entry)
    response: dict[str, Any] = {"model_name": model_name, "model_version": str(model_version)}
    if decoded.id is not None:
        response["id"] = decoded.id
    response["outputs"] = entries
    header = pydantic_core.to_json(response)
    if not chunks:
        return Encoded(header, None)
    return Encoded(header + b"".join(chunks), len(header))


def content_headers(encoded: Encoded) -> dict[str, str]:
    """The HTTP headers that say how to read an encoded response."""
    if encoded.header_length is None:
        return {"content-type": "application/json"}
    return {"content-type": "application/octet-stream", HEADER_LENGTH: str(encoded.header_length)}


def _declared_kind(tensor: RequestInput, declared: Mapping[str, str], seen: Mapping[str, Any]) -> str:
    kind = declared.get(tensor.name)
    if kind is None:
        raise BadRequest(f"unknown input '{tensor.name}' (the model's inputs: {_names(declared)})")
    if tensor.name in seen:
        raise BadRequest(f"input '{tensor.name}' is given twice")
    expected = INPUT_DATATYPES[kind]
    if expected == "BYTES" and tensor.datatype != "BYTES":
        raise BadRequest(f"input '{tensor.name}' is {tensor.datatype}; this model takes it as BYTES ({kind})")
    if expected == "FP64" and tensor.datatype not in NUMBER_FORMATS:
        raise BadRequest(
            f"input '{tensor.name}' is {tensor.datatype}; this model takes it as FP64 (or {_NUMBER_TYPES})"
        )
    return kind


def _sample_count(tensor: RequestInput) -> int:
    if len(tensor.shape) != 1 or tensor.shape[0] < 0:
        raise BadRequest(f"input '{tensor.name}' has shape {tensor.shape}; it must be [N], one value per sample")
    return tensor.shape[0]


def _binary_size(tensor: RequestInput) -> int | None:
    parameters = tensor.parameters or {}
    if _SHARED_MEMORY in parameters:
        raise BadRequest("the shared-memory extension is not supported: send the data in the body")
    size = parameters.get("binary_data_size")
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise BadRequest(f"input '{tensor.name}': binary_data_size must be a whole number of bytes, not {size!r}")
    if tensor.data is not None:
        raise BadRequest(f"input '{tensor.name}' has both `data` and binary_data_size; send one")
    return size


def _from_json(tensor: RequestInput, kind: str, count: int) -> list[Any]:
    data = tensor.data
    if data is None:
        raise BadRequest(f"input '{tensor.name}' has no data: give `data` or binary_data_size")
    if len(data) != count:
        raise BadRequest(f"input '{tensor.name}' has shape [{count}] but {len(data)} values")
    if tensor.datatype == "BYTES":
        if not all(isinstance(value, str) for value in data):
            raise BadRequest(f"input '{tensor.name}' is BYTES: each of its values must be a string")
        return _texts(tensor.name, kind, data)
    return _checked_numbers(tensor.name, tensor.datatype, data)


def _from_binary(tensor: RequestInput, kind: str, count: int, raw: bytes) -> list[Any]:
    if tensor.datatype == "BYTES":
        texts = []
        for index, item in enumerate(_unpack_bytes(tensor.name, raw, count)):
            try:
                texts.append(item.decode("utf-8"))
            except UnicodeDecodeError:
                raise BadRequest(f"input '{tensor.name}': element {index} is not UTF-8 text") from None
        return _texts(tensor.name, kind, texts)
    letter = NUMBER_FORMATS[tensor.datatype]
    width = struct.calcsize(letter)
    if len(raw) != count * width:
        raise BadRequest(
            f"input '{tensor.name}': {count} {tensor.datatype} values are {count * width} bytes, "
            f"but its binary_data_size is {len(raw)}"
        )
    values = list(struct.unpack(f"<{count}{letter}", raw))
    if letter in "def" and not all(math.isfinite(v) for v in values):
        raise BadRequest(f"input '{tensor.name}' holds a value that is not a finite number")
    return values


def _unpack_bytes(name: str, raw: bytes, count: int) -> list[bytes]:
    """BYTES elements: each a 4-byte little-endian length, then that many bytes; exactly `count`."""
    items, offset = [], 0
    while offset < len(raw):
        if len(items) == count:
            raise BadRequest(f"input '{name}' holds more than the {count} elements its shape says")
        if offset + 4 > len(raw):
            raise BadRequest(f"input '{name}': element {len(items)}'s 4-byte length is cut short")
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise BadRequest(f"input '{name}': element {len(items)} says {length} bytes, only {len(raw) - offset} left")
        items.append(raw[offset : offset + length])
        offset += length
    if len(items) != count:
        raise BadRequest(f"input '{name}' has shape [{count}] but {len(items)} elements")
    return items


def _texts(name: str, kind: str, texts: list[str]) -> list[Any]:
    """A `json` input's values are the JSON its texts hold; the others' are the texts."""
    if kind != "json":
        return texts
    values = []
    for index, text in enumerate(texts):
        try:
            values.append(pydantic_core.from_json(text, allow_inf_nan=False))
        except ValueError as exc:
            raise BadRequest(f"input '{name}': element {index} is not JSON text ({exc})") from None
    return values


def _checked_numbers(name: str, datatype: str, data: list[Any]) -> list[Any]:
    bounds = INT_RANGES.get(datatype)
    for value in data:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadRequest(f"input '{name}' is {datatype}: each of its values must be a number, not {value!r:.40}")
        if isinstance(value, float) and not math.isfinite(value):
            raise BadRequest(f"input '{name}' holds a value that is not a finite number")
        if bounds and not (isinstance(value, int) and bounds[0] <= value <= bounds[1]):
            raise BadRequest(f"input '{name}' is {datatype}: {value!r} is not one")
    return data


def _flag(parameters: Mapping[str, Any] | None, key: str, default: bool, whose: str) -> bool:
    value = (parameters or {}).get(key, default)
    if not isinstance(value, bool):
        raise BadRequest(f"{whose} {key} must be true or false, not {value!r:.40}")
    return value


def _doubles(name: str, column: Sequence[Any]) -> list[float]:
    try:
        return [float(value) for value in column]
    except OverflowError:  # a Python int past FP64's range passed the worker's (finite) check
        raise from_status(502, f"output '{name}' holds a number too large for FP64") from None


def _json_texts(column: Sequence[Any]) -> list[str]:
    return [pydantic_core.to_json(value).decode() for value in column]


def _pack_bytes(texts: Sequence[str]) -> bytes:
    parts = []
    for text in texts:
        raw = text.encode("utf-8", "replace")  # half a surrogate pair is no UTF-8
        parts += (_LENGTH.pack(len(raw)), raw)
    return b"".join(parts)


def _names(declared: Mapping[str, str]) -> str:
    return ", ".join(declared)


def _issues(exc: ValidationError) -> str:
    issues = exc.errors(include_url=False)
    shown = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in issues[:3])
    return shown + (f" (and {len(issues) - 3} more)" if len(issues) > 3 else "")
