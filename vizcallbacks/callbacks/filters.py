"""FilterLogger: the learned convolution kernels as normalized grids every epoch."""

from __future__ import annotations

from typing import Any

import numpy as np

from vizcallbacks.arrays import check_positive_int
from vizcallbacks.callbacks.base import VisualizationCallback
from vizcallbacks.compute.filters import (
    filter_weights,
    is_depthwise,
    is_one_dimensional,
    kernel_layers,
    normalize_to_unit,
    relative_change,
)
from vizcallbacks.compute.layers import (
    LayerRef,
    LayerSelection,
    select_layers,
    with_inner_layers,
)
from vizcallbacks.records import Record
from vizcallbacks.render.colormap import DEFAULT_CMAP, check_cmap
from vizcallbacks.render.tiling import MAX_GRID_SIZE
from vizcallbacks.views.evolution import Evolutions
from vizcallbacks.views.filters import drift_records, evolution_maps, filter_records

__all__ = ["FilterLogger"]


class FilterLogger(VisualizationCallback):
    """Log each conv layer's kernels (1-D, 2-D, 3-D), normalized to [0, 1] over the layer.

    ``filters/<layer>``: a row per filter (up to ``max_filters``), a column per input channel (up
    to ``max_inputs``); Conv1D kernels are rows of taps, Conv3D kernels a block of depth slices
    per input channel, depthwise kernels a near-square grid of one tile per input channel (and
    multiplier). A 2-D layer with 3 input channels is also drawn in colour,
    ``filters_rgb/<layer>``, one RGB patch per filter. Scalars ``filter_drift/<layer>`` and
    ``filter_drift_from_init/<layer>``: the kernel's relative change since the previous logged
    step and since the first one. Works on any built model, subclassed too. Small kernels are
    enlarged towards 32 pixels unless the grid's long side would pass ``max_grid_size`` pixels
    (1,024; ``None``: always).
    """

    def __init__(
        self,
        writers: Any,
        layers: LayerSelection = None,
        every_n_epochs: int = 1,
        max_filters: int = 64,
        max_inputs: int = 16,
        cmap: str = DEFAULT_CMAP,
        max_grid_size: int | None = MAX_GRID_SIZE,
    ) -> None:
        super().__init__(writers, every_n_epochs)
        self.layers = layers
        self.max_filters = check_positive_int("max_filters", max_filters)
        self.max_inputs = check_positive_int("max_inputs", max_inputs)
        self.cmap = check_cmap(cmap)
        self.max_grid_size = (
            None if max_grid_size is None else check_positive_int("max_grid_size", max_grid_size)
        )
        self._refs: list[LayerRef] = []
        self._depthwise: set[str] = set()  # drawn as a near-square grid
        self._one_d: set[str] = set()  # rows of taps: never drawn as RGB patches
        # Raw kernels at the first and the latest logged step, for the drift scalars.
        self._initial_kernels: dict[str, np.ndarray] = {}
        self._previous: dict[str, np.ndarray] = {}
        self._evolution = Evolutions("filter_evolution", cmap=self.cmap)

    def setup(self) -> None:
        self._refs = kernel_layers(self.model, self.layers)
        self._depthwise = {ref.name for ref in self._refs if is_depthwise(ref.layer)}
        self._one_d = {ref.name for ref in self._refs if is_one_dimensional(ref.layer)}
        self._evolution = Evolutions("filter_evolution", len(self._refs), self.cmap)
        if not self._refs:
            refs = with_inner_layers(select_layers(self.model, self.layers))
            found = sorted({type(r.layer).__name__ for r in refs})
            raise ValueError(
                "FilterLogger found no Conv2D, DepthwiseConv2D, SeparableConv2D or "
                "Conv2DTranspose layer (nor a Conv1D or Conv3D one) among the layers asked for, "
                f"nor inside their wrappers; found: {', '.join(found)}. Pass layers= naming conv "
                "layers (or the wrappers around them), or leave it out."
            )

    def claims(self) -> set[tuple[str, ...]]:
        return {("filters", ref.name) for ref in self._refs}

    def compute(self) -> tuple[dict[str, np.ndarray], list[Record]] | None:
        if not self.model.built:  # a Sequential without Input gets its weights in the first step
            return None
        kernels = {ref.name: filter_weights(ref.layer) for ref in self._refs}
        since_last = {
            name: relative_change(kernel, self._previous[name])
            for name, kernel in kernels.items()
            if name in self._previous
        }
        since_first = {
            name: relative_change(kernels[name], self._initial_kernels[name]) for name in since_last
        }
        for name, kernel in kernels.items():
            self._initial_kernels.setdefault(name, kernel)
        self._previous = kernels
        return kernels, drift_records(since_last, since_first)

    def view(self, payload: tuple[dict[str, np.ndarray], list[Record]], step: int) -> list[Record]:
        kernels, records = payload
        records = list(records)
        for layer, kernel in kernels.items():
            self.warn_nonfinite(f"kernel of {layer}", kernel)
            filters = normalize_to_unit(kernel)
            images = filter_records(
                layer,
                filters,
                self.max_filters,
                self.max_inputs,
                self.cmap,
                depthwise=layer in self._depthwise,
                rgb=layer not in self._one_d,
                max_size=self.max_grid_size,
            )
            self._evolution.add(layer, step, evolution_maps(filters), images[0].pixels)
            records += images
        return records

    def summary_view(self) -> list[Record]:
        """Per layer, a strip with a row per logged step (first input channel) and a GIF."""
        return self._evolution.records()
