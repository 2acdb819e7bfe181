"""What FilterLogger logs, as records: kernel grids, RGB patches and drift scalars."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from vizcallbacks.records import Image, Record, Scalars
from vizcallbacks.render.tiling import tile_filters, tile_rgb_filters
from vizcallbacks.tags import tag

__all__ = ["drift_records", "filter_records"]


def filter_records(
    layer: str, filters: np.ndarray, max_filters: int, max_inputs: int, cmap: str
) -> list[Image]:
    """Normalized kernels ``(F, kh, kw, in)`` as a grid; with 3 inputs also as RGB patches."""
    records = [Image(tag("filters", layer), tile_filters(filters, max_filters, max_inputs, cmap))]
    if filters.shape[-1] == 3:
        records.append(Image(tag("filters_rgb", layer), tile_rgb_filters(filters, max_filters)))
    return records


def drift_records(
    since_last: Mapping[str, float], since_first: Mapping[str, float]
) -> list[Record]:
    """Per layer, the kernels' relative change since the last logged step and the first."""
    values = {tag("filter_drift", layer): v for layer, v in since_last.items()}
    values |= {tag("filter_drift_from_init", layer): v for layer, v in since_first.items()}
    return [Scalars(values)] if values else []
