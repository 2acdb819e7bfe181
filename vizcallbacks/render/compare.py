"""Comparisons: one channel followed through the network for several probes
(:func:`class_comparison_grid`), and two runs side by side (:func:`run_comparison`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vizcallbacks.arrays import as_float_array
from vizcallbacks.render.colormap import DEFAULT_CMAP, colorize
from vizcallbacks.render.tiling import enlarge_tiles, normalize_maps, tile_images, upscale_factor

__all__ = [
    "RUN_COLORS",
    "RunComparison",
    "class_comparison_grid",
    "labelled_columns",
    "resize_nearest",
    "run_comparison",
    "run_layer_table",
    "statistic_curves",
    "write_text",
]

# run A, run B, then further runs of a sweep: matplotlib's tab10 (tab:blue, tab:orange, ...)
RUN_COLORS = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
)  # fmt: skip
_BACKGROUND = 255
_TEXT = (30, 30, 30)
_TITLE_HEIGHT = 28
_HEADER_HEIGHT = 24
_BAR = 3  # the coloured line under a run's header, matching its curve
_GAP = 16
_ROW_LABEL_WIDTH = 120


def resize_nearest(maps: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize ``maps`` ``(N, H, W, ...)`` to ``(N, size, size, ...)`` (or ``(N, *size, ...)``)
    by nearest neighbour."""
    out_h, out_w = (size, size) if isinstance(size, int) else size
    rows = (np.arange(out_h) * maps.shape[1] // out_h).clip(0, maps.shape[1] - 1)
    cols = (np.arange(out_w) * maps.shape[2] // out_w).clip(0, maps.shape[2] - 1)
    return maps[:, rows][:, :, cols]


def class_comparison_grid(
    columns: list[np.ndarray], tile_size: int = 64, cmap: str = DEFAULT_CMAP
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


# Two runs side by side ---------------------------------------------------------------------
Box = tuple[int, int, int, int]  # top, left, height, width


@dataclass(frozen=True)
class RunComparison:
    """The picture of :func:`run_comparison` and where each part sits in it."""

    image: np.ndarray  # uint8 (H, W, 3)
    left: Box  # run A's grid, scaled
    right: Box  # run B's grid, scaled
    curves: Box | None

    def crop(self, box: Box) -> np.ndarray:
        top, left, height, width = box
        return self.image[top : top + height, left : left + width]


def _rgb(image: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim not in (2, 3):
        raise ValueError(
            f"{name} must be a uint8 (H, W) or (H, W, C) image. Received "
            f"dtype {array.dtype}, shape {array.shape}"
        )
    if array.ndim == 2:
        array = array[..., None]
    if array.shape[-1] == 1:
        return np.repeat(array, 3, axis=-1)
    if array.shape[-1] == 4:
        return array[..., :3]
    if array.shape[-1] != 3:
        raise ValueError(f"{name} must have 1, 3 or 4 channels. Received shape {array.shape}")
    return array


def _write(canvas: np.ndarray, text: str, top: int, left: int, width: int, size: int) -> None:
    """Draw ``text`` into ``canvas`` in place, clipped to ``width`` pixels."""
    from PIL import Image, ImageDraw, ImageFont

    if not text or width <= 0:
        return
    try:
        font: ImageFont.ImageFont | ImageFont.FreeTypeFont = ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the small bitmap font
        font = ImageFont.load_default()
    height = size + 8
    region = canvas[top : top + height, left : left + width]
    picture = Image.fromarray(np.ascontiguousarray(region))
    ImageDraw.Draw(picture).text((4, 3), text, fill=_TEXT, font=font)
    region[...] = np.asarray(picture)


write_text = _write  # public: other pictures label their parts the same way


def run_comparison(
    left: np.ndarray,
    right: np.ndarray,
    labels: Sequence[str] = ("run A", "run B"),
    title: str = "",
    curves: np.ndarray | None = None,
    scale: int = 1,
) -> RunComparison:
    """Run A's image ``left`` beside run B's ``right``, each under its label, ``curves`` below.

    The picture is split in two halves, run A's on the left, B's on the right. The images are
    enlarged ``scale`` times by nearest neighbour (both alike, so a smaller map stays visibly
    smaller), centred in their half and top-aligned; a header with ``labels[i]`` and a line in
    ``RUN_COLORS[i]`` (the colour of the run's curve) sits above each. ``curves`` is an already
    rendered uint8 image (:func:`statistic_curves`), placed below, centred. Pure numpy (Pillow
    only draws the text); returns the uint8 picture and where each part is.
    """
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be an integer ≥ 1. Received: scale={scale!r}")
    if len(labels) != 2:
        raise ValueError(f"labels needs one label per run (2). Received {len(labels)}")
    panels = []
    for name, image in (("left", left), ("right", right)):
        rgb = _rgb(image, name)
        h, w = rgb.shape[:2]
        panels.append(resize_nearest(rgb[None], (h * scale, w * scale))[0])
    (h_a, w_a), (h_b, w_b) = panels[0].shape[:2], panels[1].shape[:2]
    extra = None if curves is None else _rgb(curves, "curves")
    half = max(max(w_a, w_b) + _GAP, 0 if extra is None else -(-extra.shape[1] // 2))
    width = 2 * half
    title_height = _TITLE_HEIGHT if title else 0
    grids_top = title_height + _HEADER_HEIGHT
    height = grids_top + max(h_a, h_b)
    if extra is not None:
        height += _GAP // 2 + extra.shape[0]
    canvas = np.full((height, width, 3), _BACKGROUND, dtype=np.uint8)

    _write(canvas, title, 0, _GAP // 2, width - _GAP, 16)
    boxes = []
    for i, panel in enumerate(panels):
        h, w = panel.shape[:2]
        start, stop = i * half + _GAP // 2, (i + 1) * half - _GAP // 2
        _write(canvas, labels[i], title_height, start, stop - start, 13)
        bar = grids_top - _BAR - 1
        canvas[bar : bar + _BAR, start:stop] = RUN_COLORS[i]
        x = i * half + (half - w) // 2  # centred in its half
        canvas[grids_top : grids_top + h, x : x + w] = panel
        boxes.append((grids_top, x, h, w))
    curves_box = None
    if extra is not None:
        top = grids_top + max(h_a, h_b) + _GAP // 2
        x = (width - extra.shape[1]) // 2
        canvas[top : top + extra.shape[0], x : x + extra.shape[1]] = extra
        curves_box = (top, x, extra.shape[0], extra.shape[1])
    return RunComparison(canvas, boxes[0], boxes[1], curves_box)


def run_layer_table(
    cells: Sequence[Sequence[np.ndarray | None]],
    run_labels: Sequence[str],
    layer_labels: Sequence[str],
    title: str = "",
    curves: np.ndarray | None = None,
    scale: int = 1,
) -> np.ndarray:
    """A row per run and a column per layer: ``cells[i][j]`` is run i's uint8 image of layer j
    (None: not logged, left blank), enlarged ``scale`` times and top-left aligned in its cell.
    Each row starts with its run's label over a line in ``RUN_COLORS[i]`` (its curve's colour);
    ``curves`` (:func:`statistic_curves`) sits below. Returns uint8 ``(H, W, 3)``."""
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be an integer ≥ 1. Received: scale={scale!r}")
    if len(cells) != len(run_labels) or any(len(row) != len(layer_labels) for row in cells):
        raise ValueError(
            f"cells needs one row per run label ({len(run_labels)}) and one cell per layer "
            f"label ({len(layer_labels)}). Received rows of {[len(row) for row in cells]}"
        )
    rows = [[None if c is None else _enlarged(c, scale) for c in row] for row in cells]
    widths = [
        max([c.shape[1] for c in col if c is not None], default=0)
        for col in zip(*rows, strict=True)
    ]
    label_height = 26 + _BAR  # the run's label, then its colour line
    heights = [max([label_height] + [c.shape[0] for c in row if c is not None]) for row in rows]
    extra = None if curves is None else _rgb(curves, "curves")
    lefts = np.cumsum([_ROW_LABEL_WIDTH + _GAP // 2] + [w + _GAP for w in widths]).tolist()
    tops = np.cumsum([_TITLE_HEIGHT + _HEADER_HEIGHT] + [h + _GAP for h in heights]).tolist()
    width = max(lefts[-1], 0 if extra is None else extra.shape[1] + _GAP)
    height = tops[-1] + (0 if extra is None else extra.shape[0])
    canvas = np.full((height, width, 3), _BACKGROUND, dtype=np.uint8)
    _write(canvas, title, 0, _GAP // 2, width - _GAP, 16)
    for j, label in enumerate(layer_labels):
        _write(canvas, label, _TITLE_HEIGHT, lefts[j], widths[j] + _GAP // 2, 13)
    for i, row in enumerate(rows):
        _write(canvas, run_labels[i], tops[i], 0, _ROW_LABEL_WIDTH, 11)
        canvas[tops[i] + label_height - _BAR : tops[i] + label_height, 4:_ROW_LABEL_WIDTH] = (
            RUN_COLORS[i % len(RUN_COLORS)]
        )
        for j, cell in enumerate(row):
            if cell is not None:
                canvas[tops[i] : tops[i] + cell.shape[0], lefts[j] : lefts[j] + cell.shape[1]] = (
                    cell
                )
    if extra is not None:
        x = (width - extra.shape[1]) // 2
        canvas[tops[-1] : tops[-1] + extra.shape[0], x : x + extra.shape[1]] = extra
    return canvas


def _enlarged(image: np.ndarray, scale: int) -> np.ndarray:
    rgb = _rgb(image, "cell")
    return resize_nearest(rgb[None], (rgb.shape[0] * scale, rgb.shape[1] * scale))[0]


def statistic_curves(
    series: Sequence[tuple[str, np.ndarray, np.ndarray]],
    ylabel: str,
    mark_step: int | None = None,
    size: tuple[int, int] = (720, 260),
) -> np.ndarray:
    """One plot of each ``(label, steps, values)`` over steps, in ``RUN_COLORS`` order: uint8.

    ``mark_step`` draws a dotted vertical line (the step the grids above show). One matplotlib
    figure drawn by the Agg canvas, without pyplot: safe off the main thread.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    width, height = size
    figure = Figure(figsize=(width / 100, height / 100), dpi=100)
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    drawn = 0
    for i, (label, steps, values) in enumerate(series):
        color = np.array(RUN_COLORS[i % len(RUN_COLORS)]) / 255
        if len(steps) == 0:
            axes.plot([], [], color=color, label=f"{label}: not logged")
            continue
        axes.plot(steps, values, marker="o", markersize=4, color=color, label=label)
        drawn += 1
    if mark_step is not None:
        axes.axvline(mark_step, color="0.5", linestyle=":", linewidth=1, label=f"step {mark_step}")
    axes.set_xlabel("step (epochs trained)")
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    from matplotlib.ticker import MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.legend(loc="best", fontsize=8, frameon=False)
    if not drawn:
        axes.text(0.5, 0.5, f"no run logged {ylabel}", transform=axes.transAxes, ha="center")
    figure.tight_layout(pad=0.4)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def labelled_columns(
    cells: np.ndarray,
    labels: Sequence[str],
    row_labels: Sequence[str] | None = None,
    min_size: int = 96,
) -> np.ndarray:
    """A row per probe and a column per method: ``cells`` uint8 ``(N, M, h, w, 3)`` enlarged
    (nearest) until a side reaches ``min_size``, under a header naming each column and, with
    ``row_labels``, beside a caption per row (``\\n`` starts a new line). Returns uint8
    ``(H, W, 3)``."""
    cells = np.asarray(cells)
    if cells.dtype != np.uint8 or cells.ndim != 5 or cells.shape[-1] != 3:
        raise ValueError(
            f"cells must be uint8 (N, M, h, w, 3). Received dtype {cells.dtype}, "
            f"shape {cells.shape}"
        )
    n, m, h, w, _ = cells.shape
    if len(labels) != m or (row_labels is not None and len(row_labels) != n):
        raise ValueError(
            f"labels needs one label per column ({m}) and row_labels one per row ({n}). "
            f"Received {len(labels)} and {None if row_labels is None else len(row_labels)}"
        )
    factor = upscale_factor(h, w, min_size)
    grid = tile_images(enlarge_tiles(cells.reshape(n * m, h, w, 3), factor), cols=m)
    side = 0 if row_labels is None else _ROW_LABEL_WIDTH
    canvas = np.full((_HEADER_HEIGHT + grid.shape[0], side + grid.shape[1], 3), _BACKGROUND)
    canvas = canvas.astype(np.uint8)
    canvas[_HEADER_HEIGHT:, side:] = grid
    cell_h, cell_w = h * factor + 1, w * factor + 1  # one separator pixel after each cell
    for j, label in enumerate(labels):
        _write(canvas, label, 0, side + j * cell_w, cell_w - 1, 11)
    for i, label in enumerate(row_labels or ()):
        lines = label.split("\n")
        top = _HEADER_HEIGHT + i * cell_h + (cell_h - 19 * len(lines)) // 2
        for k, line in enumerate(lines):
            _write(canvas, line, max(top + 19 * k, _HEADER_HEIGHT + i * cell_h), 0, side, 11)
    return canvas
