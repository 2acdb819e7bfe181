"""Pictures for outputs that are not images: signals ``(T, C)`` as heatmaps, volumes montaged.

Numpy only. A signal is drawn a row per channel with time along x; a volume a row per channel and
a column per depth slice; square grids of single-channel kernels serve depthwise layers.
"""

from __future__ import annotations

import math

import numpy as np

from vizcallbacks.arrays import as_float_array, check_positive_int
from vizcallbacks.render.colormap import DEFAULT_CMAP, colorize
from vizcallbacks.render.tiling import (
    MAX_GRID_SIZE,
    enlarge_tiles,
    normalize_maps,
    shrink_maps,
    tile_images,
    upscale_factor,
)

__all__ = [
    "MIN_ROW_HEIGHT",
    "MIN_SIGNAL_WIDTH",
    "signal_heatmap",
    "signal_layout",
    "tile_square_filters",
    "tile_volume",
    "tile_volume_filters",
]

MIN_ROW_HEIGHT = 4  # each channel's row is at least this many pixels tall
MIN_SIGNAL_HEIGHT = 32  # few channels get taller rows, so the picture is at least this tall
MIN_SIGNAL_WIDTH = 256  # short signals are stretched (integer factor) to at least this width


def signal_layout(channels: int, steps: int, max_size: int | None) -> tuple[int, int, int]:
    """``(time shrink, row height, time stretch)`` of the heatmap of ``channels`` x ``steps``.

    Time is shrunk by the smallest integer factor that fits ``max_size`` (block means); rows are
    ``max(4, ceil(32 / channels))`` pixels tall; each time step ``ceil(256 / steps)`` wide.
    """
    shrink = 1 if max_size is None else max(1, math.ceil(steps / max_size))
    kept = math.ceil(steps / shrink)
    row = max(MIN_ROW_HEIGHT, math.ceil(MIN_SIGNAL_HEIGHT / channels))
    stretch = max(1, math.ceil(MIN_SIGNAL_WIDTH / kept))
    if max_size is not None:
        stretch = max(1, min(stretch, max_size // kept))
    return shrink, row, stretch


def signal_heatmap(
    signal: np.ndarray,
    max_channels: int = 64,
    cmap: str = DEFAULT_CMAP,
    max_size: int | None = MAX_GRID_SIZE,
) -> np.ndarray:
    """Outputs ``(T, C)`` of one signal → uint8 heatmap, a row per channel, time along x.

    Each channel (the first ``max_channels``) is normalized on its own and coloured; rows are
    enlarged per :func:`signal_layout` and split by 1-pixel grey lines: ``C·h + C - 1`` tall,
    ``ceil(T / shrink)·stretch`` wide. Constant rows are black, NaN/Inf magenta.
    """
    signal = as_float_array(signal, "signal", 2, "(T, C)")
    rows = signal[:, : check_positive_int("max_channels", max_channels)].T[:, None, :]
    shrink, height, stretch = signal_layout(rows.shape[0], rows.shape[2], max_size)
    if shrink > 1:  # shrink_maps shrinks both axes: a 1-high row stays one row
        rows = shrink_maps(rows, shrink)
    scaled, constant = normalize_maps(rows)
    tiles = colorize(scaled, cmap, blank=constant[:, None, None])
    return tile_images(enlarge_tiles(tiles, height, stretch), cols=1)


def _volume_tiles(volumes: np.ndarray, cmap: str, normalize: bool) -> np.ndarray:
    """``(C, D, H, W)`` → colour tiles ``(C·D, h, w, 3)``, each channel scaled over its volume."""
    c, d, h, w = volumes.shape
    flat = volumes.reshape(c, d * h, w)
    if normalize:
        scaled, constant = normalize_maps(flat)
        tiles = colorize(scaled.reshape(c * d, h, w), cmap, np.repeat(constant, d)[:, None, None])
    else:
        tiles = colorize(flat.reshape(c * d, h, w), cmap)
    return enlarge_tiles(tiles, upscale_factor(h, w))


def tile_volume(
    volume: np.ndarray,
    max_channels: int = 64,
    cmap: str = DEFAULT_CMAP,
    max_size: int | None = MAX_GRID_SIZE,
) -> np.ndarray:
    """Outputs ``(D, H, W, C)`` of one volume → uint8 montage: a row per channel, a column per
    depth slice, so one row reads as the channel's volume front to back.

    Each channel is normalized over its whole volume (slices of a channel stay comparable);
    slices are enlarged as feature maps are (to at least 32 pixels). A montage whose long side
    would pass ``max_size`` is drawn from slices shrunk by an integer factor (block means).
    """
    volume = as_float_array(volume, "volume", 4, "(D, H, W, C)")
    channels = np.moveaxis(volume[..., : check_positive_int("max_channels", max_channels)], -1, 0)
    c, d, h, w = channels.shape
    if max_size is not None:
        factor = _volume_shrink(c, d, h, w, check_positive_int("max_size", max_size))
        if factor > 1:
            shrunk = shrink_maps(channels.reshape(c * d, h, w), factor)
            channels = shrunk.reshape(c, d, *shrunk.shape[1:])
    return tile_images(_volume_tiles(channels, cmap, normalize=True), cols=d)


def _volume_shrink(rows: int, cols: int, h: int, w: int, max_size: int) -> int:
    """The smallest integer factor that fits a ``rows`` x ``cols`` montage of enlarged slices."""
    factor = 1
    while factor < max(h, w):
        hs, ws = -(-h // factor), -(-w // factor)
        up = upscale_factor(hs, ws)
        if max(rows * (hs * up + 1), cols * (ws * up + 1)) - 1 <= max_size:
            break
        factor += 1
    return factor


def tile_volume_filters(
    filters: np.ndarray, max_filters: int = 64, max_inputs: int = 16, cmap: str = DEFAULT_CMAP
) -> np.ndarray:
    """3-D kernels ``(F, kd, kh, kw, C_in)`` already in [0, 1] → uint8 grid, a row per filter.

    Each row holds, per input channel (up to ``max_inputs``), a block of ``kd`` depth slices:
    column ``c·kd + d`` is input ``c``, slice ``d``. Values keep the layer-wide scale.
    """
    filters = as_float_array(filters, "filters", 5, "(F, kd, kh, kw, C_in)")
    filters = filters[: check_positive_int("max_filters", max_filters)]
    filters = filters[..., : check_positive_int("max_inputs", max_inputs)]
    f, kd, kh, kw, cin = filters.shape
    blocks = np.moveaxis(filters, -1, 1).reshape(f * cin, kd, kh, kw)  # (filter, input) blocks
    return tile_images(_volume_tiles(blocks, cmap, normalize=False), cols=cin * kd)


def tile_square_filters(
    filters: np.ndarray, max_filters: int = 64, cmap: str = DEFAULT_CMAP
) -> np.ndarray:
    """Single-channel kernels ``(F, kh, kw, 1)`` in [0, 1] (depthwise: one per input channel and
    multiplier) → uint8 near-square grid of the first ``max_filters``, in order.

    A depthwise layer has no input-channel axis to spread along columns, so a row per filter
    would make a column thousands of pixels tall; a near-square grid keeps it readable.
    """
    filters = as_float_array(filters, "filters", 4, "(F, kh, kw, 1)")
    filters = filters[: check_positive_int("max_filters", max_filters), ..., 0]
    tiles = colorize(filters, cmap)
    return tile_images(enlarge_tiles(tiles, upscale_factor(*filters.shape[1:])))
