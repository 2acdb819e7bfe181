"""FilterLogger: the learned convolution kernels as normalized grids every epoch."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from vizcallbacks.arrays import check_positive_int
from vizcallbacks.callbacks.base import VisualizationCallback, publish_evolution
from vizcallbacks.compute.filters import (
    conv_layers,
    filter_weights,
    normalize_to_unit,
    relative_change,
)
from vizcallbacks.compute.layers import LayerRef, LayerSelection, select_layers
from vizcallbacks.render.colormap import check_cmap
from vizcallbacks.render.evolution import EvolutionRecorder, evolution_row
from vizcallbacks.render.tiling import tile_filters, tile_rgb_filters
from vizcallbacks.tags import tag

__all__ = ["FilterLogger"]


class FilterLogger(VisualizationCallback):
    """Log each conv layer's kernels, normalized to [0, 1] over the layer.

    ``filters/<layer>``: a row per filter (up to ``max_filters``), a column per input channel (up
    to ``max_inputs``). A layer with 3 input channels is also drawn in colour,
    ``filters_rgb/<layer>``, one RGB patch per filter. Scalars ``filter_drift/<layer>`` and
    ``filter_drift_from_init/<layer>``: the kernel's relative change since the previous logged
    step and since the first one. Works on any built model, subclassed too.
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
        # Raw kernels at the first and the latest logged step, for the drift scalars.
        self._initial_kernels: dict[str, np.ndarray] = {}
        self._previous: dict[str, np.ndarray] = {}
        self._evolution: dict[str, EvolutionRecorder] = defaultdict(EvolutionRecorder)

    def setup(self) -> None:
        self._refs = conv_layers(self.model, self.layers)
        if not self._refs:
            found = sorted({type(r.layer).__name__ for r in select_layers(self.model, self.layers)})
            raise ValueError(
                "FilterLogger found no Conv2D, DepthwiseConv2D, SeparableConv2D or "
                f"Conv2DTranspose layer among the layers asked for; found: {', '.join(found)}. "
                "Pass layers= naming conv layers, or leave it out."
            )

    def compute(self) -> tuple[dict[str, np.ndarray], dict[str, float]] | None:
        if not self.model.built:  # a Sequential without Input gets its weights in the first step
            return None
        kernels = {ref.name: filter_weights(ref.layer) for ref in self._refs}
        drift: dict[str, float] = {}
        for name, kernel in kernels.items():
            if name in self._previous:
                drift[tag("filter_drift", name)] = relative_change(kernel, self._previous[name])
                drift[tag("filter_drift_from_init", name)] = relative_change(
                    kernel, self._initial_kernels[name]
                )
            self._initial_kernels.setdefault(name, kernel)
        self._previous = kernels
        return kernels, drift

    def publish(self, payload: tuple[dict[str, np.ndarray], dict[str, float]], step: int) -> None:
        kernels, drift = payload
        if drift:
            self.write("write_scalars", drift, step)
        for layer, kernel in kernels.items():
            self.warn_nonfinite(f"kernel of {layer}", kernel)
            filters = normalize_to_unit(kernel)
            grid = tile_filters(filters, self.max_filters, self.max_inputs, self.cmap)
            self.write("write_image", tag("filters", layer), grid, step)
            first_input = np.moveaxis(filters[..., 0], 0, -1)  # (kh, kw, filters)
            self._evolution[layer].add(step, evolution_row(first_input, cmap=self.cmap), grid)
            if filters.shape[-1] == 3:
                rgb = tile_rgb_filters(filters, self.max_filters)
                self.write("write_image", tag("filters_rgb", layer), rgb, step)

    def publish_summary(self, step: int) -> None:
        """Per layer, a strip with a row per logged step (first input channel) and a GIF."""
        publish_evolution(self, "filter_evolution", self._evolution, step)
