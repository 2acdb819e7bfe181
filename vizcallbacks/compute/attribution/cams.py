"""Class activation maps: a layer's maps ``A`` ``(N, *spatial, K)`` weighed per channel (or per
position) and summed, ``L = ReLU(sum_k w_k A_k)``, resized to the input and divided by its
maximum. The variants differ only in the weights ``w``, with ``g = d score / d A`` (the class
logit before the final softmax/sigmoid):

- Grad-CAM: ``w_k = mean_ij g_ijk`` (Selvaraju et al., 2017);
- Grad-CAM++: ``w_k = sum_ij a_ijk ReLU(g_ijk)``, ``a = g² / (2 g² + g³ sum_ij A_k)`` normalized
  to sum 1 over ``ij`` (Chattopadhyay et al., 2018; the ``exp(score)`` factor cancels);
- LayerCAM: ``w_ijk = ReLU(g_ijk)``, every position its own weight (Jiang et al., 2021);
- Score-CAM: ``w_k`` the class probability of the input masked with ``A_k`` upsampled and scaled
  to [0, 1], no gradient (Wang et al., 2020); ``top_k`` keeps the channels of largest spatial
  standard deviation (Faster Score-CAM).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from vizcallbacks.compute.attribution.explained_layer import (
    channels_last,
    explained_layer,
    is_channels_first,
    resized,
    sample_shape,
)
from vizcallbacks.compute.attribution.pipeline import (
    BATCH_SIZE,
    Explainer,
    check_count,
    chunked,
    normalized,
    several_inputs_error,
)
from vizcallbacks.compute.backend import Tap, layer_gradient
from vizcallbacks.compute.layers import ensure_built

__all__ = ["CAM", "GradCAM", "GradCAMPlusPlus", "LayerCAM", "ScoreCAM"]

log = logging.getLogger("vizcallbacks")


class CAM(Explainer):
    """A class activation map of one layer of ``model``, built once, one compiled call per probe.

    ``layer=None`` picks the last layer with the input's layout whose maps are larger than one
    cell (logged); ``output`` names or indexes the explained output of a multi-output model;
    ``example`` is a probe for the trial pass (needed for several inputs). Subclasses implement
    :meth:`weights`; ``needs_gradient = False`` skips the backward pass.
    """

    what = "grad_cam"
    needs_gradient = True

    def __init__(
        self,
        model: keras.Model,
        layer: str | int | None = None,
        image_shape: Sequence[int] | None = None,
        output: str | int | None = None,
        example: Any = None,
    ) -> None:
        shape = sample_shape(model, image_shape, self.what)
        ensure_built(model, (1, *shape))
        self.ref, _, recording = explained_layer(model, layer, shape, self.what, example)
        self.channels_first = is_channels_first(self.ref)  # input (N, C, ...), maps too
        super().__init__(model, recording, output)
        if layer is None:
            log.info(
                "vizcallbacks: %s uses layer %r, the last layer with the input's layout",
                type(self).__name__,
                self.ref.name,
            )

    @property
    def layer_name(self) -> str:
        """The tag-safe name of the layer (``outer/inner`` inside nested models)."""
        return self.ref.name

    @property
    def subject(self) -> str:
        return f"{self.what} of layer {self.ref.name!r}"

    def _run(self, inputs: Any, size: tuple[int, ...], classes: Any, *extra: Any) -> dict[str, Any]:
        grads = None
        if self.needs_gradient:

            def run(tap: Tap) -> tuple[Any, dict[str, Any]]:
                scores = self.scores(self.forward(inputs, {id(self.ref.layer): tap})[1], classes)
                return scores["score"], scores

            maps, grads, scores = layer_gradient(run)
            if grads is None:
                raise ValueError(
                    f"{self.what}: the model's output does not depend on layer "
                    f"{self.ref.name!r}; choose a layer on the path from the input to the output."
                )
            grads = channels_last(grads, self.channels_first)
        else:
            recording, logits = self.forward(inputs)
            scores = self.scores(logits, classes)
            maps = recording.calls[id(self.ref.layer)][0]
        maps = channels_last(maps, self.channels_first)
        weights = self.weights(maps, grads, inputs, scores["class_index"], size)
        cam = ops.relu(ops.sum(weights * maps, axis=-1))
        scores["heatmaps"] = normalized(resized(cam, size))
        return scores

    def weights(self, maps: Any, grads: Any, inputs: Any, target: Any, size: Any) -> Any:
        """The weight of each channel (broadcast over ``maps`` ``(N, *spatial, K)``) for the
        classes ``target``; ``grads`` is ``d score / d maps`` (None without a gradient)."""
        raise NotImplementedError


def _spatial(maps: Any) -> tuple[int, ...]:
    return tuple(range(1, len(maps.shape) - 1))


class GradCAM(CAM):
    """Grad-CAM: each channel weighed by its mean gradient."""

    def weights(self, maps: Any, grads: Any, inputs: Any, target: Any, size: Any) -> Any:
        return ops.mean(grads, axis=_spatial(maps), keepdims=True)


class GradCAMPlusPlus(CAM):
    """Grad-CAM++: positive gradients weighted per position by the second-order ``alpha``."""

    what = "grad_cam_plus_plus"

    def weights(self, maps: Any, grads: Any, inputs: Any, target: Any, size: Any) -> Any:
        axes = _spatial(maps)
        squared = ops.square(grads)
        total = ops.sum(maps, axis=axes, keepdims=True)
        alphas = ops.divide_no_nan(squared, 2.0 * squared + squared * grads * total)
        alphas = ops.divide_no_nan(alphas, ops.sum(alphas, axis=axes, keepdims=True))
        return ops.sum(alphas * ops.relu(grads), axis=axes, keepdims=True)


class LayerCAM(CAM):
    """LayerCAM: each position's own positive gradient weighs the maps there."""

    what = "layer_cam"

    def weights(self, maps: Any, grads: Any, inputs: Any, target: Any, size: Any) -> Any:
        return ops.relu(grads)


