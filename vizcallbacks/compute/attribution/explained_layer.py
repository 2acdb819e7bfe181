"""The layer a class activation map explains, and its maps brought to the input's layout and size.

A CAM explains a layer whose output has the input's layout: ``(N, T', K)`` for signals
``(N, T, C)``, ``(N, h, w, K)`` for images, ``(N, d, h, w, K)`` for volumes and videos. Its map
is resized (linear along each spatial axis, half-pixel centres) to the input's size.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from vizcallbacks.compute.forward import Recording, model_inputs, record_forward
from vizcallbacks.compute.layers import LayerRef, leaf_layers, select_layers

__all__ = [
    "channels_last",
    "explained_layer",
    "input_image_shape",
    "is_channels_first",
    "resized",
    "sample_shape",
]

log = logging.getLogger("vizcallbacks")

_LAYOUTS = {3: "3-D (N, T, C)", 4: "4-D (N, H, W, C)", 5: "5-D (N, D, H, W, C)"}


def sample_shape(model: keras.Model, shape: Sequence[int] | None, what: str) -> tuple[int, ...]:
    """One sample's shape: ``shape`` if given, else the model's only input's; positive ints."""
    if shape is None:
        try:
            shape = tuple(model.inputs[0].shape[1:]) if len(model.inputs) == 1 else ()
        except (AttributeError, ValueError, TypeError, IndexError):
            shape = ()
        if not shape or any(d is None for d in shape):
            raise ValueError(
                f"{what}: cannot tell the input size from the model (its input shape is "
                f"{shape or 'unknown'}). Pass image_shape=(H, W, C), or build the model with "
                "keras.Input(shape=...)."
            )
    dims = tuple(shape)
    if not dims or not all(
        isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0 for d in dims
    ):
        raise ValueError(
            f"{what}: image_shape must be positive ints, e.g. (H, W, C). "
            f"Received: image_shape={shape!r}"
        )
    return tuple(int(d) for d in dims)


def input_image_shape(
    model: keras.Model, image_shape: Sequence[int] | None, what: str
) -> tuple[int, int, int]:
    """``(H, W, C)`` from ``image_shape`` or the model's input; raise naming ``what`` if unknown."""
    shape = sample_shape(model, image_shape, what)
    if len(shape) != 3:
        raise ValueError(
            f"{what}: image_shape must be three positive ints (H, W, C). Received: "
            f"image_shape={image_shape if image_shape is not None else shape!r}"
        )
    return shape[0], shape[1], shape[2]


def explained_layer(
    model: keras.Model,
    layer: str | int | None,
    shape: Sequence[int],
    what: str,
    example: Any = None,
) -> tuple[LayerRef, Any, Recording]:
    """The layer named by ``layer`` whose output has the layout of inputs of ``shape`` (``None``:
    the last one called whose maps are larger than 1 cell), its output and the recorded pass on
    ``example`` (default: zeros); a nested model's or block's name means its last one."""
    rank = len(shape) + 1
    layout = _LAYOUTS.get(rank, f"{rank}-D")
    refs = leaf_layers(model) if layer is None else select_layers(model, [layer])
    inputs = (
        ops.zeros((1, *shape), dtype="float32") if example is None else model_inputs(model, example)
    )
    recording = record_forward(model, inputs)
    called = {key: i for i, key in enumerate(recording.order)}
    refs = sorted((r for r in refs if id(r.layer) in called), key=lambda r: called[id(r.layer)]) + [
        r for r in refs if id(r.layer) not in called
    ]
    found = [r for r in refs if len(_first_shape(recording, r)) == rank]
    if not found:
        shapes = {r.name: _first_shape(recording, r) or "unknown" for r in refs}
        if layer is None:
            raise ValueError(
                f"{what}: the model has no layer with a {layout} output; it needs a "
                "convolutional part. Layers: "
                + ", ".join(f"{name} {shape}" for name, shape in shapes.items())
            )
        raise ValueError(
            f"{what}: layer={layer!r} has no {layout} output "
            f"(its output shape is {shapes[refs[-1].name] if refs else 'unknown'}). "
            "Name a conv, pooling or activation layer."
        )
    chosen = found[-1]
    if _is_one_cell(recording, chosen):
        larger = [r for r in found if not _is_one_cell(recording, r)]
        if layer is None and larger:
            log.warning(
                "vizcallbacks: %s: the last layer with a %s output, %s, is 1x1 for this input "
                "size, so its heatmap would be uniform; using %s, the last one larger than 1x1.",
                what,
                layout,
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


def _is_one_cell(recording: Recording, ref: LayerRef) -> bool:
    shape = _first_shape(recording, ref)
    spatial = shape[2:] if is_channels_first(ref) else shape[1:-1]
    return all(d == 1 for d in spatial)


def is_channels_first(ref: LayerRef) -> bool:
    """True when the layer behind ``ref`` lays out its maps as ``(N, C, ...)``."""
    return getattr(ref.layer, "data_format", None) == "channels_first"


def channels_last(maps: Any, channels_first: bool) -> Any:
    """``maps`` as float32 ``(N, ..., K)``: a channels_first layer's ``(N, K, ...)`` moved."""
    maps = ops.cast(maps, "float32")
    return ops.moveaxis(maps, 1, -1) if channels_first else maps


def resized(maps: Any, size: Sequence[int]) -> Any:
    """``maps`` ``(M, *spatial)`` (1 to 3 spatial axes) resized to ``size``: linear along each
    axis with half-pixel centres, as ``ops.image.resize``'s bilinear."""
    if len(size) == 1:  # a signal: a T x 1 image
        return _resize2d(maps[:, :, None], (size[0], 1))[:, :, 0]
    if len(size) == 2:
        return _resize2d(maps, size)
    depth, height, width = (int(d) for d in maps.shape[1:])
    planes = _resize2d(ops.reshape(maps, (-1, height, width)), size[1:])  # each depth slice
    planes = ops.reshape(planes, (-1, depth, size[1] * size[2]))
    volume = _resize2d(planes, (size[0], size[1] * size[2]))  # then along the depth only
    return ops.reshape(volume, (-1, *size))


def _resize2d(maps: Any, size: Sequence[int]) -> Any:
    return ops.image.resize(
        maps[..., None], tuple(size), interpolation="bilinear", data_format="channels_last"
    )[..., 0]
