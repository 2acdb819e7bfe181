"""Is each file of a spool what the writer stored? Checked before ``sync`` sends it, so a missing,
cut-short or damaged file is skipped by name and never costs the other items."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vizcallbacks.writers.mlflow.spool import Spool

__all__ = ["check_payload", "payload_problem"]

TEXT_SUFFIXES = (".md", ".txt")  # an empty text is a valid text
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def payload_problem(spool: Spool, item: dict[str, Any]) -> str | None:
    """Why the file stored with ``item`` cannot be sent (gone, cut short, damaged), or None."""
    try:
        data = spool.read_payload(item)
    except FileNotFoundError:
        return f"its file {item['file']} is missing"
    except OSError as err:
        return err.strerror or str(err)
    return check_payload(item, data)


def check_payload(item: Mapping[str, Any], data: bytes) -> str | None:
    """Why ``data``, the file stored with ``item``, cannot be sent, or None when it can."""
    name = str(item["file"])
    suffix = Path(name).suffix.lower()
    if not data and suffix not in TEXT_SUFFIXES:
        return f"its file {name} is empty"
    if item["kind"] == "image":  # the PNG, then its WebP preview
        cut = len(data) - item["preview"]
        if not 0 < cut <= len(data) or data[cut + 8 : cut + 12] != b"WEBP":
            return f"its file {name} has no WebP preview after the image"
        return _png_problem(data[:cut], name)
    if suffix == ".png":
        return _png_problem(data, name)
    if suffix == ".json":
        try:
            json.loads(data.decode("utf-8"))
        except ValueError as err:
            return f"its file {name} is not valid JSON ({err})"
    return None


def _png_problem(data: bytes, name: str) -> str | None:
    if not data.startswith(PNG_SIGNATURE):
        return f"its file {name} is not a PNG image"
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as picture:
            picture.load()
    except Exception as err:  # Pillow raises many kinds for a truncated or corrupt file
        return f"its file {name} is not a valid PNG image ({type(err).__name__}: {err})"
    return None
