"""What ActivationLogger logs, as records: grids, mean maps, statistics, tables, the probe."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from vizcallbacks.records import File, Histogram, Image, Record, Scalars, Text
from vizcallbacks.render.compare import class_comparison_grid
from vizcallbacks.render.ranks import signal_heatmap, tile_volume
from vizcallbacks.render.table import activation_table_html, activation_table_markdown
from vizcallbacks.render.tiling import mean_map_image, tile_maps
from vizcallbacks.tags import tag
from vizcallbacks.views.evolution import Evolutions

if TYPE_CHECKING:  # views take computed values; they never run the computation
    from vizcallbacks.compute.statistics import ActivationStatistics

__all__ = [
    "ActivationView",
    "DeadChannelTracker",
    "class_comparison_records",
    "dead_channel_text",
    "drawable",
    "evolution_maps",
    "feature_map_records",
    "layer_picture",
    "mean_picture",
    "probe_images",
    "probe_records",
    "statistics_records",
    "table_records",
]

DEAD_SHOWN = 256  # channel indices listed in the dead-channel text


class ActivationView:
    """ActivationLogger's records, step after step, with what spans steps: the channels dead at
    every logged step so far, per layer, and the evolution strips of the drawn layers.

    Args:
        probe_names: one tag name per probe (``None``: no name in the tag).
        max_channels, cmap, max_grid_size: how feature maps are drawn (see ActivationLogger).
        table: ``(layer, channel)`` whose raw values are also logged as a table, or ``None``.
        drawn_layers: how many layers are drawn, to share the evolution strips' memory budget.
    """

    def __init__(
        self,
        probe_names: Sequence[str | None],
        max_channels: int,
        cmap: str,
        max_grid_size: int | None,
        table: tuple[str, int] | None = None,
        drawn_layers: int = 1,
    ) -> None:
        self.probe_names = list(probe_names)
        self.max_channels, self.cmap, self.max_grid_size = max_channels, cmap, max_grid_size
        self.table = table
        self.evolution = Evolutions("evolution", drawn_layers, cmap)
        self._dead: defaultdict[str, DeadChannelTracker] = defaultdict(DeadChannelTracker)

    def layer_records(
        self, layer: str, values: np.ndarray, stats: ActivationStatistics, step: int
    ) -> tuple[list[Record], float]:
        """One layer's records at ``step`` (statistics; pictures if :func:`drawable` and one
        per probe, and the evolution row kept), and the share of its channels dead at every
        logged step so far. An output without a probe axis (a position embedding's ``(1, T,
        C)``, the same for every probe) gets its statistics only."""
        dead = self._dead[layer].update(stats, step)
        records = statistics_records(layer, stats)
        if not drawable(values) or len(values) != len(self.probe_names):
            return records, dead
        if self.table is not None and layer == self.table[0]:
            records += table_records(layer, values, self.table[1], step)
        images = feature_map_records(
            layer, values, self.probe_names, self.max_channels, self.cmap, self.max_grid_size
        )
        self.evolution.add(layer, step, evolution_maps(values[0]), images[0].pixels)
        return records + images, dead


@dataclass
class DeadChannelTracker:
    """Which channels of one layer have been dead at every logged step since training began.

    Step 0 (the untrained network) is left out, and only conv-like outputs count; a channel
    that comes alive once is never counted again. ``steps`` is how many steps were seen.
    """

    steps: int = 0
    dead: set[int] = field(default_factory=set)

    def update(self, stats: ActivationStatistics, step: int) -> float:
        """Add one step's statistics; return the share of channels dead at every step so far
        (0 at step 0, for outputs without spatial positions, and until two steps were seen)."""
        if step == 0 or not stats.spatial:
            return 0.0
        now = {int(i) for i in stats.dead_channels}
        self.dead = now if self.steps == 0 else self.dead & now
        self.steps += 1
        return len(self.dead) / len(stats.channel_means) if self.steps >= 2 else 0.0


def statistics_records(layer: str, stats: ActivationStatistics) -> list[Record]:
    """The layer's statistics as scalars, its channel means as a histogram, dead channels named."""
    records: list[Record] = [
        Scalars(
            {
                tag("activation_mean", layer): stats.mean,
                tag("activation_std", layer): stats.std,
                tag("activation_zero_fraction", layer): stats.zero_fraction,
                tag("dead_channels", layer): len(stats.dead_channels),
                tag("dead_channel_fraction", layer): stats.dead_fraction,
            }
        ),
        Histogram(tag("channel_means", layer), stats.channel_means),
    ]
    if len(stats.dead_channels) and stats.spatial:  # Dense units: the count only, no list
        records.append(Text(tag("dead_channel_indices", layer), dead_channel_text(stats)))
    return records


def dead_channel_text(stats: ActivationStatistics) -> str:
    """``"3 of the channels are zero for every probe: 0, 4, 9"`` (the first 256 listed)."""
    dead = stats.dead_channels
    shown = ", ".join(map(str, dead[:DEAD_SHOWN])) + (" ..." if len(dead) > DEAD_SHOWN else "")
    return f"{len(dead)} of the channels are zero for every probe: {shown}"


