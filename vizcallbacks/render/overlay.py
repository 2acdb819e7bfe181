"""Heatmaps over images and filter patterns as pictures: numpy only, uint8 out."""

from __future__ import annotations

import numpy as np

from vizcallbacks.render.colormap import BLACK, HEATMAP_CMAP, NONFINITE_COLOR, check_cmap, colorize
from vizcallbacks.render.tiling import MIN_TILE_SIZE, enlarge_tiles, tile_images, upscale_factor

__all__ = [
    "enlarge",
    "heatmap_image",
    "image_to_rgb",
    "overlay_heatmap",
    "pattern_images",
    "tile_patterns",
]

PATTERN_CONTRAST = 0.15  # a pattern's standard deviation maps to this share of the grey range


def image_to_rgb(image: np.ndarray) -> np.ndarray:
    """An image ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` (or more channels: the first) → uint8
    ``(H, W, 3)``. uint8 is kept, floats in [0, 1] are scaled by 255, other ranges min-max scaled.
    """
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or 0 in array.shape:
        raise ValueError(f"image must be (H, W) or (H, W, C). Received shape {array.shape}")
    if array.shape[-1] != 3:
        array = array[..., :1]
    if array.dtype != np.uint8:
        values = np.asarray(array, dtype=np.float64)
        finite = np.isfinite(values)
        lo = float(values[finite].min()) if finite.any() else 0.0
        hi = float(values[finite].max()) if finite.any() else 0.0
        values = np.where(finite, values, lo)  # NaN/Inf pixels drawn as the darkest value
        if lo < 0.0 or hi > 1.0:
            values = (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)
        array = np.round(np.clip(values, 0.0, 1.0) * 255).astype(np.uint8)
    return np.repeat(array, 3, axis=-1) if array.shape[-1] == 1 else array.copy()


def heatmap_image(heatmap: np.ndarray, cmap: str = HEATMAP_CMAP) -> np.ndarray:
    """A heatmap ``(H, W)`` in [0, 1] (clipped; NaN/Inf magenta) → uint8 ``(H, W, 3)``."""
    values = np.asarray(heatmap, dtype=np.float32)
    if values.ndim != 2:
        raise ValueError(f"heatmap must be (H, W). Received shape {values.shape}")
    finite = np.isfinite(values)
    return colorize(np.where(finite, np.clip(values, 0.0, 1.0), values), cmap)


def overlay_heatmap(
    image: np.ndarray, heatmap: np.ndarray, cmap: str = HEATMAP_CMAP, alpha: float = 0.4
) -> np.ndarray:
    """``round((1 - alpha)·image + alpha·cmap(heatmap))``: uint8 ``(H, W, 3)``.

    ``image`` as in :func:`image_to_rgb`; ``heatmap`` ``(H, W)`` in [0, 1], the image's size.
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be a number in [0, 1]. Received: alpha={alpha!r}")
    check_cmap(cmap)
    rgb = image_to_rgb(image)
    heat = heatmap_image(heatmap, cmap)
    if heat.shape != rgb.shape:
        raise ValueError(
            f"heatmap must have the image's height and width {rgb.shape[:2]}. "
            f"Received heatmap shape {np.shape(heatmap)}"
        )
    blended = (1.0 - alpha) * rgb.astype(np.float32) + alpha * heat.astype(np.float32)
    return np.round(blended).astype(np.uint8)


def enlarge(image: np.ndarray, min_size: int = MIN_TILE_SIZE) -> np.ndarray:
    """Repeat pixels of ``image`` ``(H, W, C)`` (nearest) until its larger side is ≥ min_size."""
    factor = upscale_factor(image.shape[0], image.shape[1], min_size)
    return enlarge_tiles(image[None], factor)[0]


def pattern_images(patterns: np.ndarray, blank: np.ndarray | None = None) -> np.ndarray:
    """Filter patterns ``(F, H, W, C)`` of any range → uint8 ``(F, H, W, 3)``.

    Each pattern is centred on grey, its standard deviation drawn as 15 % of the range, clipped;
    1 channel is grey, 3 are RGB, other counts show the first channel. NaN/Inf are magenta, and
    patterns where ``blank`` ``(F,)`` is true (filters that never fired) black.
    """
    values = np.asarray(patterns, dtype=np.float64)
    if values.ndim != 4 or 0 in values.shape:
        raise ValueError(f"patterns must be (F, H, W, C). Received shape {values.shape}")
    if values.shape[-1] != 3:
        values = values[..., :1]
    finite = np.isfinite(values)
    count = np.maximum(finite.sum(axis=(1, 2, 3), keepdims=True), 1)
    clean = np.where(finite, values, 0.0)
    mean = clean.sum(axis=(1, 2, 3), keepdims=True) / count
    std = np.sqrt(
        (np.where(finite, clean - mean, 0.0) ** 2).sum(axis=(1, 2, 3), keepdims=True) / count
    )
    scaled = (clean - mean) / np.where(std > 0, std, 1.0) * PATTERN_CONTRAST + 0.5
    rgb = np.round(np.clip(scaled, 0.0, 1.0) * 255).astype(np.uint8)
    if rgb.shape[-1] == 1:
        rgb = np.repeat(rgb, 3, axis=-1)
    rgb[~finite.all(axis=-1)] = NONFINITE_COLOR
    if blank is not None:
        rgb[np.asarray(blank, dtype=bool)] = BLACK
    return rgb


def tile_patterns(
    patterns: np.ndarray, blank: np.ndarray | None = None, cols: int | None = None
) -> np.ndarray:
    """Filter patterns ``(F, H, W, C)`` → one uint8 grid, each pattern enlarged if small."""
    images = pattern_images(patterns, blank)
    return tile_images(enlarge_tiles(images, upscale_factor(*images.shape[1:3])), cols)
