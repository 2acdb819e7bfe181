"""Filter patterns: the input image each filter of a layer responds to most, by gradient ascent.

Start from a grey image with a little noise; ``steps`` times, move it along the gradient of the
filter's mean activation, normalized to unit RMS per image. All filters of a layer form one
batch (filter ``f`` is maximized in image ``f``) updated by one compiled loop.
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

from vizcallbacks.compute.attribution.explained_layer import (
    explained_layer,
    input_image_shape,
    is_channels_first,
)
from vizcallbacks.compute.backend import compiled, input_gradient
from vizcallbacks.compute.forward import record_forward
from vizcallbacks.compute.layers import ensure_built

__all__ = [
    "FilterPatterns",
    "FilterSelection",
    "PatternOptions",
    "PatternResult",
    "check_seed",
    "filter_patterns",
]

log = logging.getLogger("vizcallbacks")

FilterSelection = int | Sequence[int] | None


def _check_number(name: str, value: Any, low: float, integer: bool = False) -> float:
    """``value`` as a float if it is a finite number (an int if ``integer``) ≥ ``low``."""
    types = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, types) or not np.isfinite(value):
        kind = "an integer" if integer else "a number"
        raise TypeError(f"{name} must be {kind} ≥ {low}. Received: {name}={value!r}")
    if value < low:
        raise ValueError(f"{name} must be ≥ {low}. Received: {name}={value!r}")
    return float(value)


@dataclass(frozen=True)
class PatternResult:
    """Patterns ``(F, H, W, C)`` float32 and ``responded`` ``(F,)`` bool: False when the filter's
    gradient was zero at every step (it never fired), so its image is only the start noise."""

    images: np.ndarray
    responded: np.ndarray


class FilterPatterns:
    """Gradient ascent for the chosen filters of one layer, built once and reused every call.

    Args:
        model: a built (or buildable) Sequential or Functional model, nested models included.
        layer: name, nested path (``"vgg16/block3_conv3"``) or index of a layer with 4-D output.
        options: the ascent's settings, :class:`PatternOptions`.
    """

    def __init__(
        self, model: keras.Model, layer: str | int, options: PatternOptions | None = None
    ) -> None:
        options = options if options is not None else PatternOptions()
        self.steps, self.jitter = options.steps, options.jitter
        self.step_size, self.noise, self.blur = options.step_size, options.noise, options.blur
        self.value_range = options.value_range
        image_shape, filters = options.image_shape, options.filters
        if isinstance(layer, bool) or not isinstance(layer, (str, int)):
            raise TypeError(f"layer must be a layer name or index. Received: layer={layer!r}")
        self.image_shape = input_image_shape(model, image_shape, "filter_patterns")
        ensure_built(model, (1, *self.image_shape))
        self.model = model
        self.ref, maps, _ = explained_layer(model, layer, self.image_shape, "filter_patterns")
        if is_channels_first(self.ref):
            raise ValueError(
                f"filter_patterns: layer {self.ref.name!r} is channels_first; filter patterns "
                "support channels_last layers only so far. ActivationLogger, FilterLogger and "
                "GradCAMLogger draw this model; for filter patterns, build it with "
                "data_format='channels_last'."
            )
        self.num_filters = int(maps.shape[-1])
        self.filters = _check_filters(filters, self.num_filters, self.ref.name)
        self._kernel = _gaussian_kernel(self.blur, self.image_shape[-1]) if self.blur else None
        # A partial, not the bound method: TensorFlow counts retracing per code object, so one
        # instance per call (filter_patterns() in a notebook loop) would warn about retracing.
        self._ascend = compiled(model, functools.partial(self._run))

    @property
    def layer_name(self) -> str:
        """The tag-safe name of the layer (``outer/inner`` inside nested models)."""
        return self.ref.name

    def __call__(self, seed: int = 0) -> np.ndarray:
        """float32 ``(F, H, W, C)``: one image per selected filter, in ``value_range``."""
        return self.ascend(seed).images

    def ascend(self, seed: int = 0) -> PatternResult:
        """The patterns and which filters responded at all (see :class:`PatternResult`)."""
        seed = check_seed(seed)
        rng = np.random.default_rng(seed)
        low, high = self.value_range
        shape = (len(self.filters), *self.image_shape)
        start = (low + high) / 2 + rng.uniform(-0.5, 0.5, shape) * self.noise * (high - low)
        shifts = rng.integers(-self.jitter, self.jitter + 1, size=(self.steps, 2))
        onehot = np.eye(self.num_filters, dtype=np.float32)[self.filters]
        images, responded = self._ascend(
            ops.convert_to_tensor(start, "float32"),
            ops.convert_to_tensor(shifts, "int32"),
            ops.convert_to_tensor(onehot),
        )
        return PatternResult(
            ops.convert_to_numpy(images).astype(np.float32),
            ops.convert_to_numpy(responded).astype(bool),
        )

    def _objective(self, images: Any, onehot: Any) -> Any:
        """Mean activation of filter ``f`` in image ``f``, float32 ``(F,)``."""
        maps = record_forward(self.model, images).calls[id(self.ref.layer)][0]
        means = ops.mean(ops.cast(maps, "float32"), axis=(1, 2))
        return ops.sum(means * onehot, axis=-1)

    def _run(self, start: Any, shifts: Any, onehot: Any) -> tuple[Any, Any]:
        low, high = self.value_range
        step = self.step_size * (high - low)

        def body(i: Any, state: tuple[Any, Any]) -> tuple[Any, Any]:
            images, largest = state
            shift = shifts[i]

            def objective(x: Any) -> Any:
                return self._objective(_roll(x, shift) if self.jitter else x, onehot)

            grads = ops.cast(input_gradient(objective, images), "float32")
            rms = ops.sqrt(ops.mean(ops.square(grads), axis=(1, 2, 3), keepdims=True))
            images = images + step * grads / (rms + 1e-12)
            if self._kernel is not None:
                images = _apply_blur(images, self._kernel)
            largest = ops.maximum(largest, ops.reshape(rms, (-1,)))
            return ops.clip(images, low, high), largest

        result, largest = ops.fori_loop(
            0, self.steps, body, (start, ops.zeros_like(start[:, 0, 0, 0]))
        )
        return result, largest > 0


@dataclass(frozen=True)
class PatternOptions:
    """Gradient-ascent settings, checked once when made; the defaults live here and only here.

    Args:
        filters: ``None`` for all of the layer's filters (memory grows with their number), an
            int ``n`` for the first ``n``, or a list of indices.
        steps: gradient steps, all filters at once.
        step_size: each step's RMS change, as a fraction of ``value_range``'s width.
        noise: width of the uniform noise around grey at the start, as a fraction of the range.
        jitter: roll the image by up to this many pixels before each step (0: off).
        blur: sigma of a 3x3 Gaussian applied after each step (0: off).
        value_range: the range of the model's inputs; images are clipped to it every step.
        image_shape: ``(H, W, C)`` when the model's input size is not fixed.
    """

    filters: FilterSelection = None
    steps: int = 30
    step_size: float = 0.02
    noise: float = 0.1
    jitter: int = 1
    blur: float = 0.4
    value_range: tuple[float, float] = (0.0, 1.0)
    image_shape: Sequence[int] | None = None

    def __post_init__(self) -> None:
        """Raise ``TypeError``/``ValueError`` naming the first bad option."""
        set_ = functools.partial(object.__setattr__, self)
        set_("steps", int(_check_number("steps", self.steps, 1, integer=True)))
        set_("jitter", int(_check_number("jitter", self.jitter, 0, integer=True)))
        for name in ("step_size", "noise", "blur"):
            set_(name, _check_number(name, getattr(self, name), 0.0))
        set_("value_range", _check_range(self.value_range))
        _filter_form(self.filters)


def check_seed(seed: object) -> int:
    """``seed`` if it is an int ≥ 0 (what numpy accepts), else ``TypeError``/``ValueError``."""
    return int(_check_number("seed", seed, 0, integer=True))


def _check_range(value_range: Any) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value_range)
    except (TypeError, ValueError):
        low = high = float("nan")
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(
            "value_range must be two finite numbers (low, high) with low < high, the range of "
            f"the model's inputs. Received: value_range={value_range!r}"
        )
    return low, high


def _filter_form(filters: FilterSelection) -> int | np.ndarray | None:
    """``filters`` checked for form: None, an int ≥ 1, or a non-empty 1-D array of ints ≥ 0."""
    if filters is None:
        return None
    if isinstance(filters, (int, np.integer)) and not isinstance(filters, bool):
        if filters < 1:
            raise ValueError(f"filters must be ≥ 1. Received: filters={filters}")
        return int(filters)
    values = np.asarray(filters)
    if values.ndim != 1 or values.size == 0 or not np.issubdtype(values.dtype, np.integer):
        raise TypeError(
            "filters must be None (all), an int n (the first n) or a list of filter indices. "
            f"Received: filters={filters!r}"
        )
    if (values < 0).any():
        raise ValueError(f"filter indices must be ≥ 0. Received: filters={values.tolist()}")
    return values


def _check_filters(filters: FilterSelection, available: int, layer: str) -> list[int]:
    """The filter indices to optimize, for a layer with ``available`` filters."""
    form = _filter_form(filters)
    if form is None:
        return list(range(available))
    if isinstance(form, int):
        return list(range(min(form, available)))
    bad = form[form >= available]
    if bad.size:
        raise ValueError(
            f"filters must be below the layer's number of filters: layer {layer!r} has "
            f"{available}. Received: {bad.tolist()[:5]}"
        )
    return [int(v) for v in form]


def _gaussian_kernel(sigma: float, channels: int) -> np.ndarray:
    """A 3x3 Gaussian for a depthwise convolution: ``(3, 3, C, 1)``, weights summing to 1."""
    taps = np.exp(-(np.arange(-1, 2) ** 2) / (2 * sigma**2))
    kernel = np.outer(taps, taps) / np.outer(taps, taps).sum()
    return np.tile(kernel[:, :, None, None], (1, 1, channels, 1)).astype(np.float32)


def _apply_blur(images: Any, kernel: np.ndarray) -> Any:
    padded = ops.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="reflect")
    return ops.depthwise_conv(padded, kernel, strides=1, padding="valid")


def _roll(images: Any, shift: Any) -> Any:
    """``images`` ``(N, H, W, C)`` rolled by ``shift`` ``(2,)`` pixels along H and W, as gathers
    (so the shift may be a tensor on every backend)."""
    for axis in (1, 2):
        size = ops.shape(images)[axis]
        index = (ops.arange(size, dtype="int32") - shift[axis - 1]) % size
        images = ops.take(images, index, axis=axis)
    return images


def filter_patterns(
    model: keras.Model, layer: str | int, seed: int = 0, **options: Any
) -> np.ndarray:
    """Images that maximize each filter's mean activation: float32 ``(F, H, W, C)``.

    ``x ← clip(blur(x + step_size·span·g/rms(g)))`` for ``steps`` steps, ``g`` the gradient of
    the filter's mean activation at ``x`` rolled by up to ``jitter`` pixels; ``blur`` is a 3x3
    Gaussian's sigma (0 turns it off). ``options`` are :class:`PatternOptions`' fields. A filter
    that never fires keeps its start image (warned).
    """
    patterns = FilterPatterns(model, layer, PatternOptions(**options))
    result = patterns.ascend(seed)
    if not result.responded.all():
        log.warning(
            "vizcallbacks: filters %s of layer %s never fired on the start image (zero "
            "gradient); their patterns are only the start noise.",
            [f for f, ok in zip(patterns.filters, result.responded, strict=True) if not ok],
            patterns.layer_name,
        )
    return result.images
