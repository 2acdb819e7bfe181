"""Signals as pictures: the first channel as a curve over a colour band of its heatmap."""

from __future__ import annotations

import numpy as np

from vizcallbacks.render.colormap import HEATMAP_CMAP
from vizcallbacks.render.overlay import heatmap_image

__all__ = ["BAND_HEIGHT", "CURVE_HEIGHT", "MIN_WIDTH", "heatmap_band", "signal_heatmap"]

CURVE_HEIGHT = 96  # the panel the curve is drawn in, above the band
BAND_HEIGHT = 64
MIN_WIDTH = 256  # time is stretched (each step repeated) to at least this many pixels


def heatmap_band(heatmap: np.ndarray, cmap: str = HEATMAP_CMAP) -> np.ndarray:
    """A heatmap ``(T,)`` in [0, 1] → uint8 ``(64, T·ceil(256/T), 3)``, one colour per step."""
    values = np.asarray(heatmap, dtype=np.float32)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"heatmap must be (T,). Received shape {values.shape}")
    factor = -(-MIN_WIDTH // values.size)
    row = heatmap_image(np.repeat(values, factor)[None], cmap)
    return np.repeat(row, BAND_HEIGHT, axis=0)


def signal_heatmap(signal: np.ndarray, heatmap: np.ndarray, cmap: str = HEATMAP_CMAP) -> np.ndarray:
    """A signal ``(T,)`` or ``(T, C)`` (the first channel) as a 1-px black curve on white over the
    band of ``heatmap`` ``(T,)``: uint8 ``(96 + 64, T·ceil(256/T), 3)``."""
    values = np.asarray(signal, dtype=np.float64)
    values = values[:, 0] if values.ndim == 2 else values
    band = heatmap_band(heatmap, cmap)
    if values.shape != np.shape(heatmap):
        raise ValueError(
            f"signal must have the heatmap's length {np.shape(heatmap)}. "
            f"Received signal shape {np.shape(signal)}"
        )
    curve = np.repeat(values, band.shape[1] // values.size)
    finite = np.isfinite(curve)
    lo = float(curve[finite].min()) if finite.any() else 0.0
    hi = float(curve[finite].max()) if finite.any() else 0.0
    scaled = (np.where(finite, curve, lo) - lo) / (hi - lo) if hi > lo else np.full_like(curve, 0.5)
    rows = np.round((1.0 - scaled) * (CURVE_HEIGHT - 1)).astype(np.int64)  # high values on top
    previous = np.concatenate([rows[:1], rows[:-1]])
    top, bottom = np.minimum(rows, previous), np.maximum(rows, previous)
    r = np.arange(CURVE_HEIGHT)[:, None]
    panel = np.full((CURVE_HEIGHT, band.shape[1], 3), 255, np.uint8)
    panel[(r >= top) & (r <= bottom)] = 0  # vertical joins keep the line connected
    return np.concatenate([panel, band], axis=0)
