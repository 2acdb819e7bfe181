"""Class activation maps beyond Grad-CAM, each one step of Grad-CAM's pipeline changed.

For a layer's maps ``A`` ``(N, h, w, K)`` and ``g = d score / d A``: Grad-CAM++ weighs channel
``k`` by ``sum_ij a_ijk ReLU(g_ijk)`` with ``a = g² / (2 g² + g³ sum_ij A_k)`` normalized to sum
1 over ``ij`` (Chattopadhyay et al., 2018; the ``exp(score)`` factor cancels); LayerCAM keeps
every position, ``ReLU(sum_k ReLU(g_k) ⊙ A_k)`` (Jiang et al., 2021); Score-CAM weighs ``A_k``
by the class probability of the image masked with ``A_k`` upsampled and scaled to [0, 1]
(Wang et al., 2020), the faster variant keeping the ``top_k`` channels of largest spatial
standard deviation. All end as Grad-CAM does: ReLU, bilinear resize, divided by the maximum.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from vizcallbacks.compute.attribution import BATCH_SIZE, attribution_probe, check_count, chunked
from vizcallbacks.compute.cache import built_for
from vizcallbacks.compute.class_scores import ClassIndex
from vizcallbacks.compute.gradcam import GradCAM

__all__ = [
    "GradCAMPlusPlus",
    "LayerCAM",
    "ScoreCAM",
    "grad_cam_plus_plus",
    "layer_cam",
    "score_cam",
]

_SPATIAL = (1, 2)


class GradCAMPlusPlus(GradCAM):
    """Grad-CAM++: positive gradients weighted per position by the second-order ``alpha``."""

    def combine(self, maps: Any, grads: Any) -> Any:
        squared = ops.square(grads)
        total = ops.sum(maps, axis=_SPATIAL, keepdims=True)
        alphas = ops.divide_no_nan(squared, 2.0 * squared + squared * grads * total)
        norm = ops.sum(alphas, axis=_SPATIAL, keepdims=True)
        alphas = ops.divide_no_nan(alphas, norm)
        weights = ops.sum(alphas * ops.relu(grads), axis=_SPATIAL, keepdims=True)
        return ops.relu(ops.sum(weights * maps, axis=-1))


class LayerCAM(GradCAM):
    """LayerCAM: each position's own positive gradient weighs the maps there."""

    def combine(self, maps: Any, grads: Any) -> Any:
        return ops.relu(ops.sum(ops.relu(grads) * maps, axis=-1))


class ScoreCAM(GradCAM):
    """Score-CAM (``top_k=None``: every channel) or Faster Score-CAM (the ``top_k`` channels of
    largest spatial standard deviation, per image). Gradient-free: one batched pass of the
    ``N x channels`` masked images, ``batch_size`` at a time."""

    def __init__(
        self,
        model: keras.Model,
        layer: str | int | None = None,
        image_shape: Sequence[int] | None = None,
        output: str | int | None = None,
        example: Any = None,
        top_k: int | None = None,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self.top_k = None if top_k is None else check_count("top_k", top_k, 1)
        self.batch_size = check_count("batch_size", batch_size, 1)
        super().__init__(model, layer, image_shape, output, example)
        if self.signal or self.channels_first:
            raise ValueError(
                "score_cam explains channels_last image models; "
                f"layer {self.ref.name!r} is {'a signal' if self.signal else 'channels_first'}. "
                "Use grad_cam, grad_cam_plus_plus or layer_cam."
            )

    def _run(self, inputs: Any, size: tuple[int, int], classes: Any) -> dict[str, Any]:
        if isinstance(inputs, (tuple, list, dict)):
            raise ValueError("score_cam explains models with one image input.")
        recording, logits = self.forward(inputs)
        scores = self.scores(logits, classes)
        maps = ops.cast(recording.calls[id(self.ref.layer)][0], "float32")  # (N, h, w, K)
        channels = int(maps.shape[-1])
        if self.top_k is not None and self.top_k < channels:
            spread = ops.std(maps, axis=_SPATIAL)  # (N, K)
            keep = ops.top_k(spread, self.top_k)[1]
            maps = ops.take_along_axis(maps, keep[:, None, None, :], axis=-1)
            channels = self.top_k
        upsampled = ops.image.resize(
            maps, size, interpolation="bilinear", data_format="channels_last"
        )  # (N, H, W, k)
        low = ops.min(upsampled, axis=_SPATIAL, keepdims=True)
        high = ops.max(upsampled, axis=_SPATIAL, keepdims=True)
        masks = ops.divide_no_nan(upsampled - low, high - low)
        masks = ops.transpose(masks, (0, 3, 1, 2))[..., None]  # (N, k, H, W, 1)
        masked = ops.reshape(inputs[:, None] * masks, (-1, *inputs.shape[1:]))
        target = ops.repeat(scores["class_index"], channels)
        probability = chunked(
            lambda images, cls: self.class_probability(self.forward(images)[1], cls),
            self.batch_size,
            masked,
            target,
        )
        weights = ops.reshape(probability, (-1, 1, 1, channels))
        cam = ops.relu(ops.sum(weights * maps, axis=-1))
        scores["heatmaps"] = self.to_input(cam, size)
        return scores


def _cam(
    kind: type[GradCAM],
    model: keras.Model,
    images: Any,
    layer: str | int | None,
    class_index: ClassIndex,
    output: str | int | None,
    **options: Any,
) -> np.ndarray:
    what = kind.__name__
    probe = attribution_probe(model, images, what)
    key = (what, layer, output, probe.shape, *sorted(options.items()))
    method = built_for(
        model, key, lambda: kind(model, layer, probe.shape[1:], output, probe, **options)
    )
    return method(probe, class_index).heatmaps


def grad_cam_plus_plus(
    model: keras.Model,
    images: np.ndarray,
    layer: str | int | None = None,
    class_index: ClassIndex = None,
    output: str | int | None = None,
) -> np.ndarray:
    """Grad-CAM++ heatmaps: float32 ``(N, H, W)`` in [0, 1] at input resolution; arguments as
    :func:`grad_cam`. Compiled on the first call and kept with the model."""
    return _cam(GradCAMPlusPlus, model, images, layer, class_index, output)


def layer_cam(
    model: keras.Model,
    images: np.ndarray,
    layer: str | int | None = None,
    class_index: ClassIndex = None,
    output: str | int | None = None,
) -> np.ndarray:
    """LayerCAM heatmaps: float32 ``(N, H, W)`` in [0, 1]; arguments as :func:`grad_cam`. Finer
    than Grad-CAM on early layers, where averaging the gradients loses the position."""
    return _cam(LayerCAM, model, images, layer, class_index, output)


def score_cam(
    model: keras.Model,
    images: np.ndarray,
    layer: str | int | None = None,
    class_index: ClassIndex = None,
    top_k: int | None = None,
    output: str | int | None = None,
) -> np.ndarray:
    """Score-CAM heatmaps: float32 ``(N, H, W)`` in [0, 1]; ``top_k=k`` is Faster Score-CAM (the
    ``k`` channels of largest spatial spread). No gradients: one batched pass of N x channels
    masked images. Compiled on the first call and kept with the model."""
    if top_k is not None:
        check_count("top_k", top_k, 1)
    return _cam(ScoreCAM, model, images, layer, class_index, output, top_k=top_k)
