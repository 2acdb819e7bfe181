"""One probe and its attribution map as pictures, whatever the probe is: an image, a signal (its
curve over a band of the map) or a volume (its depth slices side by side). Shared by what
GradCAMLogger and AttributionLogger log."""

from __future__ import annotations

import numpy as np

from vizcallbacks.render.curves import CURVE_HEIGHT, heatmap_band, signal_heatmap
from vizcallbacks.render.overlay import heatmap_image, image_to_rgb, overlay_heatmap
from vizcallbacks.render.tiling import tile_images

__all__ = ["bare_picture", "overlay_picture", "sample_picture"]


def overlay_picture(sample: np.ndarray, heatmap: np.ndarray, cmap: str, alpha: float) -> np.ndarray:
    """uint8 ``(h, w, 3)``: ``heatmap`` over ``sample``; a signal ``(T, C)`` as its first
    channel's curve over the band of its map ``(T,)``; a volume slice by slice, in a row."""
    if heatmap.ndim == 1:
        return signal_heatmap(sample, heatmap, cmap)
    if heatmap.ndim == 3:
        slices = [overlay_heatmap(s, h, cmap, alpha) for s, h in zip(sample, heatmap, strict=True)]
        return tile_images(np.stack(slices), cols=len(slices))
    return overlay_heatmap(sample, heatmap, cmap, alpha)


def bare_picture(heatmap: np.ndarray, cmap: str) -> np.ndarray:
    """uint8 ``(h, w, 3)``: the map alone, coloured (a signal's as a band, a volume's slices in
    a row)."""
    if heatmap.ndim == 1:
        return heatmap_band(heatmap, cmap)
    if heatmap.ndim == 3:
        return tile_images(np.stack([heatmap_image(h, cmap) for h in heatmap]), cols=len(heatmap))
    return heatmap_image(heatmap, cmap)


def sample_picture(sample: np.ndarray, spatial: int) -> np.ndarray:
    """uint8 ``(h, w, 3)``: the probe as drawn under its maps of ``spatial`` axes (1: a signal's
    curve over a blank band, 3: a volume's slices in a row), the size of :func:`overlay_picture`."""
    if spatial == 1:
        picture = signal_heatmap(sample, np.zeros(len(sample), np.float32))
        picture[CURVE_HEIGHT:] = 255
        return picture
    if spatial == 3:
        return tile_images(np.stack([image_to_rgb(s) for s in sample]), cols=len(sample))
    return image_to_rgb(sample)
