"""Gram matrices of a model's layers over a probe set, batch by batch, and the notebook CKA.

The probe set goes through the recorded forward pass (:class:`ActivationExtractor`) in batches,
so a layer's full features exist for one batch at a time only. Each example's features are
flattened; a layer whose features for the whole set would pass ``max_layer_bytes`` is first
average-pooled over its spatial axes to at most 8 x 8 (:func:`pool_spatial`), and named in
``reduced``. Once the whole set has passed, each layer's kept rows give its Gram matrix, centred
over the probe set (:func:`centered_gram`): the same as from one pass over all examples at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from vizcallbacks.arrays import check_positive_int
from vizcallbacks.compute.cka import (
    MAX_POOLED_SIDE,
    centered_gram,
    cross_cka,
    pool_spatial,
    unit_centered,
)
from vizcallbacks.compute.forward import ActivationExtractor
from vizcallbacks.compute.layers import LayerSelection, select_layers
from vizcallbacks.compute.probe import given_probe, provisional_probe, read_probe

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MAX_LAYER_BYTES",
    "MIN_PROBES",
    "GramSet",
    "LayerGrams",
    "check_probe_set",
    "cka_matrix",
]

MIN_PROBES = 16  # fewer examples say little about a representation
DEFAULT_BATCH_SIZE = 64
DEFAULT_MAX_LAYER_BYTES = 32 << 20  # float32 features of one layer for the whole probe set


@dataclass(frozen=True)
class GramSet:
    """Each layer's Gram matrix over the probe set, centred (``H X Xᵀ H``): ``grams`` float64
    ``(L, n, n)``, in the order of ``layers``; ``reduced`` names the layers pooled to fit the
    memory budget."""

    layers: tuple[str, ...]
    grams: np.ndarray
    reduced: tuple[str, ...] = ()

    def units(self, debiased: bool = False) -> np.ndarray:
        """The unit centred Grams ``(L, n, n)``: CKA between two layers is their inner product."""
        return np.stack([unit_centered(k, debiased) for k in self.grams])


def check_probe_set(
    images: Any, model: keras.Model | None = None, least: int = MIN_PROBES
) -> np.ndarray:
    """``images`` as a float32 batch of at least ``least`` examples, read as ``model`` reads a
    probe (its batch axis settled by the model's input rank); ValueError otherwise."""
    if model is not None:
        probe = read_probe(images, model)
    else:  # before the model is known: the first axis counts the examples
        given = given_probe(images)
        probe = given if isinstance(given, np.ndarray) else provisional_probe(given)
    if probe.shape[0] < least:
        raise ValueError(
            f"images must hold a probe set of at least {least} examples (256 is typical): CKA "
            f"compares representations across examples. Received {probe.shape[0]}"
        )
    return probe


class LayerGrams:
    """Gram matrices of the chosen layers of ``model`` for a probe set, built once per run.

    Args:
        model: a built Keras model.
        layers: layer names, nested paths or indices; ``None`` takes every layer.
        batch_size: examples per forward pass.
        max_layer_bytes: a layer whose float32 features for the whole probe set pass this many
            bytes is average-pooled over its spatial axes to at most 8 x 8 first.
        channels_first: names of layers whose outputs put channels before the spatial axes.
    """

    def __init__(
        self,
        model: keras.Model,
        layers: LayerSelection = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_layer_bytes: int = DEFAULT_MAX_LAYER_BYTES,
        channels_first: frozenset[str] = frozenset(),
    ) -> None:
        self.model = model
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.max_layer_bytes = check_positive_int("max_layer_bytes", max_layer_bytes)
        self.channels_first = channels_first
        self.extractor = ActivationExtractor(model, select_layers(model, layers))

    def _too_large(self, values: np.ndarray, n: int) -> bool:
        """True when pooling would shrink a layer whose features for ``n`` examples pass the
        budget (a spatial axis longer than 8)."""
        spatial = values.shape[1:-1]
        per_example = int(np.prod(values.shape[1:]))
        return max(spatial, default=0) > MAX_POOLED_SIDE and 4 * n * per_example > (
            self.max_layer_bytes
        )

    def __call__(self, images: np.ndarray) -> GramSet:
        """The Gram matrix of every chosen layer (tensor outputs only) over ``images``."""
        n = images.shape[0]
        rows: dict[str, list[np.ndarray]] = {}
        reduced: list[str] = []
        for start in range(0, n, self.batch_size):
            outputs = self.extractor(images[start : start + self.batch_size])
            for name, values in outputs.items():
                if name in self.channels_first and values.ndim >= 3:
                    values = np.moveaxis(values, 1, -1)
                if self._too_large(values, n):
                    values = pool_spatial(values)
                    if start == 0:
                        reduced.append(name)
                rows.setdefault(name, []).append(values.reshape(values.shape[0], -1))
        names = tuple(rows)
        grams = np.stack([centered_gram(np.concatenate(rows.pop(name))) for name in names])
        return GramSet(names, grams, tuple(reduced))


def cka_matrix(
    model_a: keras.Model,
    images: Any,
    model_b: keras.Model | None = None,
    layers_a: LayerSelection = None,
    layers_b: LayerSelection = None,
    debiased: bool = False,
) -> tuple[np.ndarray, list[str], list[str]]:
    """Linear CKA of every layer of ``model_a`` with every layer of ``model_b`` (``model_a``
    itself by default) over the probe set ``images`` ``(n, H, W, C)``, n ≥ 16.

    Returns the matrix ``(La, Lb)`` and the layer names along each axis. Large layers are
    reduced as :class:`LayerGrams` says.
    """
    probe = check_probe_set(images)
    sides: list[GramSet] = []
    for model, layers in ((model_a, layers_a), (model_b, layers_b)):
        if model is None and layers is None:  # model_a against itself: one pass
            sides.append(sides[0])
            continue
        model = model or model_a
        sides.append(LayerGrams(model, layers)(check_probe_set(probe, model)))
    a, b = sides
    units_a = a.units(debiased)
    units_b = units_a if b is a else b.units(debiased)
    return cross_cka(units_a, units_b), list(a.layers), list(b.layers)
