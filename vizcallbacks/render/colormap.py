"""Colour look-up: float maps in [0, 1] to uint8 RGB through a matplotlib colormap table."""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["BLACK", "DEFAULT_CMAP", "HEATMAP_CMAP", "NONFINITE_COLOR", "check_cmap", "colorize"]

DEFAULT_CMAP = "viridis"  # feature maps, filters, evolution strips
HEATMAP_CMAP = "jet"  # Grad-CAM, the colours its readers expect

NONFINITE_COLOR = np.array([255, 0, 255], dtype=np.uint8)  # magenta: NaN or Inf
BLACK = np.array([0, 0, 0], dtype=np.uint8)


@functools.lru_cache(maxsize=32)
def _lut(cmap: str) -> np.ndarray:
    import matplotlib

    table = matplotlib.colormaps[cmap](np.linspace(0.0, 1.0, 256))[:, :3]
    return np.round(table * 255).astype(np.uint8)


def check_cmap(cmap: str) -> str:
    """Return ``cmap`` if matplotlib knows it, else raise naming a few that it does know."""
    import matplotlib

    if not isinstance(cmap, str) or cmap not in matplotlib.colormaps:
        raise ValueError(
            f"cmap={cmap!r} is not a matplotlib colormap. Use one of matplotlib.colormaps, "
            "for example 'viridis', 'magma', 'gray', 'inferno' or 'jet'."
        )
    return cmap


def colorize(values: np.ndarray, cmap: str, blank: np.ndarray | None = None) -> np.ndarray:
    """``values`` ``(..., H, W)`` in [0, 1] → uint8 ``(..., H, W, 3)``.

    Non-finite values become magenta; where ``blank`` (broadcastable boolean) is true the pixel is
    black, which is how constant maps are drawn.
    """
    values = np.asarray(values, dtype=np.float32)
    finite = np.isfinite(values)
    index = np.clip(np.where(finite, values, 0.0) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    rgb = _lut(check_cmap(cmap))[index]
    if blank is not None:
        rgb[np.broadcast_to(blank, values.shape)] = BLACK
    rgb[~finite] = NONFINITE_COLOR
    return rgb
