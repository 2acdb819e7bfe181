"""Every attribution method as a function for notebooks: maps of ``images`` for a trained model.

Each reads the probe as the loggers do (one sample or a batch, as the model's input rank says),
builds its method once per model and options (kept with the model, so repeated calls cost one
compiled run) and returns float32 maps ``(N, *spatial)``: ``(N, H, W)`` for images, ``(N, T)``
for signals, ``(N, D, H, W)`` for volumes. ``class_index=None`` explains the predicted class,
else an int or one int per sample (for one sigmoid unit, 0 explains the negative class through
``-logit``); a model with several outputs needs ``output=`` (a name or index).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import keras
import numpy as np

from vizcallbacks.compute.attribution.cams import CAM, GradCAM, GradCAMPlusPlus, LayerCAM, ScoreCAM
from vizcallbacks.compute.attribution.gradients import (
    GradientsXInputs,
    IntegratedGradients,
    Saliency,
)
from vizcallbacks.compute.attribution.occlusion import Occlusion
from vizcallbacks.compute.attribution.pipeline import (
    Explainer,
    check_count,
    check_number,
    several_inputs_error,
)
from vizcallbacks.compute.attribution.result import Attribution, chosen_map
from vizcallbacks.compute.attribution.scores import ClassIndex
from vizcallbacks.compute.cache import built_for
from vizcallbacks.compute.probe import read_probe

__all__ = [
    "grad_cam",
    "grad_cam_plus_plus",
    "gradients_x_inputs",
    "integrated_gradients",
    "layer_cam",
    "occlusion_sensitivity",
    "saliency",
    "score_cam",
]


def _explain(
    model: keras.Model,
    images: Any,
    key: tuple[Hashable, ...],
    build: Callable[[np.ndarray], Explainer],
    class_index: ClassIndex,
    *extra: Any,
) -> Attribution:
    """The maps of ``images`` by the method ``build`` makes, built once per model and ``key``."""
    probe = read_probe(images, model)
    if key[0] not in _CAMS and getattr(probe, "inputs", None) is not None:
        raise several_inputs_error(str(key[0]))
    method: Any = built_for(model, (*key, probe.shape[1:]), lambda: build(probe))
    result: Attribution = method(probe, class_index, *extra)
    return result


_CAMS = frozenset({"grad_cam", "grad_cam_plus_plus", "layer_cam", "score_cam"})


def _cam(
    kind: type[CAM],
    model: keras.Model,
    images: Any,
    layer: str | int | None,
    class_index: ClassIndex,
    output: str | int | None,
    **options: Any,
) -> np.ndarray:
    """The heatmaps of the class activation map ``kind``, built once per model and options."""
    key = (kind.what, layer, *sorted(options.items())) + (() if output is None else (output,))
    build = lambda p: kind(model, layer, p.shape[1:], output, p, **options)  # noqa: E731
    return _explain(model, images, key, build, class_index).heatmaps


def grad_cam(
    model: keras.Model,
    images: np.ndarray,
    layer: str | int | None = None,
    class_index: ClassIndex = None,
    output: str | int | None = None,
) -> np.ndarray:
    """Grad-CAM heatmaps in [0, 1] at the input's resolution: ``ReLU(sum_k alpha_k A_k)`` with
    ``alpha_k`` the spatial mean of ``d score / d A_k``, the score taken before the final
    softmax/sigmoid. ``layer=None``: the last layer with the input's layout. Several inputs: a
    tuple or dict of arrays, the heatmap drawn at the first spatial input's size."""
    return _cam(GradCAM, model, images, layer, class_index, output)


def grad_cam_plus_plus(
    model: keras.Model,
    images: np.ndarray,
    layer: str | int | None = None,
    class_index: ClassIndex = None,
    output: str | int | None = None,
) -> np.ndarray:
    """Grad-CAM++ heatmaps in [0, 1]; arguments as :func:`grad_cam`."""
    return _cam(GradCAMPlusPlus, model, images, layer, class_index, output)


