"""Grad-CAM: which parts of an image a conv layer's feature maps use as evidence for a class.

For feature maps ``A`` ``(N, h, w, K)`` of a layer and the class score ``y_c`` taken before the
final softmax/sigmoid: ``alpha_k = mean_ij dy_c/dA_ijk``, ``L = ReLU(sum_k alpha_k A_k)``,
resized (bilinear) to the input and divided by its maximum (Selvaraju et al., 2017).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from keras import ops

from vizcallbacks.compute.backend import Tap, compiled, layer_gradient, runtime_errors
from vizcallbacks.compute.cache import built_for
from vizcallbacks.compute.cam_layouts import check_signals, model_signal_shape, signal_layer
from vizcallbacks.compute.class_scores import ClassIndex, ClassScores, pick_output
from vizcallbacks.compute.errors import view_failure
from vizcallbacks.compute.forward import Recording, model_inputs, record_forward
from vizcallbacks.compute.layers import LayerRef, ensure_built, leaf_layers, select_layers
from vizcallbacks.compute.probe import check_probe, check_probe_fits_model

__all__ = [
    "ClassIndex",
    "GradCAM",
    "GradCAMResult",
    "grad_cam",
    "input_image_shape",
    "is_channels_first",
    "pick_output",
    "spatial_layer",
]

log = logging.getLogger("vizcallbacks")


@dataclass(frozen=True)
class GradCAMResult:
    """Heatmaps and the classes behind them for a batch of ``N`` images."""

    heatmaps: np.ndarray  # float32 (N, H, W) in [0, 1], at input resolution
    class_index: np.ndarray  # int64 (N,): the class each heatmap explains
    predicted: np.ndarray  # int64 (N,): the model's predicted class
    probability: np.ndarray  # float32 (N,): the probability of the predicted class
    class_probability: np.ndarray  # float32 (N,): the probability of the explained class


def input_image_shape(
    model: keras.Model, image_shape: Sequence[int] | None, what: str
) -> tuple[int, int, int]:
    """``(H, W, C)`` from ``image_shape`` or the model's input; raise naming ``what`` if unknown."""
    if image_shape is not None:
        shape = tuple(image_shape)
        if len(shape) != 3 or not all(
            isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0 for d in shape
        ):
            raise ValueError(
                f"{what}: image_shape must be three positive ints (H, W, C). "
                f"Received: image_shape={image_shape!r}"
            )
        return int(shape[0]), int(shape[1]), int(shape[2])
    try:
        shape = tuple(model.inputs[0].shape[1:])
    except (AttributeError, ValueError, TypeError, IndexError):
        shape = ()
    if len(shape) != 3 or any(d is None for d in shape):
        raise ValueError(
            f"{what}: cannot tell the input image size from the model (its input shape is "
            f"{shape or 'unknown'}). Pass image_shape=(H, W, C), or build the model with "
            "keras.Input(shape=(H, W, C))."
        )
    return int(shape[0]), int(shape[1]), int(shape[2])


def spatial_layer(
    model: keras.Model,
    layer: str | int | None,
    image_shape: Sequence[int],
    what: str,
    example: Any = None,
) -> tuple[LayerRef, Any, Recording]:
    """The layer with a 4-D output named by ``layer`` (``None``: the last one called whose maps
    are larger than 1x1), its output and the recorded pass, on ``example`` (default: a blank
    image); a nested model's or block's name means its last one.
    """
    refs = leaf_layers(model) if layer is None else select_layers(model, [layer])
    inputs = (
        ops.zeros((1, *image_shape), dtype="float32")
        if example is None
        else model_inputs(model, example)
    )
    recording = record_forward(model, inputs)
    called = {key: i for i, key in enumerate(recording.order)}
    refs = sorted((r for r in refs if id(r.layer) in called), key=lambda r: called[id(r.layer)]) + [
        r for r in refs if id(r.layer) not in called
    ]
    spatial = [r for r in refs if len(_first_shape(recording, r)) == 4]
    if not spatial:
        shapes = {r.name: _shape(recording.calls.get(id(r.layer), [None])[0]) for r in refs}
        if layer is None:
            raise ValueError(
                f"{what}: the model has no layer with a 4-D (N, H, W, C) output; it needs a "
                "convolutional part. Layers: "
                + ", ".join(f"{name} {shape}" for name, shape in shapes.items())
            )
        raise ValueError(
            f"{what}: layer={layer!r} has no 4-D (N, H, W, C) output "
            f"(its output shape is {shapes[refs[-1].name] if refs else 'unknown'}). "
            "Name a conv, pooling or activation layer."
        )
    chosen = spatial[-1]
    if is_channels_first(chosen) and what != "grad_cam":
        raise ValueError(
            f"{what}: layer {chosen.name!r} is channels_first; filter patterns support "
            "channels_last layers only so far. ActivationLogger, FilterLogger and GradCAMLogger "
            "draw this model; for filter patterns, build it with data_format='channels_last'."
        )
    if _is_1x1(recording, chosen):
        larger = [r for r in spatial if not _is_1x1(recording, r)]
        if layer is None and larger:
            log.warning(
                "vizcallbacks: %s: the last layer with a 4-D output, %s, is 1x1 for this input "
                "size, so its heatmap would be uniform; using %s, the last one larger than 1x1.",
                what,
                chosen.name,
                larger[-1].name,
            )
            chosen = larger[-1]
        else:
            log.warning(
                "vizcallbacks: %s: layer %s is 1x1 for this input size: its heatmap is uniform "
                "(one cell, resized to the image). Pick an earlier layer with larger maps.",
                what,
                chosen.name,
            )
    return chosen, recording.calls[id(chosen.layer)][0], recording


