"""The attribution methods by name, with their options: what AttributionLogger builds from
``methods=``, validated before training and built once per model."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
import numpy as np

from vizcallbacks.compute.attribution.cams import GradCAM, GradCAMPlusPlus, LayerCAM, ScoreCAM
from vizcallbacks.compute.attribution.gradients import (
    GradientsXInputs,
    IntegratedGradients,
    Saliency,
    baseline_for,
    baseline_value,
)
from vizcallbacks.compute.attribution.occlusion import Occlusion
from vizcallbacks.compute.attribution.pipeline import check_count, check_number
from vizcallbacks.compute.attribution.result import Attribution
from vizcallbacks.compute.attribution.scores import ClassIndex

__all__ = ["ALL_METHODS", "CAM_METHODS", "Method", "build_method", "method_options"]

Method = Callable[[np.ndarray, ClassIndex], Attribution]

# Each method's options and their defaults; smoothgrad and faster_score_cam are saliency and
# score_cam with other defaults, named so that both can be logged side by side.
_DEFAULTS: dict[str, dict[str, Any]] = {
    "saliency": {"smooth_samples": 0, "noise": 0.2},
    "smoothgrad": {"smooth_samples": 20, "noise": 0.2},
    "gradients_x_inputs": {},
    "integrated_gradients": {"steps": 32, "baseline": None},
    "occlusion": {"patch": 4, "stride": None, "fill": 0.0},
    "grad_cam": {},
    "grad_cam_plus_plus": {},
    "layer_cam": {},
    "score_cam": {"top_k": None},
    "faster_score_cam": {"top_k": 10},
}
ALL_METHODS = tuple(_DEFAULTS)
CAM_METHODS = frozenset(
    {"grad_cam", "grad_cam_plus_plus", "layer_cam", "score_cam", "faster_score_cam"}
)

_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "smooth_samples": lambda name, v: check_count(name, v, 0),
    "noise": lambda name, v: check_number(name, v, 0.0),
    "steps": lambda name, v: check_count(name, v, 1),
    "patch": lambda name, v: check_count(name, v, 1),
    "stride": lambda name, v: None if v is None else check_count(name, v, 1),
    "fill": check_number,
    "top_k": lambda name, v: None if v is None else check_count(name, v, 1),
}


def method_options(
    methods: Sequence[str] | Mapping[str, Mapping[str, Any]], probe: np.ndarray | None = None
) -> dict[str, dict[str, Any]]:
    """``methods`` (names, or name → options) as name → complete, checked options; a baseline
    is checked against ``probe`` (batch axis first) when given, else when the method is built."""
    if isinstance(methods, str) or not isinstance(methods, (Sequence, Mapping)):
        raise TypeError(
            "methods must be a sequence of method names or a dict of name → options. "
            f"Received: methods={methods!r}"
        )
    given = dict(methods) if isinstance(methods, Mapping) else {m: {} for m in methods}
    if not given:
        raise ValueError(f"methods is empty: name at least one of {', '.join(ALL_METHODS)}.")
    chosen: dict[str, dict[str, Any]] = {}
    for name, options in given.items():
        if name not in _DEFAULTS:
            raise ValueError(
                f"methods: unknown method {name!r}. Choose among {', '.join(ALL_METHODS)}."
            )
        if not isinstance(options, Mapping):
            raise TypeError(f"methods[{name!r}] must be a dict of options. Received {options!r}")
        unknown = sorted(set(options) - set(_DEFAULTS[name]))
        if unknown:
            known = ", ".join(_DEFAULTS[name]) or "none"
            raise ValueError(
                f"methods[{name!r}]: unknown option(s) {unknown}; its options are: {known}."
            )
        merged = {**_DEFAULTS[name], **options}
        for key, value in merged.items():
            if key == "baseline":
                baseline_value(value) if probe is None else baseline_for(probe, value)
            else:
                merged[key] = _CHECKS[key](f"methods[{name!r}][{key!r}]", value)
        chosen[name] = merged
    return chosen


def build_method(
    name: str,
    options: Mapping[str, Any],
    model: keras.Model,
    probe: np.ndarray,
    layer: str | int | None,
    output: str | int | None,
) -> Method:
    """The explainer of method ``name`` for ``model`` and probes shaped like ``probe``."""
    shape = probe.shape[1:]
    if name in ("saliency", "smoothgrad"):
        return Saliency(model, options["smooth_samples"], options["noise"], shape, output)
    if name == "gradients_x_inputs":
        return GradientsXInputs(model, shape, output)
    if name == "integrated_gradients":
        method = IntegratedGradients(model, options["steps"], shape, output)
        return functools.partial(method, baseline=baseline_for(probe, options["baseline"]))
    if name == "occlusion":
        opts = (options["patch"], options["stride"], options["fill"])
        return Occlusion(model, *opts, image_shape=shape, output=output)
    if name in ("score_cam", "faster_score_cam"):
        return ScoreCAM(model, layer, shape, output, probe, top_k=options["top_k"])
    kind = {"grad_cam": GradCAM, "grad_cam_plus_plus": GradCAMPlusPlus, "layer_cam": LayerCAM}
    return kind[name](model, layer, shape, output, probe)
