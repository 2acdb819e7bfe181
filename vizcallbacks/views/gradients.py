"""What GradientLogger logs, as records: per-layer scalars, gradient and weight histograms, the
gradient-flow picture of a step and the layers x steps heatmap at train end."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from vizcallbacks.records import Histogram, Image, Record, Scalars
from vizcallbacks.render.gradient_flow import gradient_evolution_image, gradient_flow_image
from vizcallbacks.tags import tag

__all__ = [
    "FLOW_LAYER",
    "evolution_records",
    "flow_records",
    "histogram_records",
    "scalar_records",
]

FLOW_LAYER = "all_layers"  # gradient_flow/all_layers: every layer in one picture


def scalar_records(values: Mapping[str, Mapping[str, float]]) -> list[Record]:
    """``{kind: {layer: value}}`` (``gradient_norm``, ``batch_weight_norm``...) as one record of
    ``<kind>/<layer>`` scalars."""
    scalars = {
        tag(kind, layer): float(v) for kind, per in values.items() for layer, v in per.items()
    }
    return [Scalars(scalars)] if scalars else []


def histogram_records(
    kind: str, arrays: Mapping[str, Mapping[str, np.ndarray | None]]
) -> list[Record]:
    """``{layer: {weight: values}}`` as histograms ``<kind>/<layer>/<weight>`` (kernel and bias
    apart); a weight without gradient (``None``) is left out."""
    return [
        Histogram(tag(kind, layer, weight), values)
        for layer, weights in arrays.items()
        for weight, values in weights.items()
        if values is not None
    ]


def flow_records(
    names: Sequence[str], mean_abs: Sequence[float], max_abs: Sequence[float]
) -> list[Record]:
    """The gradient-flow picture of one step, ``gradient_flow/all_layers``."""
    if not names:
        return []
    return [Image(tag("gradient_flow", FLOW_LAYER), gradient_flow_image(names, mean_abs, max_abs))]


def evolution_records(
    names: Sequence[str], steps: Sequence[int], log_mean: np.ndarray
) -> list[Record]:
    """log10 mean |g| per layer and logged step as a heatmap, ``gradient_flow/evolution``; only
    once at least two steps were logged."""
    if len(steps) < 2 or not names:
        return []
    return [
        Image(tag("gradient_flow", "evolution"), gradient_evolution_image(names, steps, log_mean))
    ]
