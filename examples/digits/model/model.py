"""Handwritten-digit classifier for modelhub (numpy + Pillow only).

The package holds this file, ``weights.npz`` and ``manifest.json``.  The weights
are a small multilayer perceptron trained with scikit-learn on the 8x8
``sklearn.datasets.load_digits`` images (see ``examples/digits/build.py``);
inference is plain numpy, so the package needs no scikit-learn at run time.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

SIDE = 8  # the network reads 8x8 images, like sklearn's digits data set
DIGITS_MAX = 16.0  # sklearn's digits pixels run from 0 (background) to 16 (ink)


def load_features(path: str) -> np.ndarray:
    """One image file -> 64 pixel values on sklearn digits' 0..16 scale.

    Grayscale, shrunk to 8x8 by area averaging (BOX), 0..255 mapped to 0..16.
    Images must be light ink on a dark background, like the training data.
    """
    with Image.open(path) as img:
        small = img.convert("L").resize((SIDE, SIDE), Image.Resampling.BOX)
        pixels = np.asarray(small, dtype=np.float64)
    return (pixels * (DIGITS_MAX / 255.0)).reshape(-1)


class Model:
    def __init__(self, model_dir: str):
        with np.load(os.path.join(model_dir, "weights.npz"), allow_pickle=False) as w:
            self.x_scale = float(w["x_scale"])
            self.w1, self.b1 = w["w1"], w["b1"]
            self.w2, self.b2 = w["w2"], w["b2"]
            self.classes = [str(c) for c in w["classes"].tolist()]
        if self.w1.shape[0] != SIDE * SIDE or self.w2.shape[1] != len(self.classes):
            raise ValueError("weights.npz does not match an 8x8 digit classifier")

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """(n, 64) features on the 0..16 scale -> (n, classes) probabilities."""
        hidden = np.maximum(features * self.x_scale @ self.w1 + self.b1, 0.0)
        logits = hidden @ self.w2 + self.b2
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def predict(self, batch: dict[str, list]) -> dict[str, list]:
        paths = batch["image_paths"]
        if not paths:
            return {"predictions": []}
        probs = self.predict_proba(np.stack([load_features(p) for p in paths]))
        best = probs.argmax(axis=1)
        return {
            "predictions": [
                {"label": self.classes[i], "confidence": min(1.0, max(0.0, float(p[i])))}
                for i, p in zip(best.tolist(), probs, strict=True)
            ]
        }
