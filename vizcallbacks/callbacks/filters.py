"""FilterLogger: the learned convolution kernels as normalized grids every epoch."""

from __future__ import annotations

from typing import Any

import numpy as np

from vizcallbacks.arrays import check_positive_int
from vizcallbacks.callbacks.base import VisualizationCallback
from vizcallbacks.compute.filters import conv_layers, layer_filters
from vizcallbacks.compute.layers import LayerRef, LayerSelection, select_layers
from vizcallbacks.render.colormap import check_cmap
from vizcallbacks.render.tiling import tile_filters, tile_rgb_filters
from vizcallbacks.tags import tag

__all__ = ["FilterLogger"]


class FilterLogger(VisualizationCallback):
    """Log each conv layer's kernels, normalized to [0, 1] over the layer.

    ``filters/<layer>``: a row per filter (up to ``max_filters``), a column per input channel (up
    to ``max_inputs``). A layer with 3 input channels is also drawn in colour,
    ``filters_rgb/<layer>``, one RGB patch per filter. Works on any built model, subclassed too.
    """

    def __init__(
        self,
        writers: Any,
        layers: LayerSelection = None,
        every_n_epochs: int = 1,
        max_filters: int = 64,
        max_inputs: int = 16,
        cmap: str = "viridis",
    ) -> None:
        super().__init__(writers, every_n_epochs)
        self.layers = layers
        self.max_filters = check_positive_int("max_filters", max_filters)
        self.max_inputs = check_positive_int("max_inputs", max_inputs)
        self.cmap = check_cmap(cmap)
        self._refs: list[LayerRef] = []

    def setup(self) -> None:
        self._refs = conv_layers(self.model, self.layers)
        if not self._refs:
            found = sorted({type(r.layer).__name__ for r in select_layers(self.model, self.layers)})
            raise ValueError(
                "FilterLogger found no Conv2D, DepthwiseConv2D, SeparableConv2D or "
                f"Conv2DTranspose layer among the layers asked for; found: {', '.join(found)}. "
                "Pass layers= naming conv layers, or leave it out."
            )

    def compute(self) -> dict[str, np.ndarray] | None:
        if not self.model.built:  # a Sequential without Input gets its weights in the first step
            return None
        return layer_filters(self._refs)

    def publish(self, payload: dict[str, np.ndarray], step: int) -> None:
        for layer, filters in payload.items():
            self.warn_nonfinite(f"kernel of {layer}", filters)
            grid = tile_filters(filters, self.max_filters, self.max_inputs, self.cmap)
            self.write("write_image", tag("filters", layer), grid, step)
            if filters.shape[-1] == 3:
                rgb = tile_rgb_filters(filters, self.max_filters)
                self.write("write_image", tag("filters_rgb", layer), rgb, step)
