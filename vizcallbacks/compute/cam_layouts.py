"""Grad-CAM on 1-D signals ``(N, T, C)``: the input shape, the explained layer and the probe."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from vizcallbacks.arrays import is_real
from vizcallbacks.compute.forward import Recording, model_inputs, record_forward
from vizcallbacks.compute.layers import LayerRef, leaf_layers, select_layers

__all__ = ["check_signals", "model_signal_shape", "signal_layer"]


def model_signal_shape(
    model: keras.Model, image_shape: Sequence[int] | None
) -> tuple[int, int] | None:
    """``(T, C)`` when ``image_shape`` or the model's only input is one signal, else ``None``."""
    if image_shape is not None:
        shape = tuple(image_shape)
    else:
        try:
            inputs = list(model.inputs)
        except (AttributeError, ValueError, TypeError):
            return None
        shape = tuple(inputs[0].shape[1:]) if len(inputs) == 1 else ()
    if len(shape) != 2 or not all(isinstance(d, (int, np.integer)) and d > 0 for d in shape):
        return None
    return int(shape[0]), int(shape[1])


def signal_layer(
    model: keras.Model, layer: str | int | None, shape: Sequence[int], example: Any = None
) -> tuple[LayerRef, Recording]:
    """The layer with a 3-D ``(N, T', C')`` output named by ``layer`` (``None``: the last one
    called) and the recorded pass on ``example`` (default: a blank signal)."""
    refs = leaf_layers(model) if layer is None else select_layers(model, [layer])
    inputs = ops.zeros((1, *shape)) if example is None else model_inputs(model, example)
    recording = record_forward(model, inputs)
    called = {key: i for i, key in enumerate(recording.order)}
    found = sorted(
        (r for r in refs if id(r.layer) in called and _rank(recording, r) == 3),
        key=lambda r: called[id(r.layer)],
    )
    if not found:
        raise ValueError(
            f"grad_cam: {'the model' if layer is None else f'layer={layer!r}'} has no layer "
            "with a 3-D (N, T, C) output; on signals Grad-CAM explains a Conv1D part."
        )
    return found[-1], recording


def _rank(recording: Recording, ref: LayerRef) -> int:
    return len(getattr(recording.calls[id(ref.layer)][0], "shape", ()))


def check_signals(signals: Any) -> np.ndarray:
    """``signals`` as float32 ``(N, T, C)``; one signal ``(T, C)`` gets a batch axis."""
    array = np.asarray(signals)
    if not is_real(array, allow_bool=False):
        raise TypeError(f"signals must be numeric. Received dtype {array.dtype}")
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or 0 in array.shape:
        raise ValueError(f"signals must be (N, T, C) or (T, C). Received shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("signals hold NaN or Inf values.")
    return array.astype(np.float32)
