"""Evolution strips: per layer, a row per logged step kept within a memory budget, written at
train end as an image and a GIF for every layer logged at least twice."""

from __future__ import annotations

from collections import defaultdict
from functools import partial

import numpy as np

from vizcallbacks.records import File, Image, Record
from vizcallbacks.render.colormap import DEFAULT_CMAP
from vizcallbacks.render.evolution import EvolutionRecorder, evolution_row, steps_kept
from vizcallbacks.tags import tag

__all__ = ["Evolutions"]


class Evolutions:
    """The evolution of every layer a logger draws, tagged ``<kind>/<layer>``.

    ``layers``: how many layers will be added, so that all their rows and frames together
    stay within :data:`~vizcallbacks.render.evolution.EVOLUTION_BUDGET`.
    """

    def __init__(self, kind: str, layers: int = 1, cmap: str = DEFAULT_CMAP) -> None:
        self.kind = kind
        self.cmap = cmap
        keep = partial(EvolutionRecorder, max_steps=steps_kept(layers))
        self._recorders: defaultdict[str, EvolutionRecorder] = defaultdict(keep)

    def add(self, layer: str, step: int, maps: np.ndarray, frame: np.ndarray) -> None:
        """Keep step ``step`` of ``layer``: a row drawn from ``maps`` ``(H, W, C)`` (its first
        channels) and ``frame``, the picture logged at that step, for the animation."""
        self._recorders[layer].add(step, evolution_row(maps, cmap=self.cmap), frame)

    def records(self) -> list[Record]:
        """Per layer logged twice or more, the strip (a row per step) and its animation."""
        records: list[Record] = []
        for layer, recorder in self._recorders.items():
            if len(recorder) >= 2:
                records.append(Image(tag(self.kind, layer), recorder.strip()))
                records.append(File(f"{tag(self.kind, layer)}.gif", recorder.gif()))
        return records
