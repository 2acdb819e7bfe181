"""How a layer changes over training: a strip with a row per logged step, and an animation."""

from __future__ import annotations

import zlib

import numpy as np

from vizcallbacks.render.colormap import DEFAULT_CMAP, colorize
from vizcallbacks.render.compare import resize_nearest
from vizcallbacks.render.tiling import SEPARATOR_VALUE, normalize_maps, tile_images

__all__ = ["EVOLUTION_BUDGET", "EvolutionRecorder", "evolution_row", "steps_kept"]

EVOLUTION_BUDGET = 128 * 2**20  # bytes of rows and frames one logger keeps, for all its layers


def evolution_row(
    maps: np.ndarray, channels: int = 16, tile_size: int = 32, cmap: str = DEFAULT_CMAP
) -> np.ndarray:
    """The first ``channels`` maps of ``maps`` ``(H, W, C)`` side by side, uint8 ``(s, ·, 3)``."""
    picked = np.moveaxis(np.asarray(maps, dtype=np.float32)[..., :channels], -1, 0)
    scaled, constant = normalize_maps(resize_nearest(picked, tile_size))
    tiles = colorize(scaled, cmap, blank=constant[:, None, None])
    return tile_images(tiles, cols=len(tiles))


def steps_kept(layers: int, frame_size: int = 256, budget: int = EVOLUTION_BUDGET) -> int:
    """Steps each of ``layers`` recorders keeps so that their rows and frames fit ``budget``
    bytes together (8 to 64): memory stays flat on a 175-layer ResNet as on a 7-layer CNN."""
    per_step = frame_size * frame_size * 3 + 16 * 32 * 32 * 3  # a frame and a 16-tile row
    return max(8, min(64, budget // max(1, layers * per_step)))


class EvolutionRecorder:
    """Keeps, per logged step, one strip row and one downscaled frame, within a fixed budget.

    Past ``max_steps`` every other kept step is dropped (first and last stay), so memory is
    bounded however long training runs; rows are small (16 tiles of 32x32 by default) and
    frames at most ``frame_size`` pixels on their longer side. Both are kept compressed: a row
    deflated, a frame already encoded as an animation frame (its own 256 colours), so memory
    stays small and train end only joins them (175 layers: no second of GIF encoding there).
    """

    def __init__(
        self, max_steps: int = 64, frame_size: int = 256, seconds_per_frame: float = 0.5
    ) -> None:
        self.max_steps = max_steps
        self.frame_size = frame_size
        self.milliseconds = int(seconds_per_frame * 1000)
        self.steps: list[int] = []
        self._rows: list[tuple[tuple[int, ...], bytes]] = []  # shape, deflated uint8 pixels
        self._frames: list[tuple[tuple[int, int], bytes]] = []  # (width, height), GIF frame

    def add(self, step: int, row: np.ndarray, frame: np.ndarray) -> None:
        stride = max(1, -(-max(frame.shape[:2]) // self.frame_size))
        row = np.ascontiguousarray(row, dtype=np.uint8)
        self.steps.append(step)
        self._rows.append((row.shape, zlib.compress(row.tobytes(), 1)))
        self._frames.append(_gif_frame(frame[::stride, ::stride], self.milliseconds))
        if len(self.steps) > self.max_steps:
            keep = sorted(set(range(0, len(self.steps), 2)) | {len(self.steps) - 1})
            self.steps = [self.steps[i] for i in keep]
            self._rows = [self._rows[i] for i in keep]
            self._frames = [self._frames[i] for i in keep]

    def rows(self) -> list[np.ndarray]:
        """The kept rows, first step first, uint8 ``(s, ·, 3)``."""
        return [
            np.frombuffer(zlib.decompress(data), np.uint8).reshape(shape)
            for shape, data in self._rows
        ]

    def strip(self) -> np.ndarray:
        """The rows stacked top (first step) to bottom, uint8 with grey separator lines."""
        rows = self.rows()
        width = max(r.shape[1] for r in rows)
        padded = [
            np.pad(r, ((0, 1), (0, width - r.shape[1]), (0, 0)), constant_values=SEPARATOR_VALUE)
            for r in rows
        ]
        return np.concatenate(padded)[:-1]

    def gif(self) -> bytes:
        """The frames as a looping animated GIF, each frame with its own 256-colour table."""
        from PIL import GifImagePlugin, Image

        width = max(size[0] for size, _ in self._frames)
        height = max(size[1] for size, _ in self._frames)
        screen = Image.new("P", (width, height))
        header, _ = GifImagePlugin.getheader(screen, info={"loop": 0})
        return b"".join([*header, *(data for _, data in self._frames), b";"])

    def __len__(self) -> int:
        return len(self.steps)


def _gif_frame(frame: np.ndarray, milliseconds: int) -> tuple[tuple[int, int], bytes]:
    """``frame`` uint8 ``(H, W, 3)`` as one frame of an animated GIF (its delay, its own colour
    table: 256 colours by a fast octree, no dithering) and its ``(width, height)``."""
    from PIL import GifImagePlugin, Image

    image = Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8)).quantize(
        256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE
    )
    data = GifImagePlugin.getdata(image, duration=milliseconds, include_color_table=True)
    return image.size, b"".join(data)
