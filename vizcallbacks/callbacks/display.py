"""What the maps of GradCAMLogger and AttributionLogger are drawn over when the probe does not
look like a picture: the ``display`` argument, checked against the probe."""

from __future__ import annotations

from typing import Any

import numpy as np

from vizcallbacks.arrays import is_real

__all__ = ["check_display", "checked_display"]


def checked_display(display: Any, probe: np.ndarray) -> np.ndarray:
    """``display`` checked against ``probe``, or else against ``probe`` read as channels_first
    ``(N, C, H, W)``."""
    try:
        return check_display(display, probe)
    except ValueError:
        if not (isinstance(probe, np.ndarray) and probe.ndim == 4):
            raise
        try:
            return check_display(display, np.moveaxis(probe, 1, -1))
        except ValueError:
            pass
        raise


def check_display(display: Any, probe: np.ndarray) -> np.ndarray:
    """``display`` as a batch matching ``probe``'s N, H and W: uint8, or float in [0, 1]."""
    array = np.asarray(display)
    if array.ndim in (2, 3) and array.shape[:2] == probe.shape[1:3]:
        array = array[None]
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or array.shape[:3] != probe.shape[:3]:
        raise ValueError(
            f"display must hold one picture per probe image with the probe's height and width: "
            f"shape ({probe.shape[0]}, {probe.shape[1]}, {probe.shape[2]}, C). "
            f"Received shape {np.shape(display)}"
        )
    if array.dtype == np.uint8:
        return array
    if not is_real(array, allow_bool=False):
        raise TypeError(f"display must be uint8 or float pixels. Received dtype {array.dtype}")
    values = array.astype(np.float32)
    if not np.isfinite(values).all() or values.min() < 0 or values.max() > 255:
        raise ValueError(
            "display must be uint8 or float pixels in [0, 1] or [0, 255] (finite). Received "
            f"values in [{np.nanmin(values):.4g}, {np.nanmax(values):.4g}]"
        )
    if values.max() > 1.0:
        return np.round(values).astype(np.uint8)  # [0, 255]: drawn as is, not stretched
    return values
