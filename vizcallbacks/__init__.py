"""vizcallbacks: see inside a Keras CNN while it trains.

Callbacks log feature maps, filters, Grad-CAM heatmaps, filter patterns and activation statistics
of a fixed probe every epoch to TensorBoard and MLflow; the same computations are plain functions
for notebooks.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from vizcallbacks._version import __version__

if TYPE_CHECKING:
    from vizcallbacks.callbacks.activations import ActivationLogger
    from vizcallbacks.callbacks.filters import FilterLogger
    from vizcallbacks.callbacks.gradcam import GradCAMLogger
    from vizcallbacks.callbacks.patterns import FilterPatternLogger
    from vizcallbacks.compute.activations import layer_activations
    from vizcallbacks.compute.filters import normalized_filters
    from vizcallbacks.compute.gradcam import grad_cam
    from vizcallbacks.compute.patterns import filter_patterns
    from vizcallbacks.compute.statistics import activation_statistics
    from vizcallbacks.render.overlay import overlay_heatmap
    from vizcallbacks.render.tiling import tile_filters, tile_maps
    from vizcallbacks.writers.base import Writer
    from vizcallbacks.writers.mlflow import MLflowWriter
    from vizcallbacks.writers.tensorboard import TensorBoardWriter

__all__ = [
    "ActivationLogger",
    "FilterLogger",
    "FilterPatternLogger",
    "GradCAMLogger",
    "MLflowWriter",
    "TensorBoardWriter",
    "Writer",
    "__version__",
    "activation_statistics",
    "filter_patterns",
    "grad_cam",
    "layer_activations",
    "normalized_filters",
    "overlay_heatmap",
    "tile_filters",
    "tile_maps",
]

# Public name → module that defines it. Imported on first access (PEP 562), so that importing
# a writer or a render function loads neither Keras nor TensorFlow, and MLflow (an optional
# extra) only when its writer is asked for.
_MODULES = {
    "ActivationLogger": "vizcallbacks.callbacks.activations",
    "FilterLogger": "vizcallbacks.callbacks.filters",
    "FilterPatternLogger": "vizcallbacks.callbacks.patterns",
    "GradCAMLogger": "vizcallbacks.callbacks.gradcam",
    "MLflowWriter": "vizcallbacks.writers.mlflow",
    "TensorBoardWriter": "vizcallbacks.writers.tensorboard",
    "Writer": "vizcallbacks.writers.base",
    "activation_statistics": "vizcallbacks.compute.statistics",
    "filter_patterns": "vizcallbacks.compute.patterns",
    "grad_cam": "vizcallbacks.compute.gradcam",
    "layer_activations": "vizcallbacks.compute.activations",
    "normalized_filters": "vizcallbacks.compute.filters",
    "overlay_heatmap": "vizcallbacks.render.overlay",
    "tile_filters": "vizcallbacks.render.tiling",
    "tile_maps": "vizcallbacks.render.tiling",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 'vizcallbacks' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
