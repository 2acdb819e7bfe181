"""Filter and class patterns: the input image a filter (or an output class) responds to most, by
gradient ascent, in pixel space or in a decorrelated Fourier basis under random transforms.

Every pattern of a call is one image of a batch (filter ``f`` is maximized in image ``f``),
updated by one compiled loop: one traced step per gradient step for all of them.
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
from vizcallbacks.compute.attribution.scores import ClassScores
from vizcallbacks.compute.backend import compiled, input_gradient
from vizcallbacks.compute.forward import record_forward
from vizcallbacks.compute.layers import ensure_built
from vizcallbacks.compute.pattern_image import (
    FourierImage,
    PixelImage,
    resample,
    roll,
    standard_transforms,
)
from vizcallbacks.compute.pattern_options import (
    FilterSelection,
    PatternOptions,
    check_seed,
    check_units,
    resolved_parameterization,
    resolved_transforms,
)

__all__ = [
    "ClassPatterns",
    "FilterPatterns",
    "FilterSelection",
    "PatternOptions",
    "PatternResult",
    "check_seed",
    "class_patterns",
    "filter_patterns",
]

log = logging.getLogger("vizcallbacks")


@dataclass(frozen=True)
class PatternResult:
    """Patterns ``(F, H, W, C)`` float32 and ``responded`` ``(F,)`` bool: False when the unit's
    gradient was zero at every step (it never fired), so its image is only the start."""

    images: np.ndarray
    responded: np.ndarray


class _Ascent:
    """Gradient ascent of one score per image, for the chosen units; built once, reused."""

    units: list[int]
    num_units: int

    def __init__(self, model: keras.Model, options: PatternOptions, what: str) -> None:
        self.model, self.options = model, options
        self.image_shape = input_image_shape(model, options.image_shape, what)
        ensure_built(model, (1, *self.image_shape))
        self.parameterization = resolved_parameterization(options, self.image_shape)
        self.transforms = resolved_transforms(options, self.parameterization)
        self.fill = sum(options.value_range) / 2
        self.image: PixelImage | FourierImage = (
            FourierImage(
                self.image_shape,
                options.value_range,
                options.learning_rate,
                options.decorrelate,
                options.decay_power,
            )
            if self.parameterization == "fourier"
            else PixelImage(
                options.value_range, options.step_size, options.blur, self.image_shape[-1]
            )
        )

    def _compile(self) -> None:
        # A partial, not the bound method: TensorFlow counts retracing per code object, so one
        # instance per call (filter_patterns() in a notebook loop) would warn about retracing.
        self._ascend = compiled(self.model, functools.partial(self._run))

    def __call__(self, seed: int = 0) -> np.ndarray:
        """float32 ``(F·variants, H, W, C)``: the patterns, in ``value_range``."""
        return self.ascend(seed).images

    def ascend(self, seed: int = 0) -> PatternResult:
        """The patterns and which units responded at all (see :class:`PatternResult`)."""
        rng = np.random.default_rng(check_seed(seed))
        options = self.options
        units = np.repeat(np.asarray(self.units), options.variants)
        start = self.image.start(rng, (len(units), *self.image_shape), options.noise)
        if self.transforms == "standard":
            moves = standard_transforms(rng, options.steps, self.image_shape)
        else:  # drawn for "none" too, so both draw the same numbers after the start
            moves = rng.integers(-options.jitter, options.jitter + 1, size=(options.steps, 2))
        images, responded = self._ascend(
            ops.convert_to_tensor(start, "float32"),
            ops.convert_to_tensor(moves, "float32" if moves.dtype.kind == "f" else "int32"),
            ops.convert_to_tensor(self._targets(units)),
        )
        return PatternResult(
            ops.convert_to_numpy(images).astype(np.float32),
            ops.convert_to_numpy(responded).astype(bool),
        )

    def _targets(self, units: np.ndarray) -> np.ndarray:
        """What ``_scores`` needs to know which unit image ``i`` maximizes."""
        return np.eye(self.num_units, dtype=np.float32)[units]

    def _scores(self, images: Any, targets: Any) -> tuple[Any, Any]:
        """Each image's score ``(N,)`` and the 4-D features its diversity is measured on."""
        raise NotImplementedError

    def _objective(self, images: Any, targets: Any) -> Any:
        if self.options.preprocess is not None:
            images = self.options.preprocess(images)
        scores, features = self._scores(images, targets)
        if self.options.diversity:
            scores = scores - self.options.diversity * _gram_similarity(
                features, self.options.variants
            )
        return scores

    def _moved(self, images: Any, move: Any) -> Any:
        if self.transforms == "standard":
            return resample(images, move, self.fill)
        if self.transforms == "roll" and self.options.jitter:
            return roll(images, move)
        return images

    def _run(self, start: Any, moves: Any, targets: Any) -> tuple[Any, Any]:
        image = self.image

        def body(i: Any, state: tuple[Any, Any, Any]) -> tuple[Any, Any, Any]:
            params, moments, largest = state
            move = moves[i]

            def objective(p: Any) -> Any:
                return self._objective(self._moved(image.render(p), move), targets)

            grads = ops.cast(input_gradient(objective, params), "float32")
            axes = tuple(range(1, len(grads.shape)))
            largest = ops.maximum(largest, ops.sqrt(ops.mean(ops.square(grads), axis=axes)))
            params, moments = image.update(params, grads, moments, i)
            return params, moments, largest

        fourier = isinstance(image, FourierImage)
        moments = (ops.zeros_like(start), ops.zeros_like(start)) if fourier else (0.0, 0.0)
        moments = tuple(ops.convert_to_tensor(m, "float32") for m in moments)
        largest = ops.zeros((ops.shape(start)[0],), "float32")
        params, _, largest = ops.fori_loop(0, self.options.steps, body, (start, moments, largest))
        return image.render(params), largest > 0