def drawable(values: np.ndarray) -> bool:
    """True for outputs drawn as pictures: signals ``(N, T, C)``, maps ``(N, H, W, C)`` and
    volumes ``(N, D, H, W, C)``, channels last."""
    return values.ndim in (3, 4, 5)


def evolution_maps(values: np.ndarray) -> np.ndarray:
    """One probe's output as ``(H, W, C)`` maps for the evolution strip: a signal ``(T, C)`` as
    one row, a volume ``(D, H, W, C)`` by its middle depth slice."""
    if values.ndim == 2:
        return values[None]
    return values[values.shape[0] // 2] if values.ndim == 4 else values


def layer_picture(
    maps: np.ndarray, max_channels: int, cmap: str, max_size: int | None
) -> np.ndarray:
    """One probe's output, channels last: a channels x time heatmap for a signal ``(T, C)``,
    the grid of maps for ``(H, W, C)``, a channel x depth montage for a volume ``(D, H, W, C)``."""
    if maps.ndim == 2:
        return signal_heatmap(maps, max_channels, cmap, max_size)
    if maps.ndim == 4:
        return tile_volume(maps, max_channels, cmap, max_size)
    return tile_maps(maps, max_channels, cmap, max_size)


def mean_picture(maps: np.ndarray, cmap: str, max_size: int | None) -> np.ndarray:
    """The mean over channels of one probe's output, drawn as :func:`layer_picture` draws one
    channel (a strip along time for a signal, a row of depth slices for a volume)."""
    if maps.ndim == 3:
        return mean_map_image(maps, cmap)
    return layer_picture(maps.mean(axis=-1, keepdims=True), 1, cmap, max_size)


def feature_map_records(
    layer: str,
    values: np.ndarray,
    probe_names: Sequence[str | None],
    max_channels: int,
    cmap: str,
    max_size: int | None,
) -> list[Image]:
    """Per probe, the picture of the first ``max_channels`` channels and the mean over channels,
    in that order; ``values`` ``(N, ..., C)`` of rank 3 to 5 (see :func:`layer_picture`)."""
    records = []
    for name, maps in zip(probe_names, values, strict=True):
        grid = layer_picture(maps, max_channels, cmap, max_size)
        records.append(Image(tag("activations", layer, name), grid))
        records.append(
            Image(tag("mean_activation", layer, name), mean_picture(maps, cmap, max_size))
        )
    return records


def table_records(layer: str, values: np.ndarray, channel: int, step: int) -> list[Record]:
    """One channel's raw values for the first probe: markdown text and an HTML page per step."""
    maps = values[0, :, :, channel]
    table_tag = tag("activation_table", layer)
    page = activation_table_html(maps, f"{layer}, channel {channel}, step {step}")
    return [
        Text(table_tag, activation_table_markdown(maps)),
        File(f"{table_tag}/step_{step:06d}.html", page.encode("utf-8")),
    ]


def class_comparison_records(
    probe: np.ndarray, activations: Mapping[str, np.ndarray], channel: int, cmap: str
) -> list[Record]:
    """A row per probe, a column per layer with a map of ``channel``, the probe first."""
    columns = [probe.mean(axis=-1)] if probe.ndim == 4 else []  # images only
    columns += [
        v[..., channel]
        for v in activations.values()
        if v.ndim == 4 and v.shape[-1] > channel and len(v) == len(probe)
    ]
    if not columns:  # signals and volumes have no 2-D maps to put side by side
        return []
    grid = class_comparison_grid(columns, cmap=cmap)
    return [Image(tag("class_comparison", f"channel_{channel}"), grid)]


def probe_records(probe: np.ndarray, probe_names: Sequence[str | None]) -> list[Record]:
    """The probe images themselves, ``probe/input[/<name>]``."""
    images = probe_images(probe)
    return [
        Image(tag("probe", "input", name), image)
        for name, image in zip(probe_names, images, strict=True)
    ]


def probe_images(probe: np.ndarray) -> np.ndarray | list[np.ndarray]:
    """The probe as uint8 pictures, each scaled to its own range (it may be normalized).

    Images ``(N, H, W, C)`` as they are (grey or RGB); signals ``(N, T, C)`` and volumes
    ``(N, D, H, W, C)`` drawn as their layers are, in grey, one channel per row.
    """
    if probe.ndim != 4:
        return [layer_picture(item, 64, "gray", None) for item in probe]
    lo = probe.min(axis=(1, 2, 3), keepdims=True)
    span = probe.max(axis=(1, 2, 3), keepdims=True) - lo
    scaled = (probe - lo) / np.where(span > 0, span, 1.0)
    images = np.round(scaled * 255).astype(np.uint8)
    return images if images.shape[-1] in (1, 3) else images[..., :1]