def layer_cam(
    model: keras.Model,
    images: np.ndarray,
    layer: str | int | None = None,
    class_index: ClassIndex = None,
    output: str | int | None = None,
) -> np.ndarray:
    """LayerCAM heatmaps in [0, 1]; arguments as :func:`grad_cam`. Finer than Grad-CAM on early
    layers, where averaging the gradients loses the position."""
    return _cam(LayerCAM, model, images, layer, class_index, output)


def score_cam(
    model: keras.Model,
    images: np.ndarray,
    layer: str | int | None = None,
    class_index: ClassIndex = None,
    top_k: int | None = None,
    output: str | int | None = None,
) -> np.ndarray:
    """Score-CAM heatmaps in [0, 1]; ``top_k=k`` is Faster Score-CAM (the ``k`` channels of
    largest spatial spread). No gradients: one batched pass of N x channels masked inputs."""
    if top_k is not None:
        check_count("top_k", top_k, 1)
    return _cam(ScoreCAM, model, images, layer, class_index, output, top_k=top_k)


def saliency(
    model: keras.Model,
    images: np.ndarray,
    class_index: ClassIndex = None,
    smooth_samples: int = 0,
    noise: float = 0.2,
    signed: bool = False,
    output: str | int | None = None,
) -> np.ndarray:
    """Saliency maps: ``max_c |d score / d x|`` divided by each map's maximum, in [0, 1];
    ``smooth_samples=S`` averages ``|g|`` over ``S`` noisy copies (SmoothGrad, noise std
    ``noise`` times the sample's range). ``signed=True``: the gradient summed over channels
    (SmoothGrad: its mean), in score units."""
    check_count("smooth_samples", smooth_samples, 0)
    check_number("noise", noise, 0.0)
    key = ("saliency", smooth_samples, float(noise), output)
    build = lambda p: Saliency(model, smooth_samples, noise, p.shape[1:], output)  # noqa: E731
    return chosen_map(_explain(model, images, key, build, class_index), signed)


def gradients_x_inputs(
    model: keras.Model,
    images: np.ndarray,
    class_index: ClassIndex = None,
    signed: bool = False,
    output: str | int | None = None,
) -> np.ndarray:
    """Gradients times inputs: ``max_c |g ⊙ x|`` normalized to [0, 1] per sample;
    ``signed=True``: ``sum_c g ⊙ x`` in score units."""
    key = ("gradients_x_inputs", output)
    build = lambda p: GradientsXInputs(model, p.shape[1:], output)  # noqa: E731
    return chosen_map(_explain(model, images, key, build, class_index), signed)


def integrated_gradients(
    model: keras.Model,
    images: np.ndarray,
    class_index: ClassIndex = None,
    baseline: Any = None,
    steps: int = 32,
    signed: bool = False,
    output: str | int | None = None,
) -> np.ndarray:
    """Integrated gradients from ``baseline`` (None: black) in ``steps`` midpoint steps:
    ``max_c |a|`` normalized to [0, 1]; ``signed=True``: ``sum_c a``, whose total over the
    sample approaches ``score(x) - score(baseline)``."""
    check_count("steps", steps, 1)
    key = ("integrated_gradients", steps, output)
    build = lambda p: IntegratedGradients(model, steps, p.shape[1:], output)  # noqa: E731
    return chosen_map(_explain(model, images, key, build, class_index, baseline), signed)


def occlusion_sensitivity(
    model: keras.Model,
    images: np.ndarray,
    class_index: ClassIndex = None,
    patch: int = 4,
    stride: int | None = None,
    fill: float = 0.0,
    signed: bool = False,
    output: str | int | None = None,
) -> np.ndarray:
    """Occlusion maps: the mean score drop when a ``patch``-cell square (segment, cube; every
    ``stride`` cells, default ``patch``) is filled with ``fill``; positive drops divided by each
    map's maximum, in [0, 1]. ``signed=True``: the drop itself in score units (negative where
    hiding the patch raises the score)."""
    patch = check_count("patch", patch, 1)
    stride = None if stride is None else check_count("stride", stride, 1)
    fill = check_number("fill", fill)
    key = ("occlusion_sensitivity", patch, stride, fill, output)
    build = lambda p: Occlusion(model, patch, stride, fill, p.shape[1:], output)  # noqa: E731
    return chosen_map(_explain(model, images, key, build, class_index), signed)
