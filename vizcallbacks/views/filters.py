"""What FilterLogger logs, as records: kernel grids, RGB patches and drift scalars."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from vizcallbacks.records import Image, Record, Scalars
from vizcallbacks.render.ranks import tile_square_filters, tile_volume_filters
from vizcallbacks.render.tiling import MAX_GRID_SIZE, tile_filters, tile_rgb_filters
from vizcallbacks.tags import tag

__all__ = ["drift_records", "evolution_maps", "filter_records"]


def filter_records(
    layer: str,
    filters: np.ndarray,
    max_filters: int,
    max_inputs: int,
    cmap: str,
    depthwise: bool = False,
    rgb: bool = True,
    max_size: int | None = MAX_GRID_SIZE,
) -> list[Image]:
    """Normalized kernels ``(F, kh, kw, in)`` as a grid, a row per filter; with 3 inputs also as
    RGB patches. 3-D kernels ``(F, kd, kh, kw, in)``: a row per filter, a block of depth slices
    per input. ``depthwise`` kernels ``(C·multiplier, kh, kw, 1)`` and any kernels of one input
    channel: a near-square grid (a row per filter would be a strip one kernel wide).
    ``rgb=False`` (1-D kernels, rows of taps) never draws the colour patches. ``max_size``: the
    row-per-filter grid's long side, in pixels, up to which small kernels are enlarged."""
    if filters.ndim == 5:
        grid = tile_volume_filters(filters, max_filters, max_inputs, cmap)
    elif depthwise or filters.shape[-1] == 1:  # no input axis to spread: a near-square grid
        grid = tile_square_filters(filters, max_filters, cmap)
    else:
        grid = tile_filters(filters, max_filters, max_inputs, cmap, max_size)
    records = [Image(tag("filters", layer), grid)]
    if rgb and filters.ndim == 4 and filters.shape[-1] == 3:
        records.append(Image(tag("filters_rgb", layer), tile_rgb_filters(filters, max_filters)))
    return records


def evolution_maps(filters: np.ndarray) -> np.ndarray:
    """Normalized kernels as ``(kh, kw, filters)`` maps of their first input channel, for the
    evolution strip; 3-D kernels ``(F, kd, kh, kw, in)`` by their middle depth slice."""
    if filters.ndim == 5:
        filters = filters[:, filters.shape[1] // 2]
    return np.moveaxis(filters[..., 0], 0, -1)


def drift_records(
    since_last: Mapping[str, float], since_first: Mapping[str, float]
) -> list[Record]:
    """Per layer, the kernels' relative change since the last logged step and the first."""
    values = {tag("filter_drift", layer): v for layer, v in since_last.items()}
    values |= {tag("filter_drift_from_init", layer): v for layer, v in since_first.items()}
    return [Scalars(values)] if values else []
