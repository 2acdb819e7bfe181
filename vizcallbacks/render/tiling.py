"""Tile many small maps into one uint8 picture: numpy only, no figures."""

from __future__ import annotations

import math

import numpy as np

from vizcallbacks.arrays import as_float_array, check_positive_int
from vizcallbacks.render.colormap import DEFAULT_CMAP, colorize

__all__ = [
    "MAX_GRID_SIZE",
    "SEPARATOR_VALUE",
    "enlarge_tiles",
    "grid_shape",
    "mean_map_image",
    "normalize_maps",
    "shrink_factor",
    "shrink_maps",
    "tile_filters",
    "tile_images",
    "tile_maps",
    "tile_rgb_filters",
    "upscale_factor",
]

SEPARATOR_VALUE = 200  # light grey lines between tiles
MIN_TILE_SIZE = 32  # small maps are enlarged (nearest) to at least this many pixels
MAX_GRID_SIZE = 1024  # larger grids are drawn from maps shrunk by an integer factor (area mean)


def grid_shape(n: int) -> tuple[int, int]:
    """Rows and columns of the near-square grid for ``n`` tiles (columns ≥ rows)."""
    cols = max(1, math.ceil(math.sqrt(n)))
    return max(1, math.ceil(n / cols)), cols


def upscale_factor(height: int, width: int, min_size: int = MIN_TILE_SIZE) -> int:
    """Integer nearest-neighbour factor that makes the larger side reach ``min_size``."""
    return max(1, math.ceil(min_size / max(height, width, 1)))


