"""What FilterPatternLogger logs, as records: the pattern grid and what it cost."""

from __future__ import annotations

import numpy as np

from vizcallbacks.records import Image, Record, Scalars
from vizcallbacks.render.overlay import tile_patterns
from vizcallbacks.tags import tag

__all__ = ["pattern_records"]


def pattern_records(
    layer: str, images: np.ndarray, responded: np.ndarray, seconds: float
) -> list[Record]:
    """Patterns ``(F, H, W, C)`` as one grid (filters that never fired black) and their seconds."""
    return [
        Image(tag("filter_patterns", layer), tile_patterns(images, blank=~responded)),
        Scalars({tag("filter_patterns_seconds", layer): seconds}),
    ]