def _first_shape(recording: Recording, ref: LayerRef) -> tuple[Any, ...]:
    values = recording.calls.get(id(ref.layer))
    return tuple(getattr(values[0], "shape", ())) if values else ()


def _is_1x1(recording: Recording, ref: LayerRef) -> bool:
    spatial = slice(2, 4) if is_channels_first(ref) else slice(1, 3)
    return _first_shape(recording, ref)[spatial] == (1, 1)


def is_channels_first(ref: LayerRef) -> bool:
    """True when the layer behind ``ref`` lays out its maps as ``(N, C, H, W)``."""
    return getattr(ref.layer, "data_format", None) == "channels_first"


def _shape(value: Any) -> str:
    return str(tuple(value.shape)) if hasattr(value, "shape") else "unknown"


class GradCAM(ClassScores):
    """Grad-CAM of one layer of ``model``, built once, one compiled forward/backward per call.

    ``layer=None`` picks the last layer with a 4-D output larger than 1x1 (logged); ``output``
    names or indexes the explained output of a multi-output model; ``example`` is a probe used
    for the trial pass (needed for several inputs). Weights are read fresh on every call; the
    model itself (weights, trainable flags, dtype policy) is never changed.
    """

    def __init__(
        self,
        model: keras.Model,
        layer: str | int | None = None,
        image_shape: Sequence[int] | None = None,
        output: str | int | None = None,
        example: Any = None,
    ) -> None:
        signal = model_signal_shape(model, image_shape)
        self.signal = signal is not None  # a Conv1D model on (N, T, C): heatmaps (N, T)
        shape = signal or input_image_shape(model, image_shape, "grad_cam")
        ensure_built(model, (1, *shape))
        if signal is None:
            self.ref, _, recording = spatial_layer(model, layer, shape, "grad_cam", example)
        else:
            self.ref, recording = signal_layer(model, layer, shape, example)
        self.channels_first = is_channels_first(self.ref)  # input (N, C, H, W), maps too
        super().__init__(model, recording, output, "grad_cam")
        if layer is None:
            log.info(
                "vizcallbacks: %s uses layer %r, the last layer with a 4-D output",
                type(self).__name__,
                self.ref.name,
            )
        # A partial, not the bound method: TensorFlow counts retracing per code object, so one
        # instance per call (grad_cam() in a notebook loop) would warn about retracing.
        self._function = compiled(model, functools.partial(self._run), static_argnums=(1,))

    @property
    def layer_name(self) -> str:
        """The tag-safe name of the layer (``outer/inner`` inside nested models)."""
        return self.ref.name

    def __call__(self, images: np.ndarray, class_index: ClassIndex = None) -> GradCAMResult:
        """``images`` float32 ``(N, H, W, C)`` (``(N, C, H, W)`` for a channels_first layer, or
        a multi-input probe) → the result."""
        classes = self.class_indices(class_index, images.shape[0])
        spatial = images.shape[2:4] if self.channels_first else images.shape[1:3]
        if self.signal:  # a signal is drawn as a T x 1 image
            spatial = (images.shape[2] if self.channels_first else images.shape[1], 1)
        size = (int(spatial[0]), int(spatial[1]))
        try:
            out = self._function(
                model_inputs(self.model, images), size, ops.convert_to_tensor(classes)
            )
        except runtime_errors() as err:  # the traced graph failed while running
            raise view_failure(f"Grad-CAM of layer {self.ref.name!r}", err) from err
        out = {key: ops.convert_to_numpy(value) for key, value in out.items()}
        return GradCAMResult(
            heatmaps=out["heatmaps"].astype(np.float32),
            class_index=out["class_index"].astype(np.int64),
            predicted=out["predicted"].astype(np.int64),
            probability=out["probability"].astype(np.float32),
            class_probability=out["class_probability"].astype(np.float32),
        )

    def _run(self, inputs: Any, size: tuple[int, int], classes: Any) -> dict[str, Any]:
        def run(tap: Tap) -> tuple[Any, dict[str, Any]]:
            scores = self.scores(self.forward(inputs, {id(self.ref.layer): tap})[1], classes)
            return scores["score"], scores

        maps, grads, scores = layer_gradient(run)
        if grads is None:
            raise ValueError(
                f"grad_cam: the model's output does not depend on layer {self.ref.name!r}; "
                "choose a layer on the path from the input to the output."
            )
        maps, grads = ops.cast(maps, "float32"), ops.cast(grads, "float32")
        if self.signal:  # (N, T', K) as (N, T', 1, K); channels_first (N, K, T') as (N, K, T', 1)
            maps, grads = maps[:, :, :, None], grads[:, :, :, None]
            if not self.channels_first:
                maps, grads = ops.transpose(maps, (0, 1, 3, 2)), ops.transpose(grads, (0, 1, 3, 2))
        if self.channels_first:  # (N, K, h, w) → (N, h, w, K)
            maps, grads = ops.transpose(maps, (0, 2, 3, 1)), ops.transpose(grads, (0, 2, 3, 1))
        cam = self.to_input(self.combine(maps, grads), size)
        scores["heatmaps"] = cam[..., 0] if self.signal else cam
        return scores

    def combine(self, maps: Any, grads: Any) -> Any:
        """The map ``(N, h, w)`` from the layer's maps and the score's gradients ``(N, h, w, K)``:
        Grad-CAM's ``ReLU(sum_k mean_ij(grads_k) maps_k)``; the one step CAM variants change."""
        weights = ops.mean(grads, axis=(1, 2), keepdims=True)
        return ops.relu(ops.sum(weights * maps, axis=-1))

    @staticmethod
    def to_input(cam: Any, size: tuple[int, int]) -> Any:
        """``cam`` ``(N, h, w)`` resized (bilinear) to ``size`` and divided by its maximum."""
        cam = ops.image.resize(
            cam[..., None], size, interpolation="bilinear", data_format="channels_last"
        )[..., 0]
        cam = ops.divide_no_nan(cam, ops.max(cam, axis=(1, 2), keepdims=True))
        return ops.clip(cam, 0.0, 1.0)


