"""ONNX packages: `model.onnx` and a manifest, no code (API.md §3, "ONNX models").

Runs the package's ONNX file with onnxruntime, in the model's jailed process. Each `local` input
(an image file's path) is decoded with Pillow, converted to the manifest's color, resized to its
size, scaled and normalised, and the mini-batch goes through the session in one run (or in runs of
the graph's fixed batch size, the last one padded). With `labels`, each sample's scores become a
classification: the argmax's label, and its probability (softmax of the scores when
`output_kind` is "logits", the scores as they are when "probabilities") as the confidence.
Without, each sample gets its slice of the raw output tensor (a `json` output).

The registry checked the manifest and the graph's input and output at upload
(modelhub_contracts.onnx_manifest, modelhub_registry.onnx_check); the defaults below are the
contract's, read again here because this runs apart from the hub's code (standard library, numpy,
Pillow and onnxruntime: what the deployment's environment has).
"""

from __future__ import annotations

import glob
import json
import os
from typing import Any

import numpy as np
import onnxruntime as ort
from PIL import Image

DEFAULT_FILE = "model.onnx"
DEFAULT_SCALE = 1 / 255
RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "box": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
    "hamming": Image.Resampling.HAMMING,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
INPUT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
}
# float32 rounding: probabilities that sum to 1 may show 1.0000001 or -1e-9
PROBABILITY_SLACK = 1e-4


class Images:
    """The manifest's `image` section as code: files to one float32 batch in the model's layout."""

    def __init__(self, image: dict[str, Any], rank: int = 4) -> None:
        height, width = image["size"]
        self.size = (int(width), int(height))  # Pillow's order
        self.color = image.get("color", "RGB")
        self.layout = image.get("layout", "NCHW")
        self.resample = RESAMPLE[image.get("resample", "bilinear")]
        self.flat = rank == 2
        channels = 3 if self.color == "RGB" else 1
        mean = np.asarray(image.get("mean") or [0.0] * channels, dtype=np.float32)
        std = np.asarray(image.get("std") or [1.0] * channels, dtype=np.float32)
        # (pixel * scale - mean) / std as one multiply-add per pixel
        self.gain = (float(image.get("scale", DEFAULT_SCALE)) / std).reshape(1, 1, 1, channels)
        self.offset = (-mean / std).reshape(1, 1, 1, channels)

    def pixels(self, path: str) -> np.ndarray:
        """One file as (height, width, channels) uint8, converted and resized."""
        try:
            with Image.open(path) as img:
                if img.mode != self.color:
                    img = img.convert(self.color)
                if img.size != self.size:
                    img = img.resize(self.size, self.resample)
                array = np.asarray(img, dtype=np.uint8)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise ValueError(f"{path}: cannot be read as an image ({exc})") from None
        return array if array.ndim == 3 else array[:, :, None]

    def batch(self, paths: list[str]) -> np.ndarray:
        """The files as one float32 batch: NCHW, NHWC, or flat in layout order for a 2-D input."""
        x = np.stack([self.pixels(p) for p in paths]).astype(np.float32)
        x *= self.gain
        x += self.offset
        if self.layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        if self.flat:
            x = x.reshape(len(paths), -1)
        return np.ascontiguousarray(x)


