"""What FilterPatternLogger logs, as records: the pattern grids and what they cost."""

from __future__ import annotations

import numpy as np

from vizcallbacks.records import Image, Record, Scalars
from vizcallbacks.render.overlay import tile_patterns
from vizcallbacks.tags import tag

__all__ = ["pattern_records"]


def pattern_records(
    name: str,
    images: np.ndarray,
    responded: np.ndarray,
    seconds: float,
    kind: str = "filter_patterns",
    variants: int = 1,
) -> list[Record]:
    """Patterns ``(F, H, W, C)`` as one grid (units that never fired black; a row per unit when
    there are several ``variants``) under ``<kind>/<name>``, and their seconds."""
    cols = variants if variants > 1 else None
    return [
        Image(tag(kind, name), tile_patterns(images, blank=~responded, cols=cols)),
        Scalars({tag(f"{kind}_seconds", name): seconds}),
    ]