class FilterPatterns(_Ascent):
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
        if isinstance(layer, bool) or not isinstance(layer, (str, int)):
            raise TypeError(f"layer must be a layer name or index. Received: layer={layer!r}")
        super().__init__(model, options, "filter_patterns")
        self.ref, maps, _ = explained_layer(model, layer, self.image_shape, "filter_patterns")
        if is_channels_first(self.ref):
            raise ValueError(
                f"filter_patterns: layer {self.ref.name!r} is channels_first; filter patterns "
                "support channels_last layers only so far. ActivationLogger, FilterLogger and "
                "GradCAMLogger draw this model; for filter patterns, build it with "
                "data_format='channels_last'."
            )
        self.num_units = int(maps.shape[-1])
        self.units = check_units(
            options.filters, self.num_units, f"layer {self.ref.name!r}", "filters"
        )
        self._compile()

    @property
    def layer_name(self) -> str:
        """The tag-safe name of the layer (``outer/inner`` inside nested models)."""
        return self.ref.name

    @property
    def filters(self) -> list[int]:
        """The filter indices optimized, in order."""
        return self.units

    def _scores(self, images: Any, targets: Any) -> tuple[Any, Any]:
        """Mean activation of filter ``f`` in image ``f``, float32 ``(F,)``, and the maps."""
        maps = record_forward(self.model, images).calls[id(self.ref.layer)][0]
        means = ops.mean(ops.cast(maps, "float32"), axis=(1, 2))
        return ops.sum(means * targets, axis=-1), maps