def providers() -> list[str]:
    """CUDA when onnxruntime has it and this process may use a GPU, then the CPU (which also takes
    whatever CUDA cannot run). The jail shows /dev/nvidia* only to deployments given GPUs, and Ray
    names the replica's GPUs in CUDA_VISIBLE_DEVICES ("" when it has none)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    gpu = bool(glob.glob("/dev/nvidia[0-9]*")) and (visible is None or visible.strip() not in ("", "-1"))
    if gpu and "CUDAExecutionProvider" in ort.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def session_options() -> ort.SessionOptions:
    """One intra-op thread unless the replica was given more (OMP_NUM_THREADS, which Ray sets from
    the replica's CPUs and the jail keeps). The worker keeps two calls in flight per replica and the
    model process runs each in a thread of its own, so calls already overlap on the cores, with the
    image decoding; threads inside each run on top would contend for the same cores. Idle pool
    threads do not spin: spinning burns the CPU the decoding needs."""
    options = ort.SessionOptions()
    try:
        threads = max(1, int(os.environ.get("OMP_NUM_THREADS", "1")))
    except ValueError:
        threads = 1
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


class Model:
    """An ONNX package, run by onnxruntime: `predict({input: [paths]}) -> {output: [values]}`."""

    def __init__(self, root: str) -> None:
        with open(os.path.join(root, "manifest.json"), encoding="utf-8-sig") as fh:
            spec = json.load(fh)["onnx"]
        self.input, self.output = spec["input"], spec["output"]
        self.labels: list[str] | None = spec.get("labels")
        self.logits = spec.get("output_kind", "logits") == "logits"
        path = os.path.join(root, spec.get("file", DEFAULT_FILE))
        self.session = ort.InferenceSession(path, sess_options=session_options(), providers=providers())
        (meta,) = [i for i in self.session.get_inputs() if i.name == self.input]
        self.dtype = INPUT_DTYPES[meta.type]
        self.images = Images(spec["image"], rank=len(meta.shape))
        fixed = meta.shape[0]
        self.fixed_batch = fixed if isinstance(fixed, int) and fixed > 0 else None

    def predict(self, columns: dict[str, list]) -> dict[str, list]:
        paths = columns[self.input]
        x = self.images.batch(paths)
        if self.dtype is np.uint8:
            x = np.clip(np.rint(x), 0, 255)
        scores = self.run(x.astype(self.dtype, copy=False))
        if len(scores) != len(paths):
            raise ValueError(f"output {self.output!r} has {len(scores)} rows for a batch of {len(paths)}")
        if self.labels is None:
            return {self.output: scores.tolist()}
        return {self.output: self.classifications(scores.reshape(len(paths), -1))}

    def run(self, x: np.ndarray) -> np.ndarray:
        """The output for the batch: one run, or runs of the graph's fixed batch size."""
        if self.fixed_batch is None:
            return np.asarray(self.session.run([self.output], {self.input: x})[0])
        size, parts = self.fixed_batch, []
        for start in range(0, len(x), size):
            chunk = x[start : start + size]
            if len(chunk) < size:  # the last runs padded, and the padding's rows are dropped
                chunk = np.concatenate([chunk, np.zeros((size - len(chunk), *chunk.shape[1:]), chunk.dtype)])
            parts.append(np.asarray(self.session.run([self.output], {self.input: chunk})[0])[: len(x) - start])
        return np.concatenate(parts)

    def classifications(self, scores: np.ndarray) -> list[dict[str, Any]]:
        labels = self.labels
        assert labels is not None
        if scores.shape[1] != len(labels):
            raise ValueError(f"output {self.output!r} scores {scores.shape[1]} classes for {len(labels)} labels")
        probs = probabilities(scores.astype(np.float64), self.logits, self.output)
        best = probs.argmax(axis=1)
        confidence = np.clip(probs[np.arange(len(best)), best], 0.0, 1.0)
        return [{"label": labels[i], "confidence": float(c)} for i, c in zip(best.tolist(), confidence, strict=True)]


def probabilities(scores: np.ndarray, logits: bool, name: str) -> np.ndarray:
    """Softmax of logits per row; probabilities as they are, once checked to be in [0, 1]."""
    if logits:
        shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)
    if not np.isfinite(scores).all() or scores.min() < -PROBABILITY_SLACK or scores.max() > 1 + PROBABILITY_SLACK:
        raise ValueError(
            f"output {name!r} holds values outside [0, 1] ({scores.min():g} to {scores.max():g}): not probabilities; "
            "set onnx.output_kind to 'logits' in manifest.json"
        )
    return scores