class ScoreCAM(CAM):
    """Score-CAM (``top_k=None``: every channel) or Faster Score-CAM (the ``top_k`` channels of
    largest spatial standard deviation, per probe). Gradient-free: one batched pass of the
    ``N x channels`` masked inputs, ``batch_size`` at a time. One channels_last input."""

    what = "score_cam"
    needs_gradient = False

    def __init__(
        self,
        model: keras.Model,
        *args: Any,
        top_k: int | None = None,
        batch_size: int = BATCH_SIZE,
        **kwargs: Any,
    ) -> None:
        """Arguments as :class:`CAM` (``layer``, ``image_shape``, ``output``, ``example``), then
        ``top_k`` and ``batch_size`` by name."""
        self.top_k = None if top_k is None else check_count("top_k", top_k, 1)
        self.batch_size = check_count("batch_size", batch_size, 1)
        example = args[3] if len(args) > 3 else kwargs.get("example")
        if getattr(example, "inputs", None) is not None:
            raise several_inputs_error(self.what)
        super().__init__(model, *args, **kwargs)
        if self.channels_first:
            raise ValueError(
                f"score_cam explains channels_last models; layer {self.ref.name!r} is "
                "channels_first. Use grad_cam, grad_cam_plus_plus or layer_cam."
            )

    def weights(self, maps: Any, grads: Any, inputs: Any, target: Any, size: Any) -> Any:
        channels = int(maps.shape[-1])
        kept = maps
        keep = None
        if self.top_k is not None and self.top_k < channels:
            keep = ops.top_k(ops.std(maps, axis=_spatial(maps)), self.top_k)[1]  # (N, k)
            kept = ops.take_along_axis(
                maps, ops.reshape(keep, (-1, *[1] * len(size), self.top_k)), -1
            )
        k = int(kept.shape[-1])
        flat = ops.reshape(ops.moveaxis(kept, -1, 1), (-1, *kept.shape[1:-1]))  # (N k, *spatial)
        upsampled = ops.reshape(resized(flat, size), (-1, k, *size))
        axes = tuple(range(2, 2 + len(size)))
        low = ops.min(upsampled, axis=axes, keepdims=True)
        high = ops.max(upsampled, axis=axes, keepdims=True)
        masks = ops.divide_no_nan(upsampled - low, high - low)[..., None]  # (N, k, *size, 1)
        masked = ops.reshape(inputs[:, None] * masks, (-1, *inputs.shape[1:]))
        probability = chunked(
            lambda values, cls: self.class_probability(self.forward(values)[1], cls),
            self.batch_size,
            masked,
            ops.repeat(target, k),
        )
        probability = ops.reshape(probability, (-1, k))
        if keep is not None:  # the other channels weigh nothing
            probability = ops.sum(ops.one_hot(keep, channels) * probability[..., None], axis=1)
        return ops.reshape(probability, (-1, *[1] * len(size), channels))
