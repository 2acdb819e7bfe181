"""A similarity matrix as a picture: coloured cells, row names on the left, column names
(written upwards) below, a colour bar on the right, a title above and a caption below.

Pure numpy; Pillow only draws the text. Values are drawn on a fixed 0..1 scale (CKA's range),
so pictures of different steps and runs compare by colour; NaN cells are magenta.
"""

from __future__ import annotations

import functools
import textwrap
from collections.abc import Sequence
from typing import Any

import numpy as np

from vizcallbacks.render.colormap import DEFAULT_CMAP, colorize

__all__ = ["MATRIX_SIZE", "similarity_picture"]

MATRIX_SIZE = 480  # the matrix's long side aims at this many pixels
_FONT = 11
_LINE = _FONT + 5  # pixels per line of text
_CHAR = 7  # a character's width, about, in the default font at size 11
_MAX_LABEL = 28  # characters of a name kept (its end: the last path segments say most)
_PAD = 8
_BAR_WIDTH = 14
_BACKGROUND = 255
_TEXT = (30, 30, 30)


@functools.cache
def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


def _text(lines: Sequence[str], width: int, size: int = _FONT) -> np.ndarray:
    """``lines`` drawn dark on white, one per ``_LINE`` pixels: uint8 ``(len·_LINE, width, 3)``."""
    from PIL import Image, ImageDraw

    picture = Image.new("RGB", (max(width, 1), max(len(lines), 1) * _LINE), (_BACKGROUND,) * 3)
    draw = ImageDraw.Draw(picture)
    font = _font(size)
    for i, line in enumerate(lines):
        if line:  # most lines beside small cells are blank: drawing them costs as much
            draw.text((2, i * _LINE + 1), line, fill=_TEXT, font=font)
    return np.array(picture)


def _short(name: str) -> str:
    return name if len(name) <= _MAX_LABEL else "…" + name[-(_MAX_LABEL - 1) :]


def _labels(names: Sequence[str], cell: int) -> tuple[list[str], int]:
    """One text line per cell row; a name every k-th row when cells are smaller than a line."""
    every = -(-_LINE // cell)
    lines = [""] * (len(names) * cell // _LINE + 1)
    for i, name in enumerate(names):
        if i % every == 0:
            lines[min((i * cell + cell // 2) // _LINE, len(lines) - 1)] = _short(name)
    return lines, max((len(line) for line in lines), default=0) * _CHAR + 6


def _label_column(names: Sequence[str], cell: int) -> np.ndarray:
    """Names beside rows of ``cell`` pixels, each centred on its row when there is room."""
    lines, width = _labels(names, cell)
    column = _text(lines, width)
    height = len(names) * cell
    return np.pad(column, ((0, max(0, height - column.shape[0])), (0, 0), (0, 0)), "edge")[:height]


@functools.lru_cache(maxsize=8)
def _colour_bar(height: int, cmap: str) -> np.ndarray:
    """A vertical 0..1 bar, 1 at the top, with its ends written beside it (the same for every
    step's picture: drawn once)."""
    ramp = np.linspace(1.0, 0.0, height)[:, None].repeat(_BAR_WIDTH, axis=1)
    bar = colorize(ramp, cmap)
    ticks = np.full((height, 5 * _CHAR, 3), _BACKGROUND, np.uint8)
    ticks[:_LINE] = _text(["1"], ticks.shape[1])
    ticks[-_LINE:] = _text(["0"], ticks.shape[1])
    if height >= 3 * _LINE:
        middle = (height - _LINE) // 2
        ticks[middle : middle + _LINE] = _text(["0.5"], ticks.shape[1])
    picture = np.concatenate([bar, np.full((height, 4, 3), _BACKGROUND, np.uint8), ticks], axis=1)
    picture.setflags(write=False)  # shared by every picture of this height
    return picture


def similarity_picture(
    matrix: np.ndarray,
    row_names: Sequence[str],
    column_names: Sequence[str],
    title: str = "",
    caption: Sequence[str] = (),
    cmap: str = DEFAULT_CMAP,
) -> np.ndarray:
    """``matrix`` ``(R, C)`` of values in [0, 1] (clipped) as uint8 ``(H, W, 3)``: square cells
    of ``MATRIX_SIZE / max(R, C)`` pixels (4 to 32), rows named on the left, columns below,
    a colour bar titled ``CKA`` on the right; ``caption`` lines are written under it all."""
    values = np.asarray(matrix, dtype=np.float64)
    if values.ndim != 2 or values.shape != (len(row_names), len(column_names)):
        raise ValueError(
            f"matrix must be (rows, columns) with one name per row and column. Received shape "
            f"{values.shape}, {len(row_names)} row names, {len(column_names)} column names"
        )
    rows, cols = values.shape
    cell = int(np.clip(MATRIX_SIZE // max(rows, cols, 1), 4, 32))
    cells = colorize(np.clip(values, 0.0, 1.0), cmap)
    grid = cells.repeat(cell, axis=0).repeat(cell, axis=1)
    left = _label_column(row_names, cell)
    below = np.rot90(_label_column(column_names, cell), k=1)  # read from the bottom up
    bar = _colour_bar(grid.shape[0], cmap)
    body_width = left.shape[1] + grid.shape[1] + _PAD + bar.shape[1]
    top = np.concatenate(
        [left, grid, np.full((grid.shape[0], _PAD, 3), _BACKGROUND, np.uint8), bar], axis=1
    )
    under = np.full((below.shape[0], body_width, 3), _BACKGROUND, np.uint8)
    under[:, left.shape[1] : left.shape[1] + below.shape[1]] = below
    parts = [top, under]
    width = body_width + 2 * _PAD
    header = [title] if title else []
    head = _text([*header, ""], width)
    bar_left = _PAD + body_width - bar.shape[1]
    head[-_LINE:, bar_left : bar_left + 5 * _CHAR] = _text(["CKA"], 5 * _CHAR)
    wrapped = [part for line in caption for part in textwrap.wrap(line, width // _CHAR) or [""]]
    foot = _text(wrapped, width) if wrapped else np.zeros((0, width, 3), np.uint8)
    body = np.pad(np.concatenate(parts, axis=0), ((0, _PAD), (_PAD, _PAD), (0, 0)))
    body[-_PAD:] = _BACKGROUND
    body[:, :_PAD] = _BACKGROUND
    body[:, -_PAD:] = _BACKGROUND
    return np.ascontiguousarray(np.concatenate([head, body, foot], axis=0))
