"""The settings of a pattern search (filter or class patterns), each checked once when made."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "PARAMETERIZATIONS",
    "TRANSFORMS",
    "FilterSelection",
    "PatternOptions",
    "check_number",
    "check_seed",
    "check_units",
    "resolved_parameterization",
    "resolved_transforms",
]

FilterSelection = int | Sequence[int] | None
PARAMETERIZATIONS = ("auto", "pixel", "fourier")
TRANSFORMS = ("auto", "standard", "roll", "none")
# "auto" picks pixels below this input size or for grayscale (benchmarks.patterns measures why).
FOURIER_MIN_SIZE = 32


def check_number(name: str, value: Any, low: float, integer: bool = False) -> float:
    """``value`` as a float if it is a finite number (an int if ``integer``) ≥ ``low``."""
    types = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, types) or not np.isfinite(value):
        kind = "an integer" if integer else "a number"
        raise TypeError(f"{name} must be {kind} ≥ {low}. Received: {name}={value!r}")
    if value < low:
        raise ValueError(f"{name} must be ≥ {low}. Received: {name}={value!r}")
    return float(value)


@dataclass(frozen=True)
class PatternOptions:
    """Gradient-ascent settings, checked once when made; the defaults live here and only here.

    Args:
        filters: ``None`` for all of the layer's filters (memory grows with their number), an
            int ``n`` for the first ``n``, or a list of indices.
        steps: gradient steps, all filters at once.
        parameterization: ``"pixel"`` moves the pixels (normalized gradient steps, ``step_size``,
            ``blur``, clipped to ``value_range``); ``"fourier"`` moves a spectrum scaled by
            1/frequency, colour decorrelated, through a sigmoid into ``value_range`` (Adam,
            ``learning_rate``); ``"auto"`` (the default): pixel for grayscale or inputs under
            32 px, where 1/f damps the fine stripes small filters want, else Fourier.
        decorrelate: with Fourier and 3 channels, mix colours by ImageNet's colour correlation
            (an RGB matrix: give ``preprocess`` for a model that takes BGR).
        decay_power: Fourier: the spectrum's amplitude falls as 1/frequency**decay_power (Lucid's
            ``decay_power``, 1 there). 1.875 with ``learning_rate=0.03`` is what met the VGG16
            targets in 32 steps, at 64 and 128 px (``benchmarks.patterns``); Lucid's 1 and 0.05 need
            hundreds of steps and leave more high-frequency noise.
        transforms: what each step sees: ``"standard"`` (Lucid's: pad, jitter ±8 px, scale
            0.9-1.1, rotate ±10°, in one resampling), ``"roll"`` (roll by up to ``jitter`` px),
            ``"none"``; ``"auto"``: standard with Fourier, roll with pixels.
        variants: patterns per filter (or class); with ``diversity`` > 0 they are pushed apart.
        diversity: weight of the mean cosine similarity of the variants' Gram matrices (of the
            layer's maps; of the images for class patterns) subtracted from the objective.
        step_size: pixel: each step's RMS change, as a fraction of ``value_range``'s width.
        learning_rate: Fourier: Adam's learning rate on the spectrum.
        noise: pixel: width of the uniform noise around grey at the start, as a fraction of the
            range; Fourier: the spectrum's start standard deviation is ``noise / 10``.
        jitter: with ``transforms="roll"``, roll the image by up to this many pixels (0: off).
        blur: pixel: sigma of a 3x3 Gaussian applied after each step (0: off).
        value_range: the range of the model's inputs; images stay inside it.
        image_shape: ``(H, W, C)`` when the model's input size is not fixed.
        preprocess: a function of a batch of images (RGB, in ``value_range``) giving the model's
            inputs, as ``keras.applications.vgg16.preprocess_input``; the patterns are then made
            and returned as RGB images in ``value_range`` and the model sees them preprocessed.
    """

    filters: FilterSelection = None
    steps: int = 30
    parameterization: str = "auto"
    decorrelate: bool = True
    decay_power: float = 1.875
    transforms: str = "auto"
    variants: int = 1
    diversity: float = 0.0
    step_size: float = 0.02
    learning_rate: float = 0.03
    noise: float = 0.1
    jitter: int = 1
    blur: float = 0.4
    value_range: tuple[float, float] = (0.0, 1.0)
    image_shape: Sequence[int] | None = None
    preprocess: Callable[[Any], Any] | None = None

    def __post_init__(self) -> None:
        """Raise ``TypeError``/``ValueError`` naming the first bad option."""
        set_ = functools.partial(object.__setattr__, self)
        for name in ("steps", "variants"):
            set_(name, int(check_number(name, getattr(self, name), 1, integer=True)))
        set_("jitter", int(check_number("jitter", self.jitter, 0, integer=True)))
        for name in (
            "step_size",
            "learning_rate",
            "noise",
            "blur",
            "diversity",
            "decay_power",
        ):
            set_(name, check_number(name, getattr(self, name), 0.0))
        for name, allowed in (("parameterization", PARAMETERIZATIONS), ("transforms", TRANSFORMS)):
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"{name} must be one of {', '.join(map(repr, allowed))}. "
                    f"Received: {name}={getattr(self, name)!r}"
                )
        if not isinstance(self.decorrelate, (bool, np.bool_)):
            raise TypeError(f"decorrelate must be True or False. Received: {self.decorrelate!r}")
        if self.preprocess is not None and not callable(self.preprocess):
            raise TypeError(
                "preprocess must be a function of a batch of images, as "
                f"keras.applications.vgg16.preprocess_input. Received: {self.preprocess!r}"
            )
        if self.diversity > 0 and self.variants < 2:
            raise ValueError(
                f"diversity={self.diversity} needs variants ≥ 2 (patterns per filter to push "
                "apart). Received: variants=1; pass variants=4, say."
            )
        set_("value_range", _check_range(self.value_range))
        _unit_form(self.filters, "filters")


def resolved_parameterization(options: PatternOptions, image_shape: Sequence[int]) -> str:
    """``"pixel"`` or ``"fourier"``: ``options.parameterization`` with ``"auto"`` decided by the
    image: pixels for grayscale or a side under 32 px, where Fourier's transforms and colour
    model do not apply, else Fourier."""
    if options.parameterization != "auto":
        return options.parameterization
    height, width, channels = image_shape
    small = min(height, width) < FOURIER_MIN_SIZE
    return "pixel" if channels != 3 or small else "fourier"


def resolved_transforms(options: PatternOptions, parameterization: str) -> str:
    """``options.transforms`` with ``"auto"`` decided: standard with Fourier, roll with pixels."""
    if options.transforms != "auto":
        return options.transforms
    return "standard" if parameterization == "fourier" else "roll"


def check_seed(seed: object) -> int:
    """``seed`` if it is an int ≥ 0 (what numpy accepts), else ``TypeError``/``ValueError``."""
    return int(check_number("seed", seed, 0, integer=True))


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


def _unit_form(units: FilterSelection, name: str) -> int | np.ndarray | None:
    """``units`` checked for form: None, an int ≥ 1, or a non-empty 1-D array of ints ≥ 0."""
    if units is None:
        return None
    if isinstance(units, (int, np.integer)) and not isinstance(units, bool):
        if units < 1:
            raise ValueError(f"{name} must be ≥ 1. Received: {name}={units}")
        return int(units)
    values = np.asarray(units)
    if values.ndim != 1 or values.size == 0 or not np.issubdtype(values.dtype, np.integer):
        raise TypeError(
            f"{name} must be None (all), an int n (the first n) or a list of indices. "
            f"Received: {name}={units!r}"
        )
    if (values < 0).any():
        raise ValueError(f"{name} indices must be ≥ 0. Received: {name}={values.tolist()}")
    return values


def check_units(units: FilterSelection, available: int, owner: str, name: str) -> list[int]:
    """The indices to optimize (``name``: "filters" or "classes"), of ``available`` in ``owner``."""
    form = _unit_form(units, name)
    if form is None:
        return list(range(available))
    if isinstance(form, int):
        return list(range(min(form, available)))
    bad = form[form >= available]
    if bad.size:
        raise ValueError(
            f"{name} must be below the number of {name}: {owner} has {available}. "
            f"Received: {bad.tolist()[:5]}"
        )
    return [int(v) for v in form]
