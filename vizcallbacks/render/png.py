"""The one PNG encoder: every writer that wants bytes gets these, encoded once per image."""

from __future__ import annotations

import io

import numpy as np

__all__ = ["PNG_LEVEL", "encode_png"]

PNG_LEVEL = 1  # a third of the default level's encoding time, files about 10 % larger


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes of a uint8 ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` image."""
    from PIL import Image

    array = np.asarray(pixels)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(
        buffer, format="PNG", compress_level=PNG_LEVEL
    )
    return buffer.getvalue()
