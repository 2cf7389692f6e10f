"""The `onnx` section of an ONNX package's manifest.json (API.md §3, "ONNX models"): its fields,
their defaults, and the checks that need neither onnx nor the model file.

An ONNX package carries no code: `{"format": "onnx", "onnx": {...}}` tells the replica to run
`model.onnx` with onnxruntime through the adapter `modelhub_formats.onnx_model` (shipped with the
replica), which reads the same fields with the same defaults. Checked here, at upload (through
`package.inspect_package`): the section's fields and types, by name; the package's schema
against it (`schema_problem`). The registry then opens the ONNX file itself (onnx's checker, no
user code) to check the graph's input and output against these fields.

The schema names are the ONNX tensor names: the schema has exactly one `local` input, named as the
graph input `input`, and one output named as the graph output `output`, of type `classification`
when `labels` are given (argmax over the output, with its probability as the confidence) and
`json` when not (each sample's slice of the raw tensor). One name for each thing, end to end,
instead of a second mapping to keep in step.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from modelhub_contracts.model_schema import FIELD_NAME_RE

DEFAULT_FILE = "model.onnx"
DEFAULT_SCALE = 1 / 255  # 8-bit pixels to [0, 1], what most image models are trained on
MAX_SIDE = 8192
MAX_LABELS = 100_000
CHANNELS = {"RGB": 3, "L": 1}

_Float = Annotated[float, Field(allow_inf_nan=False)]
_Side = Annotated[int, Field(ge=1, le=MAX_SIDE)]
_Name = Annotated[str, Field(min_length=1, max_length=64)]


class _Strict(BaseModel):
    # strict: "224" is not 224 and true is not 1; extra="forbid": a misspelt field is named, not ignored
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ImageSpec(_Strict):
    """How each `local` input file becomes the model's input tensor: decoded (Pillow), converted to
    `color`, resized to `size` with `resample`, then `pixel * scale`, then `(x - mean) / std`."""

    size: Annotated[list[_Side], Field(min_length=2, max_length=2, description="[height, width]")]
    color: Literal["RGB", "L"] = "RGB"
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    resample: Literal["nearest", "box", "bilinear", "hamming", "bicubic", "lanczos"] = "bilinear"
    scale: _Float = DEFAULT_SCALE
    mean: list[_Float] | None = None  # one per channel; default 0
    std: list[Annotated[float, Field(gt=0, allow_inf_nan=False)]] | None = None  # one per channel; default 1

    @model_validator(mode="after")
    def _one_per_channel(self) -> ImageSpec:
        channels = CHANNELS[self.color]
        for name in ("mean", "std"):
            values = getattr(self, name)
            if values is not None and len(values) != channels:
                raise ValueError(f"{name} needs {channels} value(s) for color {self.color!r}, got {len(values)}")
        return self


class OnnxSpec(_Strict):
    """The `onnx` section: which file, which tensors, how images are prepared, how outputs read."""

    file: Annotated[str, Field(min_length=1, max_length=1024)] = DEFAULT_FILE
    input: _Name
    output: _Name
    # Softmax or not is said, never guessed from the values: a guess that reads a batch of logits
    # that happens to sum to ~1 as probabilities (or the reverse) gives confidences that mean
    # nothing, quietly.
    output_kind: Literal["logits", "probabilities"] = "logits"
    image: ImageSpec
    labels: (
        Annotated[list[Annotated[str, Field(max_length=256)]], Field(min_length=1, max_length=MAX_LABELS)] | None
    ) = None

    @model_validator(mode="after")
    def _names_are_field_names(self) -> OnnxSpec:
        for name in ("input", "output"):
            if not FIELD_NAME_RE.match(getattr(self, name)):
                raise ValueError(
                    f"{name} {getattr(self, name)!r} must be a valid schema name (letters, digits and _, not "
                    "starting with a digit): the schema's names are the graph's; rename the tensor when exporting"
                )
        return self

    @property
    def output_type(self) -> str:
        """The schema type the output must have: labels make it a classification."""
        return "classification" if self.labels else "json"


class ManifestError(ValueError):
    """A manifest field that is refused; the message starts with the field's path (`onnx.image.size`)."""


def parse_onnx_section(section: Any) -> OnnxSpec:
    """The `onnx` section as OnnxSpec, or ManifestError naming the first faulty field."""
    if not isinstance(section, dict):
        raise ManifestError("onnx: is required for format 'onnx' and must be an object")
    try:
        return OnnxSpec.model_validate(section)
    except ValidationError as exc:
        error = exc.errors()[0]
        path = ".".join(str(part) for part in ("onnx", *error["loc"]))
        message = error["msg"].removeprefix("Value error, ")
        raise ManifestError(f"{path}: {message}") from None


def schema_problem(spec: OnnxSpec, schema: dict) -> str | None:
    """None when a (valid) model schema fits the manifest, else what does not, naming both fields."""
    inputs = {name: s["type"] for name, s in schema["inputs"]["properties"].items()}
    outputs = {name: s["type"] for name, s in schema["outputs"]["properties"].items()}
    if list(inputs) != [spec.input]:
        return f"schema inputs {sorted(inputs)}: an ONNX package has one input, named as onnx.input ({spec.input!r})"
    if inputs[spec.input] != "local":
        return (
            f"schema inputs.properties.{spec.input}.type: must be 'local' (an image file), got {inputs[spec.input]!r}"
        )
    if list(outputs) != [spec.output]:
        return (
            f"schema outputs {sorted(outputs)}: an ONNX package has one output, named as onnx.output ({spec.output!r})"
        )
    if outputs[spec.output] != spec.output_type:
        because = "onnx.labels are given" if spec.labels else "onnx.labels are not given (the raw tensor)"
        return (
            f"schema outputs.properties.{spec.output}.type: must be {spec.output_type!r} because {because}, "
            f"got {outputs[spec.output]!r}"
        )
    return None
