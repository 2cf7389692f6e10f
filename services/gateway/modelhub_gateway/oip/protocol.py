"""The Open Inference Protocol's JSON objects, as the KServe v2 REST specification names them, and
the datatypes modelhub's schema types travel as.

Requests are read leniently where the protocol leaves room (unknown fields and parameters are
ignored, as other OIP servers do), strictly where a value would change the answer (shapes,
datatypes, names: codec.py refuses those with 400).
"""

from typing import Any

from pydantic import BaseModel, Field

PLATFORM = "modelhub"
SERVER_NAME = "modelhub"
EXTENSIONS = ["binary_tensor_data"]
# The header that gives the JSON part's length when binary tensor data follows it.
HEADER_LENGTH = "Inference-Header-Content-Length"

# modelhub schema type -> the OIP datatype of its tensor (docs/API.md section 12)
INPUT_DATATYPES = {"local": "BYTES", "text": "BYTES", "json": "BYTES", "number": "FP64"}
OUTPUT_DATATYPES = {
    "classification": "BYTES",
    "detections": "BYTES",
    "json": "BYTES",
    "number": "FP64",
    "text": "BYTES",
}
# A number input also takes these (little-endian in binary; struct's format letter, and the
# integer range of each INT type)
NUMBER_FORMATS = {
    "FP64": "d",
    "FP32": "f",
    "FP16": "e",
    "INT8": "b",
    "INT16": "h",
    "INT32": "i",
    "INT64": "q",
    "UINT8": "B",
    "UINT16": "H",
    "UINT32": "I",
    "UINT64": "Q",
}
INT_RANGES = {
    name: ((-(2 ** (8 * size - 1)), 2 ** (8 * size - 1) - 1) if name[0] == "I" else (0, 2 ** (8 * size) - 1))
    for name, size in (
        ("INT8", 1),
        ("INT16", 2),
        ("INT32", 4),
        ("INT64", 8),
        ("UINT8", 1),
        ("UINT16", 2),
        ("UINT32", 4),
        ("UINT64", 8),
    )
}


class TensorMetadata(BaseModel):
    name: str
    datatype: str = Field(description="BYTES (text, a path, or JSON text) or FP64 (a number)")
    shape: list[int] = Field(description="[-1]: one value per sample, any number of samples")


class ModelMetadata(BaseModel):
    name: str = Field(description="the deployment's name")
    versions: list[str] = Field(description="the one model version the deployment serves")
    platform: str = Field(description=f"always `{PLATFORM}`")
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class ServerLive(BaseModel):
    live: bool


class ServerReady(BaseModel):
    ready: bool


class ModelReady(BaseModel):
    name: str
    ready: bool


class OipErrorOut(BaseModel):
    error: str = Field(description="what went wrong, in a sentence")


class RequestInput(BaseModel):
    name: str
    shape: list[int] = Field(description="[N]: N samples")
    datatype: str
    parameters: dict[str, Any] | None = Field(
        default=None, description="`binary_data_size`: the tensor's bytes follow the JSON (binary extension)"
    )
    data: list[Any] | None = Field(default=None, description="the N values, when not sent as binary")


class RequestOutput(BaseModel):
    name: str
    parameters: dict[str, Any] | None = Field(default=None, description="`binary_data`: answer this output as binary")


class InferenceRequest(BaseModel):
    id: str | None = None
    parameters: dict[str, Any] | None = Field(
        default=None, description="`binary_data_output`: every output as binary unless it says otherwise"
    )
    inputs: list[RequestInput]
    outputs: list[RequestOutput] | None = Field(default=None, description="the outputs wanted (default: all)")


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = Field(default=None, description="`binary_data_size` when sent as binary")
    data: list[Any] | None = None


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[ResponseOutput]