class ClassPatterns(_Ascent):
    """Gradient ascent of output classes' logits (before the final softmax/sigmoid).

    Args:
        model: a classifier with an output ``(N, classes)``.
        classes: an int ``n`` for the first n classes, a list of class indices, ``None`` for all.
        options: the ascent's settings, :class:`PatternOptions` (its ``filters`` is not used).
        output: the output's name or index when the model has several.
    """

    def __init__(
        self,
        model: keras.Model,
        classes: FilterSelection = None,
        options: PatternOptions | None = None,
        output: str | int | None = None,
    ) -> None:
        super().__init__(
            model, options if options is not None else PatternOptions(), "class_patterns"
        )
        probe = ops.zeros((1, *self.image_shape), "float32")
        self.scores = ClassScores(model, record_forward(model, probe), output, "class_patterns")
        self.num_units = max(self.scores.num_classes, 2)  # one sigmoid unit: classes 0 and 1
        # A Sequential names its output only once compiled: its last layer's name then.
        names = [str(n) for n in (getattr(model, "output_names", None) or [model.layers[-1].name])]
        self.output_name = (
            str(output) if isinstance(output, str) else (names[output or 0] if names else "output")
        )
        self.units = check_units(classes, self.num_units, f"output {self.output_name!r}", "classes")
        self._compile()

    @property
    def classes(self) -> list[int]:
        """The class indices optimized, in order."""
        return self.units

    def _targets(self, units: np.ndarray) -> np.ndarray:
        return units.astype(np.int32)

    def _scores(self, images: Any, targets: Any) -> tuple[Any, Any]:
        """The logit of class ``targets[i]`` in image ``i`` ``(N,)``, and the images."""
        _, logits = self.scores.forward(images)
        return self.scores.class_logit(logits, targets), images


def _gram_similarity(features: Any, variants: int) -> Any:
    """Per image ``(N,)``: the mean cosine similarity of its Gram matrix to those of the other
    variants of its unit (Lucid's diversity objective); images come in groups of ``variants``."""
    _, height, width, channels = features.shape
    flat = ops.reshape(ops.cast(features, "float32"), (-1, height * width, channels))
    gram = ops.einsum("npc,npd->ncd", flat, flat) / (height * width)
    gram = ops.reshape(gram, (-1, variants, channels * channels))
    gram = gram / (ops.sqrt(ops.sum(ops.square(gram), axis=-1, keepdims=True)) + 1e-12)
    similarity = ops.einsum("fvd,fud->fvu", gram, gram)
    itself = ops.sum(ops.square(gram), axis=-1)
    return ops.reshape((ops.sum(similarity, axis=-1) - itself) / (variants - 1), (-1,))


def _warn_silent(result: PatternResult, units: Sequence[int], what: str) -> None:
    """Warn naming the units (``what`` formats them) whose gradient was zero throughout."""
    if not result.responded.all():
        per_unit = np.repeat(units, len(result.responded) // len(units))
        silent = sorted({int(u) for u in per_unit[~result.responded]})
        log.warning(
            "vizcallbacks: %s never fired on the start image (zero gradient); their patterns "
            "are only the start.",
            what.format(silent),
        )


def filter_patterns(
    model: keras.Model, layer: str | int, seed: int = 0, **options: Any
) -> np.ndarray:
    """Images that maximize each filter's mean activation: float32 ``(F·variants, H, W, C)``.

    ``options`` are :class:`PatternOptions`' fields: ``parameterization="pixel"`` takes
    normalized gradient steps on the pixels, ``x ← clip(blur(x + step_size·span·g/rms(g)))``;
    ``"fourier"`` moves a spectrum scaled by 1/frequency**decay_power with Adam under random
    jitter, scale and rotation (``transforms="standard"``); ``"auto"`` (the default) takes
    Fourier for RGB inputs of 32 px and more. With ``preprocess`` the patterns are RGB images in
    ``value_range`` and the model sees ``preprocess(image)``. A filter that never fires keeps its
    start image (warned).
    """
    patterns = FilterPatterns(model, layer, PatternOptions(**options))
    result = patterns.ascend(seed)
    _warn_silent(result, patterns.units, "filters {} of layer " + patterns.layer_name)
    return result.images


def class_patterns(
    model: keras.Model,
    classes: FilterSelection = None,
    seed: int = 0,
    output: str | int | None = None,
    **options: Any,
) -> np.ndarray:
    """Images that maximize each class's logit (before softmax): float32 ``(K·variants, H, W, C)``,
    what the network takes a class to look like. ``options`` as in :func:`filter_patterns`."""
    patterns = ClassPatterns(model, classes, PatternOptions(**options), output)
    result = patterns.ascend(seed)
    _warn_silent(result, patterns.units, "classes {} of output " + patterns.output_name)
    return result.images
