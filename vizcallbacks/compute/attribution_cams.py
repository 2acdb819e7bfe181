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

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from vizcallbacks.compute.attribution import BATCH_SIZE, attribution_probe, check_count, chunked
from vizcallbacks.compute.backend import tensorflow_only
from vizcallbacks.compute.cache import built_for
from vizcallbacks.compute.class_scores import ClassIndex
from vizcallbacks.compute.gradcam import GradCAM

if TYPE_CHECKING:
    import tensorflow as tf
else:
    tf = tensorflow_only("grad_cam_plus_plus, layer_cam and score_cam")

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

    def combine(self, maps: tf.Tensor, grads: tf.Tensor) -> tf.Tensor:
        squared = tf.square(grads)
        total = tf.reduce_sum(maps, axis=_SPATIAL, keepdims=True)
        alphas = tf.math.divide_no_nan(squared, 2.0 * squared + squared * grads * total)
        norm = tf.reduce_sum(alphas, axis=_SPATIAL, keepdims=True)
        alphas = tf.math.divide_no_nan(alphas, norm)
        weights = tf.reduce_sum(alphas * tf.nn.relu(grads), axis=_SPATIAL, keepdims=True)
        return tf.nn.relu(tf.reduce_sum(weights * maps, axis=-1))


class LayerCAM(GradCAM):
    """LayerCAM: each position's own positive gradient weighs the maps there."""

    def combine(self, maps: tf.Tensor, grads: tf.Tensor) -> tf.Tensor:
        return tf.nn.relu(tf.reduce_sum(tf.nn.relu(grads) * maps, axis=-1))


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
        # Static shapes (no reduce_retracing): the masked batch is cut into fixed chunks.
        self._function = tf.function(functools.partial(self._run), autograph=False)

    def _run(self, inputs: Any, size: tf.Tensor, classes: tf.Tensor) -> dict[str, tf.Tensor]:
        if not isinstance(inputs, tf.Tensor):
            raise ValueError("score_cam explains models with one image input.")
        recording, logits = self.forward(inputs)
        scores = self.scores(logits, classes)
        maps = tf.cast(recording.calls[id(self.ref.layer)][0], tf.float32)  # (N, h, w, K)
        channels = int(maps.shape[-1])
        if self.top_k is not None and self.top_k < channels:
            spread = tf.math.reduce_std(maps, axis=_SPATIAL)  # (N, K)
            keep = tf.math.top_k(spread, self.top_k).indices
            maps = tf.gather(maps, keep, axis=-1, batch_dims=1)
            channels = self.top_k
        spatial = inputs.shape[1:3]  # static, unlike ``size``: the batch is cut into chunks
        upsampled = tf.image.resize(maps, spatial, method="bilinear")  # (N, H, W, k)
        low = tf.reduce_min(upsampled, axis=_SPATIAL, keepdims=True)
        high = tf.reduce_max(upsampled, axis=_SPATIAL, keepdims=True)
        masks = tf.math.divide_no_nan(upsampled - low, high - low)
        masks = tf.transpose(masks, (0, 3, 1, 2))[..., None]  # (N, k, H, W, 1)
        masked = tf.reshape(inputs[:, None] * masks, (-1, *inputs.shape[1:]))
        target = tf.repeat(scores["class_index"], channels)
        probability = chunked(
            lambda images, cls: self.class_probability(self.forward(images)[1], cls),
            self.batch_size,
            masked,
            target,
        )
        weights = tf.reshape(probability, (-1, 1, 1, channels))
        cam = tf.nn.relu(tf.reduce_sum(weights * maps, axis=-1))
        scores["heatmaps"] = self.to_input(cam, spatial)
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
