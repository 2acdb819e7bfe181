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

from vizcallbacks.compute.attribution import (
    BATCH_SIZE,
    Attribution,
    InputAttribution,
    attribution_probe,
    check_count,
    check_number,
    chosen_map,
)
from vizcallbacks.compute.cache import built_for
from vizcallbacks.compute.class_scores import ClassIndex

__all__ = [
    "GradientsXInputs",
    "IntegratedGradients",
    "Saliency",
    "gradients_x_inputs",
    "integrated_gradients",
    "saliency",
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
        """``images`` float32 ``(N, H, W, C)`` → heatmaps, signed maps and the classes."""
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
        (noise,) = extra  # (N, S, H, W, C) standard normal, drawn with NOISE_SEED
        samples, image = self.smooth_samples, tuple(x.shape[1:])
        span = ops.max(x, axis=(1, 2, 3)) - ops.min(x, axis=(1, 2, 3))
        sigma = ops.reshape(self.noise * span, (-1, 1, 1, 1, 1))
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
        """``images`` ``(N, H, W, C)``; ``baseline`` None (black), a number, one image
        ``(H, W, C)`` or one per image."""
        return self.explain(images, class_index, baseline_for(images, baseline))

    def attribute(
        self, x: Any, target: Any, logits: Any, gradient: Any, *extra: Any
    ) -> tuple[Any, Any]:
        (baseline,) = extra
        image = tuple(x.shape[1:])
        alphas = (ops.arange(self.steps, dtype="float32") + 0.5) / self.steps
        alphas = ops.reshape(alphas, (1, -1, 1, 1, 1))
        path = baseline[:, None] + alphas * (x - baseline)[:, None]  # (N, steps, H, W, C)
        flat = ops.reshape(path, (-1, *image))
        grads = self.gradients(flat, ops.repeat(target, self.steps))
        mean = ops.mean(ops.reshape(grads, (-1, self.steps, *image)), axis=1)
        attribution = (x - baseline) * mean
        return attribution, ops.abs(attribution)


def baseline_for(images: np.ndarray, baseline: Any) -> np.ndarray:
    """The baseline as float32 with the shape of ``images``, or an error naming it."""
    if baseline is None:
        return np.zeros_like(images, dtype=np.float32)
    value = np.asarray(baseline, dtype=np.float32) if not isinstance(baseline, str) else None
    if value is None or not np.isfinite(value).all():
        raise ValueError(
            "baseline must be None (black), a number, one image (H, W, C) or one per image, "
            f"finite. Received: baseline={baseline!r}"
        )
    if value.ndim == 0 or value.shape == images.shape[1:]:
        return np.broadcast_to(value, images.shape).astype(np.float32)
    if value.shape == images.shape:
        return value
    raise ValueError(
        f"baseline must be a number, one image {images.shape[1:]} or one per image "
        f"{images.shape}. Received shape {value.shape}"
    )


def _explain(
    model: keras.Model, images: Any, key: tuple[Any, ...], build: Any, what: str
) -> tuple[np.ndarray, Any]:
    probe = attribution_probe(model, images, what)
    return probe, built_for(model, (*key, probe.shape), lambda: build(probe.shape[1:]))


def saliency(
    model: keras.Model,
    images: np.ndarray,
    class_index: ClassIndex = None,
    smooth_samples: int = 0,
    noise: float = 0.2,
    signed: bool = False,
    output: str | int | None = None,
) -> np.ndarray:
    """Saliency maps float32 ``(N, H, W)``: ``max_c |d score / d x|`` divided by each map's
    maximum, in [0, 1]; ``smooth_samples=S`` averages ``|g|`` over ``S`` noisy copies
    (SmoothGrad, noise std ``noise`` times the image's range). ``signed=True``: the gradient summed
    over channels (SmoothGrad: its mean), in score units. ``class_index=None``: the predicted
    class. Compiled on the first call and kept with the model."""
    check_count("smooth_samples", smooth_samples, 0)
    check_number("noise", noise, 0.0)
    probe, method = _explain(
        model,
        images,
        ("saliency", smooth_samples, float(noise), output),
        lambda shape: Saliency(model, smooth_samples, noise, shape, output),
        "saliency",
    )
    result = method(probe, class_index)
    return chosen_map(result, signed)


def gradients_x_inputs(
    model: keras.Model,
    images: np.ndarray,
    class_index: ClassIndex = None,
    signed: bool = False,
    output: str | int | None = None,
) -> np.ndarray:
    """Gradients times inputs float32 ``(N, H, W)``: ``max_c |g ⊙ x|`` normalized to [0, 1] per
    image; ``signed=True``: ``sum_c g ⊙ x`` in score units. Compiled once per model."""
    probe, method = _explain(
        model,
        images,
        ("gradients_x_inputs", output),
        lambda shape: GradientsXInputs(model, shape, output),
        "gradients_x_inputs",
    )
    result = method(probe, class_index)
    return chosen_map(result, signed)


def integrated_gradients(
    model: keras.Model,
    images: np.ndarray,
    class_index: ClassIndex = None,
    baseline: Any = None,
    steps: int = 32,
    signed: bool = False,
    output: str | int | None = None,
) -> np.ndarray:
    """Integrated gradients float32 ``(N, H, W)`` from ``baseline`` (None: black) in ``steps``
    midpoint steps: ``max_c |a|`` normalized to [0, 1]; ``signed=True``: ``sum_c a``, whose
    total over the image approaches ``score(x) - score(baseline)``. Compiled once per model."""
    check_count("steps", steps, 1)
    probe, method = _explain(
        model,
        images,
        ("integrated_gradients", steps, output),
        lambda shape: IntegratedGradients(model, steps, shape, output),
        "integrated_gradients",
    )
    result = method(probe, class_index, baseline)
    return chosen_map(result, signed)
