"""The sanity check of Adebayo et al. (2018): does a map change when the model forgets?

The top layer's weights are re-initialized (its own initializers, a fixed seed), the maps computed
again and compared with the trained model's by Spearman rank correlation; the weights are then
put back exactly. A map that ignores the model scores near 1.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import keras
import numpy as np

from vizcallbacks.compute.forward import model_inputs, record_forward
from vizcallbacks.compute.layers import LayerRef, leaf_layers

__all__ = ["SANITY_SEED", "reinitialized", "spearman", "top_layer"]

SANITY_SEED = 2018  # the same re-initialization every step, so steps compare on equal terms


def top_layer(model: keras.Model, probe: Any) -> LayerRef:
    """The last layer called on ``probe`` that holds weights (nested models opened)."""
    recording = record_forward(model, model_inputs(model, probe))
    called = {key: i for i, key in enumerate(recording.order)}
    weighted = [r for r in leaf_layers(model) if r.layer.weights and id(r.layer) in called]
    if not weighted:
        raise ValueError("sanity_check needs a model with weights; this one has none.")
    return max(weighted, key=lambda r: called[id(r.layer)])


def _fresh(layer: keras.layers.Layer, variable: Any, seed: int) -> np.ndarray:
    """A new value for ``variable`` from the layer's own initializer for it (``kernel`` →
    ``kernel_initializer``), seeded; Glorot uniform (2-D and up) or zeros when it has none."""
    name = str(getattr(variable, "path", variable.name)).rsplit("/", 1)[-1].split(":")[0]
    initializer = getattr(layer, f"{name}_initializer", None)
    if initializer is None:
        initializer = "glorot_uniform" if len(variable.shape) >= 2 else "zeros"
    initializer = keras.initializers.get(initializer)
    config = initializer.get_config()
    if "seed" in config:
        initializer = type(initializer).from_config({**config, "seed": seed})
    return np.asarray(initializer(tuple(variable.shape), dtype=variable.dtype))


@contextmanager
def reinitialized(layer: keras.layers.Layer, seed: int = SANITY_SEED) -> Iterator[None]:
    """Within the block ``layer``'s weights are freshly initialized; afterwards exactly restored
    (trainable flags and dtype policy are never touched)."""
    saved = [np.array(v) for v in layer.weights]
    try:
        for i, variable in enumerate(layer.weights):
            variable.assign(_fresh(layer, variable, seed + i))
        yield
    finally:
        for variable, value in zip(layer.weights, saved, strict=True):
            variable.assign(value)


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``values`` (flattened), tied values sharing their mean rank."""
    _, inverse, counts = np.unique(values.ravel(), return_inverse=True, return_counts=True)
    last = np.cumsum(counts)
    return (last - (counts - 1) / 2.0)[inverse.ravel()]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two maps of the same size, in [-1, 1]; 0 when either map is
    constant (it ranks nothing)."""
    ra, rb = _ranks(np.asarray(a, dtype=np.float64)), _ranks(np.asarray(b, dtype=np.float64))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    norm = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / norm) if norm > 0 else 0.0