def normalize_maps(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Min-max normalize each map of ``maps`` ``(N, H, W)`` on its own, over finite values.

    Returns the float32 maps in [0, 1] (non-finite pixels stay NaN/Inf) and a boolean ``(N,)``
    that marks constant maps (all finite values equal, or none finite), drawn black.
    """
    maps = np.asarray(maps, dtype=np.float32)
    finite = np.isfinite(maps)
    lo = np.where(finite, maps, np.inf).min(axis=(1, 2), keepdims=True)
    hi = np.where(finite, maps, -np.inf).max(axis=(1, 2), keepdims=True)
    span = hi - lo
    constant = ~(span > 0) | ~np.isfinite(span)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        scaled = np.where(constant, 0.0, (maps - lo) / np.where(constant, 1.0, span))
    scaled = np.where(finite, scaled, maps).astype(np.float32)
    return scaled, constant.reshape(-1)


def tile_images(tiles: np.ndarray, cols: int | None = None, pad: int = 1) -> np.ndarray:
    """Lay ``tiles`` ``(N, h, w, 3)`` uint8 out in a grid, ``pad`` grey pixels between them."""
    n, h, w, c = tiles.shape
    rows, cols = grid_shape(n) if cols is None else (math.ceil(n / cols), cols)
    cell = np.full((rows * cols, h + pad, w + pad, c), SEPARATOR_VALUE, dtype=np.uint8)
    cell[:n, :h, :w] = tiles
    if n < rows * cols:
        cell[n:, :h, :w] = 0
    grid = cell.reshape(rows, cols, h + pad, w + pad, c).transpose(0, 2, 1, 3, 4)
    grid = grid.reshape(rows * (h + pad), cols * (w + pad), c)
    return np.ascontiguousarray(grid[: grid.shape[0] - pad or None, : grid.shape[1] - pad or None])


def enlarge_tiles(tiles: np.ndarray, factor: int, width_factor: int | None = None) -> np.ndarray:
    """Tiles ``(N, h, w, ...)`` enlarged by pixel repetition: ``factor`` times in height and
    ``width_factor`` (default: the same) in width."""
    across = factor if width_factor is None else width_factor
    if factor == 1 and across == 1:
        return tiles
    return tiles.repeat(factor, axis=1).repeat(across, axis=2)


def tile_maps(
    maps: np.ndarray,
    max_channels: int = 64,
    cmap: str = DEFAULT_CMAP,
    max_size: int | None = MAX_GRID_SIZE,
) -> np.ndarray:
    """Feature maps ``(H, W, C)`` of one image → uint8 ``(rows·h, cols·w, 3)`` grid.

    The first ``max_channels`` channels are drawn, each normalized on its own and coloured with
    ``cmap``; constant maps are black, NaN/Inf pixels magenta, small maps enlarged. A grid whose
    long side would pass ``max_size`` pixels is drawn from maps shrunk by the smallest integer
    factor that fits (the mean of each block); ``None`` keeps full size.
    """
    maps = as_float_array(maps, "maps", 3, "(H, W, C)")
    check_positive_int("max_channels", max_channels)
    channels = np.moveaxis(maps[..., :max_channels], -1, 0)
    if max_size is not None:
        channels = shrink_maps(
            channels, shrink_factor(channels.shape, check_positive_int("max_size", max_size))
        )
    scaled, constant = normalize_maps(channels)
    tiles = colorize(scaled, cmap, blank=constant[:, None, None])
    return tile_images(enlarge_tiles(tiles, upscale_factor(*maps.shape[:2])))


def shrink_factor(shape: tuple[int, ...], max_size: int) -> int:
    """The smallest integer factor that fits the grid of ``(N, H, W)`` maps in ``max_size``."""
    n, h, w = shape
    rows, cols = grid_shape(n)
    factor = 1
    while (
        factor < max(h, w)
        and max(rows * (-(-h // factor) + 1) - 1, cols * (-(-w // factor) + 1) - 1) > max_size
    ):
        factor += 1
    return factor


def shrink_maps(maps: np.ndarray, factor: int) -> np.ndarray:
    """``(N, H, W)`` maps shrunk ``factor`` times by block means (edges padded with the border)."""
    if factor == 1:
        return maps
    n, h, w = maps.shape
    pad = ((0, 0), (0, -h % factor), (0, -w % factor))
    blocks = np.pad(maps, pad, mode="edge")
    return blocks.reshape(n, blocks.shape[1] // factor, factor, -1, factor).mean(axis=(2, 4))


def mean_map_image(maps: np.ndarray, cmap: str = DEFAULT_CMAP) -> np.ndarray:
    """The average over channels of ``maps`` ``(H, W, C)``, normalized and coloured, uint8."""
    mean = as_float_array(maps, "maps", 3, "(H, W, C)").mean(axis=-1)
    scaled, constant = normalize_maps(mean[None])
    image = colorize(scaled, cmap, blank=constant[:, None, None])
    return enlarge_tiles(image, upscale_factor(*mean.shape))[0]


def tile_filters(
    filters: np.ndarray,
    max_filters: int = 64,
    max_inputs: int = 16,
    cmap: str = DEFAULT_CMAP,
    max_size: int | None = MAX_GRID_SIZE,
) -> np.ndarray:
    """Kernels ``(F, kh, kw, C_in)`` already in [0, 1] → uint8 grid, a row per filter.

    Columns are input channels; the values are not re-normalized, so the layer-wide scale holds.
    Small kernels are enlarged (nearest) towards 32 pixels, less when the grid's long side would
    pass ``max_size`` pixels (never below the kernel's own size); ``None`` enlarges fully.
    """
    filters = as_float_array(filters, "filters", 4, "(F, kh, kw, C_in)")
    check_positive_int("max_filters", max_filters)
    check_positive_int("max_inputs", max_inputs)
    filters = filters[:max_filters, ..., :max_inputs]
    f, kh, kw, cin = filters.shape
    factor = upscale_factor(kh, kw)
    if max_size is not None:
        check_positive_int("max_size", max_size)
        while factor > 1 and max(f * (kh * factor + 1), cin * (kw * factor + 1)) - 1 > max_size:
            factor -= 1
    tiles = colorize(np.moveaxis(filters, -1, 1).reshape(f * cin, kh, kw), cmap)
    return tile_images(enlarge_tiles(tiles, factor), cols=cin)


def tile_rgb_filters(filters: np.ndarray, max_filters: int = 64) -> np.ndarray:
    """Kernels ``(F, kh, kw, 3)`` in [0, 1] → uint8 grid of RGB patches, one per filter."""
    filters = as_float_array(filters, "filters", 4, "(F, kh, kw, 3)")
    filters = filters[: check_positive_int("max_filters", max_filters)]
    finite = np.isfinite(filters)
    rgb = np.round(np.clip(np.where(finite, filters, 0.0), 0.0, 1.0) * 255).astype(np.uint8)
    rgb[~finite.all(axis=-1)] = (255, 0, 255)
    return tile_images(enlarge_tiles(rgb, upscale_factor(*filters.shape[1:3])))
