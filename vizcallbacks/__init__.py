"""vizcallbacks: see inside a Keras CNN while it trains.

Callbacks log feature maps, filters, Grad-CAM and other attribution maps, filter patterns and
activation statistics of a fixed probe every epoch to TensorBoard and MLflow; the same
computations are plain functions for notebooks. The names below load on first use (PEP 562), so
importing the rendering code or a writer loads no TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from vizcallbacks._version import __version__
from vizcallbacks.writers.run_report import install_run_report

if TYPE_CHECKING:
    from vizcallbacks.callbacks.activations import ActivationLogger
    from vizcallbacks.callbacks.attribution import AttributionLogger
    from vizcallbacks.callbacks.filters import FilterLogger
    from vizcallbacks.callbacks.gradcam import GradCAMLogger
    from vizcallbacks.callbacks.gradients import GradientLogger
    from vizcallbacks.callbacks.patterns import FilterPatternLogger
    from vizcallbacks.callbacks.representations import RepresentationLogger
    from vizcallbacks.compute.activations import layer_activations
    from vizcallbacks.compute.attribution.faithfulness import (
        deletion_curve,
        insertion_curve,
        mu_fidelity,
    )
    from vizcallbacks.compute.attribution.notebook import (
        grad_cam,
        grad_cam_plus_plus,
        gradients_x_inputs,
        integrated_gradients,
        layer_cam,
        occlusion_sensitivity,
        saliency,
        score_cam,
    )
    from vizcallbacks.compute.cka import cka
    from vizcallbacks.compute.filters import normalized_filters
    from vizcallbacks.compute.gradients import gradient_flow, layer_gradients
    from vizcallbacks.compute.patterns import class_patterns, filter_patterns
    from vizcallbacks.compute.representations import cka_matrix
    from vizcallbacks.compute.statistics import activation_statistics
    from vizcallbacks.render.overlay import overlay_heatmap
    from vizcallbacks.render.tiling import tile_filters, tile_maps
    from vizcallbacks.writers.base import Writer
    from vizcallbacks.writers.mlflow import MLflowWriter
    from vizcallbacks.writers.tensorboard import TensorBoardWriter

_HOMES = {
    "ActivationLogger": "vizcallbacks.callbacks.activations",
    "AttributionLogger": "vizcallbacks.callbacks.attribution",
    "FilterLogger": "vizcallbacks.callbacks.filters",
    "FilterPatternLogger": "vizcallbacks.callbacks.patterns",
    "GradCAMLogger": "vizcallbacks.callbacks.gradcam",
    "GradientLogger": "vizcallbacks.callbacks.gradients",
    "MLflowWriter": "vizcallbacks.writers.mlflow",
    "RepresentationLogger": "vizcallbacks.callbacks.representations",
    "TensorBoardWriter": "vizcallbacks.writers.tensorboard",
    "Writer": "vizcallbacks.writers.base",
    "activation_statistics": "vizcallbacks.compute.statistics",
    "cka": "vizcallbacks.compute.cka",
    "cka_matrix": "vizcallbacks.compute.representations",
    "deletion_curve": "vizcallbacks.compute.attribution.faithfulness",
    "insertion_curve": "vizcallbacks.compute.attribution.faithfulness",
    "mu_fidelity": "vizcallbacks.compute.attribution.faithfulness",
    "filter_patterns": "vizcallbacks.compute.patterns",
    "class_patterns": "vizcallbacks.compute.patterns",
    "gradient_flow": "vizcallbacks.compute.gradients",
    "grad_cam": "vizcallbacks.compute.attribution.notebook",
    "grad_cam_plus_plus": "vizcallbacks.compute.attribution.notebook",
    "gradients_x_inputs": "vizcallbacks.compute.attribution.notebook",
    "integrated_gradients": "vizcallbacks.compute.attribution.notebook",
    "layer_cam": "vizcallbacks.compute.attribution.notebook",
    "occlusion_sensitivity": "vizcallbacks.compute.attribution.notebook",
    "saliency": "vizcallbacks.compute.attribution.notebook",
    "score_cam": "vizcallbacks.compute.attribution.notebook",
    "layer_activations": "vizcallbacks.compute.activations",
    "layer_gradients": "vizcallbacks.compute.gradients",
    "normalized_filters": "vizcallbacks.compute.filters",
    "overlay_heatmap": "vizcallbacks.render.overlay",
    "tile_filters": "vizcallbacks.render.tiling",
    "tile_maps": "vizcallbacks.render.tiling",
}

__all__ = [
    "ActivationLogger",
    "AttributionLogger",
    "FilterLogger",
    "FilterPatternLogger",
    "GradCAMLogger",
    "GradientLogger",
    "MLflowWriter",
    "RepresentationLogger",
    "TensorBoardWriter",
    "Writer",
    "__version__",
    "activation_statistics",
    "cka",
    "cka_matrix",
    "class_patterns",
    "deletion_curve",
    "filter_patterns",
    "grad_cam",
    "grad_cam_plus_plus",
    "gradient_flow",
    "gradients_x_inputs",
    "insertion_curve",
    "integrated_gradients",
    "layer_activations",
    "layer_cam",
    "layer_gradients",
    "mu_fidelity",
    "normalized_filters",
    "occlusion_sensitivity",
    "overlay_heatmap",
    "saliency",
    "score_cam",
    "tile_filters",
    "tile_maps",
]


def _log_report(tracking_uri: str, run_id: str) -> None:
    """``MLflowWriter(report=True)``'s report: the read side builds it (loaded on first use)."""
    from vizcallbacks.dashboard.report import log_report

    log_report(tracking_uri, run_id)


# The package root imports both sides, so it hands the writers the report builder: Python runs
# this file before any writer module, and the writers never import the read side.
install_run_report(_log_report)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'vizcallbacks' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))
