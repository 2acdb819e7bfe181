"""Gradient flow as pictures: mean and max |g| per layer on a log axis (a row per layer, in
forward order), and a layers x steps heatmap of log10 mean |g| over training."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

from vizcallbacks.render.colormap import BLACK, DEFAULT_CMAP, NONFINITE_COLOR, colorize
from vizcallbacks.render.compare import RUN_COLORS, write_text

__all__ = ["decade_range", "gradient_evolution_image", "gradient_flow_image"]

ROW_HEIGHT = 16
LABEL_WIDTH = 180
PLOT_WIDTH = 360
HEADER_HEIGHT = 22
_TEXT_SIZE = 10
_MAX_COLOR = np.array([174, 199, 232], np.uint8)  # tab:blue, light: the max |g| bar
_MEAN_COLOR = np.array(RUN_COLORS[0], np.uint8)  # tab:blue: the mean |g| bar
_GRID = np.array([215, 215, 215], np.uint8)
_NO_GRADIENT = np.array([214, 39, 40], np.uint8)  # tab:red


def decade_range(values: np.ndarray) -> tuple[int, int]:
    """The whole decades ``(lo, hi)`` around the finite positive ``values`` (at least one)."""
    positive = values[np.isfinite(values) & (values > 0)]
    if positive.size == 0:
        return -8, 0
    lo = math.floor(math.log10(float(positive.min())))
    hi = math.ceil(math.log10(float(positive.max())))
    return lo, max(hi, lo + 1)


@functools.lru_cache(maxsize=512)
def _stamp(text: str, width: int) -> np.ndarray:
    """``text`` as ``write_text`` draws it on a white strip ``width`` wide, kept: drawing text
    is most of a picture's cost, and the layer names and decades repeat every logged step."""
    strip = np.full((_TEXT_SIZE + 8, width, 3), 255, np.uint8)
    write_text(strip, text, 0, 0, width, _TEXT_SIZE)
    strip.flags.writeable = False
    return strip


def _label(canvas: np.ndarray, text: str, top: int, left: int, width: int) -> None:
    """Dark ``text`` onto ``canvas`` in place (the darker of each pixel: labels that share a
    strip of white keep each other's ink), clipped to the canvas."""
    region = canvas[top : top + _TEXT_SIZE + 8, left : left + width]
    stamp = _stamp(text, width)[: region.shape[0], : region.shape[1]]
    np.minimum(region, stamp, out=region)


def _canvas(rows: int, width: int, names: Sequence[str]) -> np.ndarray:
    canvas = np.full((HEADER_HEIGHT + rows * ROW_HEIGHT + 4, LABEL_WIDTH + width, 3), 255, np.uint8)
    for i, name in enumerate(names):
        _label(canvas, name, HEADER_HEIGHT + i * ROW_HEIGHT - 3, 0, LABEL_WIDTH - 4)
    return canvas


def gradient_flow_image(
    names: Sequence[str], mean_abs: Sequence[float], max_abs: Sequence[float]
) -> np.ndarray:
    """A row per layer (``names`` in forward order): a light bar to max |g| and a dark one to
    mean |g| on a log10 axis with a line per decade; a layer without gradient is marked red,
    a non-finite gradient magenta. uint8 ``(H, W, 3)``."""
    means = np.asarray(mean_abs, dtype=np.float64)
    maxima = np.asarray(max_abs, dtype=np.float64)
    if not (len(names) == means.size == maxima.size) or means.ndim != 1:
        raise ValueError(
            "names, mean_abs and max_abs need one value per layer. Received "
            f"{len(names)}, {means.shape} and {maxima.shape}"
        )
    lo, hi = decade_range(np.concatenate([means, maxima]))
    canvas = _canvas(len(names), PLOT_WIDTH, names)

    def x_of(value: float) -> int:
        share = (math.log10(value) - lo) / (hi - lo)
        return LABEL_WIDTH + max(1, round(min(max(share, 0.0), 1.0) * (PLOT_WIDTH - 8)))

    _label(canvas, "dark: mean |g|, light: max", 0, 0, LABEL_WIDTH - 4)
    step = max(1, (hi - lo) // 6)
    for decade in range(lo, hi + 1):
        x = x_of(10.0**decade)
        canvas[HEADER_HEIGHT - 2 :, x] = _GRID
        if (decade - lo) % step == 0:
            _label(canvas, f"1e{decade}", 0, x - 14, 48)
    for i, (mean, largest) in enumerate(zip(means, maxima, strict=True)):
        top = HEADER_HEIGHT + i * ROW_HEIGHT + 2
        rows = slice(top, top + ROW_HEIGHT - 4)
        if not (np.isfinite(mean) and np.isfinite(largest)):
            canvas[rows, LABEL_WIDTH : LABEL_WIDTH + PLOT_WIDTH - 8] = NONFINITE_COLOR
        elif largest <= 0:
            canvas[rows, LABEL_WIDTH : LABEL_WIDTH + 6] = _NO_GRADIENT
        else:
            canvas[rows, LABEL_WIDTH : x_of(largest)] = _MAX_COLOR
            if mean > 0:
                canvas[top + 3 : top + ROW_HEIGHT - 7, LABEL_WIDTH : x_of(mean)] = _MEAN_COLOR
    return canvas


def gradient_evolution_image(
    names: Sequence[str], steps: Sequence[int], log_mean: np.ndarray, cmap: str = DEFAULT_CMAP
) -> np.ndarray:
    """``log_mean`` ``(layers, steps)`` (log10 mean |g|; NaN where not logged) as a heatmap, a
    row per layer and a column per step, the colour range in the header; black: no gradient
    (-inf), magenta: NaN or +inf. uint8 ``(H, W, 3)``."""
    values = np.asarray(log_mean, dtype=np.float64)
    if values.shape != (len(names), len(steps)) or values.size == 0:
        raise ValueError(
            f"log_mean must be (layers, steps) = ({len(names)}, {len(steps)}). Received shape "
            f"{values.shape}"
        )
    finite = np.isfinite(values)
    lo = float(values[finite].min()) if finite.any() else 0.0
    hi = float(values[finite].max()) if finite.any() else 1.0
    scaled = (values - lo) / (hi - lo) if hi > lo else np.full_like(values, 0.5)
    cell = max(2, PLOT_WIDTH // len(steps))
    cells = colorize(scaled, cmap)  # (layers, steps, 3); NaN and Inf in magenta
    cells[np.isneginf(values)] = BLACK  # log10 of 0: no gradient at all
    grid = np.repeat(np.repeat(cells, ROW_HEIGHT, axis=0), cell, axis=1)
    canvas = _canvas(len(names), grid.shape[1], names)
    canvas[HEADER_HEIGHT : HEADER_HEIGHT + grid.shape[0], LABEL_WIDTH:] = grid
    header = f"steps {steps[0]}..{steps[-1]}, log10 mean |g| from {lo:.1f} to {hi:.1f}"
    write_text(canvas, header, 0, 4, canvas.shape[1] - 8, _TEXT_SIZE)
    return canvas
