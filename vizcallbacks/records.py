"""Typed records: what views make of computed arrays and what every writer receives.

A record knows nothing about where it goes. An :class:`Image` carries its pixels and encodes its
PNG once, on first request, for every writer that wants bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Union

import numpy as np

from vizcallbacks.render.png import encode_png

__all__ = ["File", "Histogram", "Image", "Params", "Record", "Scalars", "Text"]


@dataclass(frozen=True, eq=False)
class Image:
    """A rendered picture under ``tag``: uint8 ``(H, W, C)`` with C in 1, 3 or 4."""

    tag: str
    pixels: np.ndarray

    def __post_init__(self) -> None:
        pixels = np.asarray(self.pixels)
        if pixels.ndim == 2:
            pixels = pixels[..., None]
        if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[-1] not in (1, 3, 4):
            raise ValueError(
                f"Image {self.tag!r} must be uint8 (H, W, C) with 1, 3 or 4 channels. "
                f"Received dtype {pixels.dtype}, shape {pixels.shape}"
            )
        object.__setattr__(self, "pixels", pixels)

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @cached_property
    def png(self) -> bytes:
        """The picture as PNG bytes, encoded on first use and shared by every writer."""
        return encode_png(self.pixels)


@dataclass(frozen=True, eq=False)
class Scalars:
    """Numbers keyed by tag, all at the same step."""

    values: Mapping[str, float]


@dataclass(frozen=True, eq=False)
class Histogram:
    """The distribution of ``values`` (any shape, NaN and Inf allowed) under ``tag``."""

    tag: str
    values: np.ndarray


@dataclass(frozen=True, eq=False)
class Text:
    """Markdown text under ``tag``."""

    tag: str
    text: str


@dataclass(frozen=True, eq=False)
class File:
    """Bytes to keep beside the run as ``files/<name>`` (an animation, an HTML page)."""

    name: str
    data: bytes


@dataclass(frozen=True, eq=False)
class Params:
    """What a logger was asked to do, logged once per run (its step is ignored)."""

    values: Mapping[str, Any] = field(default_factory=dict)


Record = Union[Image, Scalars, Histogram, Text, File, Params]  # noqa: UP007 (a runtime alias)
