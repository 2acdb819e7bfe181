"""Occlusion sensitivity: how much the class score drops when a patch of the image is hidden.

Every ``patch x patch`` square at ``stride`` steps (the last row and column of patches touch the
border) is filled with ``fill``; a pixel's value is the mean drop ``score(x) - score(x with the
patch hidden)`` over the patches that cover it (Zeiler & Fergus, 2014). All occluded copies go
through the model as one batch in one compiled call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from vizcallbacks.compute.attribution import (
    BATCH_SIZE,
    InputAttribution,
    attribution_probe,
    check_count,
    check_number,
    chosen_map,
)
from vizcallbacks.compute.cache import built_for
from vizcallbacks.compute.class_scores import ClassIndex

__all__ = ["Occlusion", "occlusion_masks", "occlusion_sensitivity"]


def occlusion_masks(height: int, width: int, patch: int, stride: int) -> np.ndarray:
    """float32 ``(P, H, W)``: 1 inside each patch, in row-major order of the patches."""
    if patch > min(height, width):
        raise ValueError(f"patch must fit in the image ({height}x{width}). Received: patch={patch}")

    def starts(size: int) -> list[int]:
        found = list(range(0, size - patch + 1, stride))
        return found if found[-1] == size - patch else [*found, size - patch]

    rows, cols = starts(height), starts(width)
    masks = np.zeros((len(rows) * len(cols), height, width), dtype=np.float32)
    for k, (top, left) in enumerate((r, c) for r in rows for c in cols):
        masks[k, top : top + patch, left : left + patch] = 1.0
    return masks


class Occlusion(InputAttribution):
    """Occlusion sensitivity with square patches of ``patch`` pixels every ``stride`` (default:
    ``patch``) pixels, filled with ``fill``."""

    what = "occlusion_sensitivity"
    needs_gradient = False

    def __init__(
        self,
        model: keras.Model,
        patch: int = 4,
        stride: int | None = None,
        fill: float = 0.0,
        image_shape: Sequence[int] | None = None,
        output: str | int | None = None,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self.patch = check_count("patch", patch, 1)
        self.stride = self.patch if stride is None else check_count("stride", stride, 1)
        self.fill = check_number("fill", fill)
        super().__init__(model, image_shape, output, batch_size)
        height, width = self.image_shape[:2]  # known after super().__init__
        self.masks = occlusion_masks(height, width, self.patch, self.stride)
        coverage = self.masks.sum(axis=0)
        self.weights = self.masks / np.where(coverage > 0, coverage, 1.0)  # mean over patches

    def attribute(
        self, x: Any, target: Any, logits: Any, gradient: Any, *extra: Any
    ) -> tuple[Any, Any]:
        masks = ops.convert_to_tensor(self.masks)[None, :, :, :, None]  # (1, P, H, W, 1)
        patches = self.masks.shape[0]
        occluded = x[:, None] * (1.0 - masks) + self.fill * masks  # (N, P, H, W, C)
        scores = self.class_scores_of(
            ops.reshape(occluded, (-1, *x.shape[1:])), ops.repeat(target, patches)
        )
        drop = self.class_logit(logits, target)[:, None] - ops.reshape(scores, (-1, patches))
        weights = ops.convert_to_tensor(self.weights.astype(np.float32))
        signed = ops.einsum("np,phw->nhw", drop, weights)[..., None]
        return signed, ops.relu(signed)


def occlusion_sensitivity(
    model: keras.Model,
    images: np.ndarray,
    class_index: ClassIndex = None,
    patch: int = 4,
    stride: int | None = None,
    fill: float = 0.0,
    signed: bool = False,
    output: str | int | None = None,
) -> np.ndarray:
    """Occlusion maps float32 ``(N, H, W)``: the mean score drop when a ``patch``-pixel square
    (every ``stride`` pixels, default ``patch``) is filled with ``fill``; positive drops divided
    by each map's maximum, in [0, 1]. ``signed=True``: the drop itself in score units (negative
    where hiding the patch raises the score). Compiled once per model and options."""
    patch = check_count("patch", patch, 1)
    stride = None if stride is None else check_count("stride", stride, 1)
    fill = check_number("fill", fill)
    probe = attribution_probe(model, images, "occlusion_sensitivity")
    key = ("occlusion_sensitivity", patch, stride, fill, output, probe.shape)
    method = built_for(
        model, key, lambda: Occlusion(model, patch, stride, fill, probe.shape[1:], output)
    )
    result = method(probe, class_index)
    return chosen_map(result, signed)
