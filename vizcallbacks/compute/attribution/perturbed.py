"""The explained class's probability for many perturbed copies of images, as faithfulness needs.

Most of a faithfulness step's cost is the model's forward passes, so an image met before with the
same class (a curve's start and end are shared by every method; deleting pixels already at the
baseline changes nothing) is scored once. Images go through the model as built, in batches of
``batch_size``; the last, partial batch is padded to the next power of two (at least
``MIN_BATCH``), so whatever the count the compiled call sees a few fixed shapes and is not traced
again for a new one (JAX compiles once per shape).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from vizcallbacks.compute.attribution.pipeline import check_count, several_inputs_error
from vizcallbacks.compute.attribution.scores import ClassIndex, ClassScores
from vizcallbacks.compute.backend import compiled, output_arrays
from vizcallbacks.compute.cache import built_for
from vizcallbacks.compute.forward import model_inputs, record_forward
from vizcallbacks.compute.layers import all_layers

__all__ = ["MIN_BATCH", "PERTURBED_BATCH_SIZE", "PerturbedScores", "padded_size", "scorer"]

# 28x28 images on TensorFlow's CPU kernels: 5% less CPU than 256 per image; half the memory
PERTURBED_BATCH_SIZE = 128
MIN_BATCH = 32  # the smallest padded batch: a few shapes in all, little padding scored


def padded_size(count: int, batch_size: int) -> int:
    """The batch shape ``count`` images are padded to: the next power of two, at least
    ``MIN_BATCH``, at most ``batch_size``."""
    return min(batch_size, max(MIN_BATCH, 1 << max(count - 1, 0).bit_length()))


class PerturbedScores(ClassScores):
    """The explained class's probability for many images built in numpy, each distinct image and
    class scored once, in batches of at most ``batch_size`` images, one compiled call per batch
    (weights read fresh each call); ``images_scored`` counts the images sent, padding too."""

    def __init__(
        self,
        model: keras.Model,
        image_shape: tuple[int, ...],
        output: str | int | None = None,
        batch_size: int = PERTURBED_BATCH_SIZE,
    ) -> None:
        recording = record_forward(model, model_inputs(model, np.zeros((1, *image_shape))))
        super().__init__(model, recording, output, "faithfulness")
        self.batch_size = check_count("batch_size", batch_size, 1)
        self._function = compiled(model, functools.partial(self._run))
        self.images_scored = 0

    def _run(self, x: Any, classes: Any) -> tuple[Any, Any]:
        scores = self.scores(self.forward(x)[1], classes)
        return scores["class_probability"], scores["class_index"]

    def classes(self, images: np.ndarray, class_index: ClassIndex) -> np.ndarray:
        """``class_index`` as int32 ``(N,)``, ``None`` resolved to the predicted classes."""
        wanted = self.class_indices(class_index, images.shape[0])
        if (wanted >= 0).all():
            return wanted
        return self.probabilities(images.shape[0], lambda rows: images[rows], wanted)[1]

    def probabilities(
        self, count: int, batch: Callable[[np.ndarray], np.ndarray], classes: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """float64 probabilities ``(count,)`` and classes of the images ``batch(rows)`` builds
        for index arrays ``rows``, ``batch_size`` at a time; ``classes`` ``(count,)`` (``-1``:
        the predicted one). An image and class met before takes the first one's score."""
        copies = _Copies()
        source = np.empty(count, np.int64)  # the distinct image each one is a copy of
        waiting: tuple[np.ndarray, np.ndarray] | None = None  # distinct, not scored yet
        found: list[tuple[np.ndarray, np.ndarray]] = []
        size = self.batch_size
        for start in range(0, count, size):
            rows = np.arange(start, min(start + size, count))
            images = np.ascontiguousarray(batch(rows), dtype=np.float32)
            wanted = np.ascontiguousarray(classes[rows], dtype=np.int32)
            source[rows], fresh = copies.indexed(images, wanted)
            new = (images[fresh], wanted[fresh])
            waiting = new if waiting is None else _joined(waiting, new)
            last = rows[-1] == count - 1
            while len(waiting[0]) >= size or (last and len(waiting[0])):
                found.append(self._scored(waiting[0][:size], waiting[1][:size]))
                waiting = (waiting[0][size:], waiting[1][size:])
        probabilities = np.concatenate([p for p, _ in found]) if found else np.empty(0)
        explained = np.concatenate([c for _, c in found]) if found else np.empty(0, np.int32)
        return probabilities[source], explained[source]

    def _scored(self, images: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One compiled call on ``images`` padded to :func:`padded_size`, the padding dropped."""
        n = images.shape[0]
        extra = padded_size(n, self.batch_size) - n
        if extra > 0:
            images = np.concatenate([images, np.zeros((extra, *images.shape[1:]), np.float32)])
            classes = np.concatenate([classes, np.zeros(extra, np.int32)])
        self.images_scored += images.shape[0]
        out = self._function(model_inputs(self.model, images), keras.ops.convert_to_tensor(classes))
        p, c = output_arrays(out)
        return p[:n].astype(np.float64), c[:n].astype(np.int32)


class _Copies:
    """The images and classes met so far, each by a digest of its bytes and class."""

    def __init__(self) -> None:
        self.first: dict[bytes, int] = {}  # digest → the distinct index of its first copy

    def indexed(self, images: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The distinct index of each of ``images`` (float32) with ``classes`` (int32), and the
        positions of the first copies of those not met before, in index order."""
        n = images.shape[0]
        keyed = np.concatenate(
            [images.reshape(n, -1).view(np.uint8), classes.view(np.uint8).reshape(n, -1)], axis=1
        )
        known, first = len(self.first), self.first
        digests = (hashlib.blake2b(row, digest_size=16).digest() for row in keyed)
        ids = np.array([first.setdefault(d, len(first)) for d in digests], np.int64)
        fresh = np.flatnonzero(ids >= known)
        return ids, fresh[np.unique(ids[fresh], return_index=True)[1]]


def _joined(
    first: tuple[np.ndarray, np.ndarray], second: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([first[0], second[0]]), np.concatenate([first[1], second[1]])


def scorer(
    model: keras.Model, image_shape: tuple[int, ...], output: str | int | None
) -> PerturbedScores:
    """The :class:`PerturbedScores` of ``model`` for images of ``image_shape``, built once."""
    key = ("faithfulness", tuple(image_shape), output)
    if any(getattr(la, "data_format", "") == "channels_first" for _, la in all_layers(model)):
        raise ValueError(
            "faithfulness perturbs channels_last images; this model has channels_first layers. "
            "Leave faithfulness out for this model."
        )
    if len(getattr(model, "inputs", None) or ()) > 1:
        raise several_inputs_error("faithfulness")
    return built_for(model, key, lambda: PerturbedScores(model, tuple(image_shape), output))
