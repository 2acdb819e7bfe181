"""vizcallbacks: see inside a Keras CNN while it trains.

Callbacks log feature maps, filters, Grad-CAM heatmaps, filter patterns and activation statistics
of a fixed probe every epoch to TensorBoard and MLflow; the same computations are plain functions
for notebooks.
"""

from __future__ import annotations

from typing import Any

from vizcallbacks._version import __version__
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


def __getattr__(name: str) -> Any:
    # MLflow is an optional extra: import it only when its writer is asked for.
    if name == "MLflowWriter":
        from vizcallbacks.writers.mlflow import MLflowWriter

        return MLflowWriter
    raise AttributeError(f"module 'vizcallbacks' has no attribute {name!r}")
