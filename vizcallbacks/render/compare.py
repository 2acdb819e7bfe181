"""Class comparison: one channel followed through the network for several probes."""

from __future__ import annotations

import numpy as np

from vizcallbacks.arrays import as_float_array
from vizcallbacks.render.colormap import colorize
from vizcallbacks.render.tiling import normalize_maps, tile_images

__all__ = ["class_comparison_grid", "resize_nearest"]


def resize_nearest(maps: np.ndarray, size: int) -> np.ndarray:
    """Resize ``maps`` ``(N, H, W)`` to ``(N, size, size)`` by nearest neighbour."""
    rows = (np.arange(size) * maps.shape[1] // size).clip(0, maps.shape[1] - 1)
    cols = (np.arange(size) * maps.shape[2] // size).clip(0, maps.shape[2] - 1)
    return maps[:, rows][:, :, cols]


def class_comparison_grid(
    columns: list[np.ndarray], tile_size: int = 64, cmap: str = "viridis"
) -> np.ndarray:
    """A row per probe, a column per entry of ``columns`` (each ``(N, H, W)``): uint8 grid.

    Typically the input image then one channel of each 4-D layer (``compare_class_features`` in
    the Fashion-MNIST tutorial); every map is normalized on its own and resized to ``tile_size``.
    """
    if not columns:
        raise ValueError("columns is empty: pass the input and at least one layer's maps")
    maps = [as_float_array(c, "columns[i]", 3, "(N, H, W)") for c in columns]
    n = maps[0].shape[0]
    if any(m.shape[0] != n for m in maps):
        raise ValueError(
            f"every column needs one map per probe ({n}). Received {[m.shape for m in maps]}"
        )
    tiles = []
    for column in maps:
        scaled, constant = normalize_maps(resize_nearest(column, tile_size))
        tiles.append(colorize(scaled, cmap, blank=constant[:, None, None]))
    ordered = np.stack(tiles, axis=1).reshape(n * len(maps), tile_size, tile_size, 3)
    return tile_images(ordered, cols=len(maps))
