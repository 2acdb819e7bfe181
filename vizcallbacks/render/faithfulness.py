"""Deletion and insertion curves as one picture: a panel per metric, a line per method and a
dashed grey line for random maps, with a legend of each line's area under the curve."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from vizcallbacks.render.compare import write_text

__all__ = ["RANDOM_LABEL", "CurvePanel", "faithfulness_curves_image"]

RANDOM_LABEL = "random"  # the line of uniformly random maps: chance
PLOT_WIDTH, PLOT_HEIGHT = 300, 200
_MARGIN_LEFT, _MARGIN_TOP, _MARGIN_BOTTOM, _GAP = 34, 24, 24, 16
_LEGEND_NAME, _LEGEND_VALUE, _LEGEND_ROW = 110, 80, 16
_AXIS = np.array([120, 120, 120], np.uint8)
_GRID = np.array([225, 225, 225], np.uint8)
_RANDOM = np.array([140, 140, 140], np.uint8)
_PALETTE = np.array(  # matplotlib's tab10
    [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (188, 189, 34),
        (23, 190, 207),
        (40, 40, 40),
    ],
    np.uint8,
)  # the grey of tab10 replaced by near-black: grey is the random line's


@dataclass(frozen=True)
class CurvePanel:
    """One metric's panel: its ``title``, the x values ``fractions`` in [0, 1] and per label the
    curve ``(len(fractions),)`` of probabilities in [0, 1] and its area under the curve."""

    title: str
    fractions: np.ndarray
    curves: Mapping[str, np.ndarray]
    auc: Mapping[str, float]


def _draw_line(
    canvas: np.ndarray, xs: np.ndarray, ys: np.ndarray, color: np.ndarray, dashed: bool
) -> None:
    """A 2-pixel polyline through the points ``(xs, ys)`` (pixel coordinates), in place."""
    for x0, y0, x1, y1 in zip(xs[:-1], ys[:-1], xs[1:], ys[1:], strict=True):
        count = int(max(abs(x1 - x0), abs(y1 - y0)) * 2) + 2
        t = np.linspace(0.0, 1.0, count)
        px, py = np.round(x0 + t * (x1 - x0)).astype(int), np.round(y0 + t * (y1 - y0)).astype(int)
        if dashed:
            keep = (np.round(px / 5).astype(int) % 2) == 0
            px, py = px[keep], py[keep]
        for dy in (0, 1):
            rows = np.clip(py + dy, 0, canvas.shape[0] - 1)
            canvas[rows, np.clip(px, 0, canvas.shape[1] - 1)] = color


def _panel(panel: CurvePanel, colors: Mapping[str, np.ndarray]) -> np.ndarray:
    height = _MARGIN_TOP + PLOT_HEIGHT + _MARGIN_BOTTOM
    canvas = np.full((height, _MARGIN_LEFT + PLOT_WIDTH + 8, 3), 255, np.uint8)
    left, bottom = _MARGIN_LEFT, _MARGIN_TOP + PLOT_HEIGHT
    write_text(canvas, panel.title, 0, 0, canvas.shape[1], 12)
    for share in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = bottom - round(share * PLOT_HEIGHT)
        x = left + round(share * PLOT_WIDTH)
        canvas[y, left : left + PLOT_WIDTH + 1] = _GRID
        canvas[_MARGIN_TOP : bottom + 1, x] = _GRID
        write_text(canvas, f"{share:g}", y - 8, 0, left - 2, 10)
        write_text(canvas, f"{share:g}", bottom + 2, x - 8, 40, 10)
    canvas[_MARGIN_TOP : bottom + 1, left] = _AXIS
    canvas[bottom, left : left + PLOT_WIDTH + 1] = _AXIS
    xs = left + np.asarray(panel.fractions, np.float64) * PLOT_WIDTH
    for label, values in panel.curves.items():
        clipped = np.clip(np.nan_to_num(np.asarray(values, np.float64), nan=0.0), 0.0, 1.0)
        ys = bottom - clipped * PLOT_HEIGHT
        _draw_line(canvas, xs, ys, colors[label], dashed=label == RANDOM_LABEL)
    return canvas


def _legend(panels: Sequence[CurvePanel], colors: Mapping[str, np.ndarray]) -> np.ndarray:
    labels = list(colors)
    width = 20 + _LEGEND_NAME + _LEGEND_VALUE * len(panels)
    height = _MARGIN_TOP + _LEGEND_ROW * (len(labels) + 1)
    canvas = np.full((height, width, 3), 255, np.uint8)
    for j, panel in enumerate(panels):
        title = panel.title.split(" ", 1)[0]
        write_text(canvas, f"{title} AUC", 0, 20 + _LEGEND_NAME + j * _LEGEND_VALUE, 76, 10)
    for i, label in enumerate(labels):
        top = _MARGIN_TOP + i * _LEGEND_ROW
        canvas[top + 6 : top + 10, 2:16] = colors[label]
        write_text(canvas, label, top - 2, 18, _LEGEND_NAME, 10)
        for j, panel in enumerate(panels):
            value = panel.auc.get(label)
            text = "" if value is None else f"{value:.3f}"
            write_text(canvas, text, top - 2, 20 + _LEGEND_NAME + j * _LEGEND_VALUE, 60, 10)
    return canvas


def faithfulness_curves_image(panels: Sequence[CurvePanel]) -> np.ndarray:
    """The panels side by side and a legend (each line's colour and area per panel): uint8
    ``(H, W, 3)``. Lines are coloured in the order of the first panel's labels; the
    ``RANDOM_LABEL`` line is dashed grey."""
    if not panels:
        raise ValueError("panels is empty: give at least one curve panel.")
    colors: dict[str, np.ndarray] = {}
    for panel in panels:
        for label in panel.curves:
            if label not in colors:
                named = sum(1 for known in colors if known != RANDOM_LABEL)
                colors[label] = _RANDOM if label == RANDOM_LABEL else _PALETTE[named % 10]
    parts = [_panel(p, colors) for p in panels] + [_legend(panels, colors)]
    height = max(p.shape[0] for p in parts)
    width = sum(p.shape[1] for p in parts) + _GAP * (len(parts) - 1)
    canvas = np.full((height, width, 3), 255, np.uint8)
    left = 0
    for part in parts:
        canvas[: part.shape[0], left : left + part.shape[1]] = part
        left += part.shape[1] + _GAP
    return canvas