def grad_cam(
    model: keras.Model,
    images: np.ndarray,
    layer: str | int | None = None,
    class_index: ClassIndex = None,
    output: str | int | None = None,
) -> np.ndarray:
    """Grad-CAM heatmaps: float32 ``(N, H, W)`` (``(N, T)`` for signals) in [0, 1] at the input's
    resolution.

    ``L = ReLU(sum_k alpha_k A_k)`` with ``alpha_k`` the spatial mean of ``d score / d A_k``, the
    score taken before the final softmax/sigmoid. ``layer=None``: the last layer with a 4-D
    output; ``class_index=None``: the predicted class, else an int or one int per image (for one
    sigmoid unit, 0 explains the negative class through ``-logit``). Several inputs: a tuple or
    dict of arrays, the heatmap drawn at the first image input's size; several outputs: pick one
    with ``output=`` (name or index). Compiled on the first call and kept with the model, so
    repeated calls cost one compiled run.
    """
    signal = model_signal_shape(model, None) is not None and not isinstance(images, (tuple, dict))
    probe = check_signals(images) if signal else check_probe(images)
    ensure_built(model, probe.shape)
    check_probe_fits_model(probe, model)
    key = ("grad_cam", layer, probe.shape[1:]) + (() if output is None else (output,))
    cam = built_for(
        model, key, lambda: GradCAM(model, layer, probe.shape[1:], output, example=probe)
    )
    return cam(probe, class_index).heatmaps
