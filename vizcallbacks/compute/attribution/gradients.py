"""Gradient attributions: saliency and SmoothGrad, gradients times inputs, integrated gradients.

With ``g = d score / d x`` (the class logit before softmax/sigmoid): saliency shows ``|g|``
(Simonyan et al., 2014); SmoothGrad averages ``|g|`` over noisy copies of the image (Smilkov et
al., 2017); gradients times inputs is ``g ⊙ x``; integrated gradients ``(x - b) ⊙ mean_s g(b + a_s
(x - b))`` with ``a_s = (s + 1/2) / steps`` (Sundararajan et al., 2017), summing to
``score(x) - score(b)`` over the image as ``steps`` grows. Each is one compiled call: the noisy
copies and the path steps go through the model as one batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from vizcallbacks.compute.attribution.pipeline import (
    BATCH_SIZE,
    InputAttribution,
    check_count,
    check_number,
)
from vizcallbacks.compute.attribution.result import Attribution
from vizcallbacks.compute.attribution.scores import ClassIndex

__all__ = [
    "NOISE_SEED",
    "GradientsXInputs",
    "IntegratedGradients",
    "Saliency",
    "baseline_for",
    "baseline_value",
]

NOISE_SEED = 1602  # the same noise every call and backend, so epochs are compared on equal terms


class Saliency(InputAttribution):
    """``|d score / d x|``; with ``smooth_samples=S > 0`` SmoothGrad: the mean of ``|g|`` over
    ``S`` copies with Gaussian noise of std ``noise`` times each image's value range."""

    what = "saliency"

    def __init__(
        self,
        model: keras.Model,
        smooth_samples: int = 0,
        noise: float = 0.2,
        image_shape: Sequence[int] | None = None,
        output: str | int | None = None,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self.smooth_samples = check_count("smooth_samples", smooth_samples, 0)
        self.noise = check_number("noise", noise, 0.0)
        self.needs_gradient = self.smooth_samples == 0
        super().__init__(model, image_shape, output, batch_size)

    def __call__(self, images: np.ndarray, class_index: ClassIndex = None) -> Attribution:
        """``images`` float32 ``(N, ..., C)`` → heatmaps, signed maps and the classes."""
        if self.smooth_samples == 0:
            return self.explain(images, class_index)
        shape = (images.shape[0], self.smooth_samples, *images.shape[1:])
        noise = np.random.default_rng(NOISE_SEED).standard_normal(shape, dtype=np.float32)
        return self.explain(images, class_index, noise)

    def attribute(
        self, x: Any, target: Any, logits: Any, gradient: Any, *extra: Any
    ) -> tuple[Any, Any]:
        if gradient is not None:
            return gradient, ops.abs(gradient)
        (noise,) = extra  # (N, S, ...) standard normal, drawn with NOISE_SEED
        samples, image = self.smooth_samples, tuple(x.shape[1:])
        axes = tuple(range(1, len(x.shape)))
        span = ops.max(x, axis=axes) - ops.min(x, axis=axes)
        sigma = ops.reshape(self.noise * span, (-1, 1, *[1] * len(image)))
        noisy = x[:, None] + sigma * noise
        grads = self.gradients(ops.reshape(noisy, (-1, *image)), ops.repeat(target, samples))
        grads = ops.reshape(grads, (-1, samples, *image))
        return ops.mean(grads, axis=1), ops.mean(ops.abs(grads), axis=1)


class GradientsXInputs(InputAttribution):
    """``g ⊙ x``: the first-order share of each pixel in the score."""

    what = "gradients_x_inputs"

    def attribute(
        self, x: Any, target: Any, logits: Any, gradient: Any, *extra: Any
    ) -> tuple[Any, Any]:
        product = gradient * x
        return product, ops.abs(product)


class IntegratedGradients(InputAttribution):
    """``(x - b) ⊙`` the mean gradient at ``steps`` midpoints of the straight path from the
    baseline ``b`` (passed per call) to ``x``."""

    what = "integrated_gradients"
    needs_gradient = False

    def __init__(
        self,
        model: keras.Model,
        steps: int = 32,
        image_shape: Sequence[int] | None = None,
        output: str | int | None = None,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self.steps = check_count("steps", steps, 1)
        super().__init__(model, image_shape, output, batch_size)

    def __call__(
        self, images: np.ndarray, class_index: ClassIndex = None, baseline: Any = None
    ) -> Attribution:
        """``images`` ``(N, ..., C)``; ``baseline`` None (black), a number, one sample or one
        per sample."""
        return self.explain(images, class_index, baseline_for(images, baseline))

    def attribute(
        self, x: Any, target: Any, logits: Any, gradient: Any, *extra: Any
    ) -> tuple[Any, Any]:
        (baseline,) = extra
        image = tuple(x.shape[1:])
        alphas = (ops.arange(self.steps, dtype="float32") + 0.5) / self.steps
        alphas = ops.reshape(alphas, (1, -1, *[1] * len(image)))
        path = baseline[:, None] + alphas * (x - baseline)[:, None]  # (N, steps, ...)
        flat = ops.reshape(path, (-1, *image))
        grads = self.gradients(flat, ops.repeat(target, self.steps))
        mean = ops.mean(ops.reshape(grads, (-1, self.steps, *image)), axis=1)
        attribution = (x - baseline) * mean
        return attribution, ops.abs(attribution)


def baseline_value(baseline: Any) -> np.ndarray | None:
    """``baseline`` as float32 (None: black), or an error naming it when it is not finite."""
    if baseline is None:
        return None
    value = np.asarray(baseline, dtype=np.float32) if not isinstance(baseline, str) else None
    if value is None or not np.isfinite(value).all():
        raise ValueError(
            "baseline must be None (black), a number, one image (H, W, C) or one per image, "
            f"finite. Received: baseline={baseline!r}"
        )
    return value


def baseline_for(images: np.ndarray, baseline: Any) -> np.ndarray:
    """The baseline as float32 with the shape of ``images``, or an error naming it."""
    value = baseline_value(baseline)
    if value is None:
        return np.zeros_like(images, dtype=np.float32)
    if value.ndim == 0 or value.shape == images.shape[1:]:
        return np.broadcast_to(value, images.shape).astype(np.float32)
    if value.shape == images.shape:
        return value
    raise ValueError(
        f"baseline must be a number, one image {images.shape[1:]} or one per image "
        f"{images.shape}. Received shape {value.shape}"
    )
