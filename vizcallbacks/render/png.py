"""The one PNG encoder: every writer that wants bytes gets these, encoded once per image.

Written with the standard library's zlib rather than Pillow: Pillow tries five PNG filters on
every row and keeps the best, which pays off on photographs but not on our pictures, made of
flat, pixel-repeated tiles that deflate compresses well as they are. Rows unfiltered ("None")
at zlib level 3 encode 2-3.5x faster than Pillow's level 3, and our grids come out about as
large (stage 9 of ``python -m benchmarks.overhead`` times both on one step's pictures).
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

__all__ = ["PNG_LEVEL", "encode_png", "recompressed_png"]

# zlib's levels 1-3 share its fast strategy: level 3 takes level 1's time for files ~10 % smaller
# (the demo's pictures); level 4 up costs 1.7x and more (benchmarks/RESULTS.md, bytes per step).
PNG_LEVEL = 3
_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels → grey, grey + alpha, RGB, RGBA


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes of a uint8 ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` image."""
    array = np.asarray(pixels)
    if array.ndim == 2:
        array = array[..., None]
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[-1] not in _COLOUR_TYPES:
        raise ValueError(
            "encode_png needs uint8 pixels (H, W), (H, W, 1), (H, W, 3) or (H, W, 4). "
            f"Received dtype {array.dtype}, shape {array.shape}"
        )
    height, width, channels = array.shape
    if height == 0 or width == 0:
        raise ValueError(f"encode_png needs at least one pixel. Received shape {array.shape}")
    rows = np.zeros((height, 1 + width * channels), dtype=np.uint8)  # byte 0: filter "None"
    rows[:, 1:] = array.reshape(height, width * channels)
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOUR_TYPES[channels], 0, 0, 0)
    return b"".join(
        (
            _SIGNATURE,
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", zlib.compress(rows.tobytes(), PNG_LEVEL)),
            _chunk(b"IEND", b""),
        )
    )


def recompressed_png(data: bytes) -> bytes:
    """``data`` (any PNG) with its pixel stream deflated again at zlib's best level: the same
    pixels in fewer bytes, for pictures kept once and read often (the one-file report). Bytes that
    are not a PNG, or a PNG that does not come out smaller, are returned as they are."""
    if not data.startswith(_SIGNATURE):
        return data
    chunks: list[tuple[bytes, bytes]] = []
    at = len(_SIGNATURE)
    while at + 8 <= len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        chunks.append((data[at + 4 : at + 8], data[at + 8 : at + 8 + length]))
        at += 12 + length
    stream = b"".join(body for kind, body in chunks if kind == b"IDAT")
    try:
        packed = zlib.compress(zlib.decompress(stream), 9)
    except zlib.error:
        return data
    parts, placed = [_SIGNATURE], False
    for kind, body in chunks:
        if kind != b"IDAT":
            parts.append(_chunk(kind, body))
        elif not placed:  # the pixel stream in one IDAT where the first one was
            parts.append(_chunk(b"IDAT", packed))
            placed = True
    smaller = b"".join(parts)
    return smaller if len(smaller) < len(data) else data
