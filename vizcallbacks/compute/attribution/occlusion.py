"""Occlusion sensitivity: how much the class score drops when a patch of the input is hidden.

Every ``patch x patch`` square (a segment of a signal, a cube of a volume) at ``stride`` steps
(the last row and column of patches touch the border) is filled with ``fill``; a pixel's value
is the mean drop ``score(x) - score(x with the patch hidden)`` over the patches that cover it
(Zeiler & Fergus, 2014). All occluded copies go through the model as one batch in one compiled
call.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from vizcallbacks.compute.attribution.pipeline import (
    BATCH_SIZE,
    InputAttribution,
    check_count,
    check_number,
)

__all__ = ["Occlusion", "occlusion_masks", "patch_masks"]


def occlusion_masks(height: int, width: int, patch: int, stride: int) -> np.ndarray:
    """float32 ``(P, H, W)``: 1 inside each square patch, in row-major order of the patches."""
    return patch_masks((height, width), patch, stride)


def patch_masks(shape: Sequence[int], patch: int, stride: int) -> np.ndarray:
    """float32 ``(P, *shape)``: 1 inside each patch of ``patch`` cells along every axis (a
    segment of a signal, a square of an image, a cube of a volume), in row-major order."""
    if patch > min(shape):
        size = "x".join(str(d) for d in shape)
        raise ValueError(f"patch must fit in the image ({size}). Received: patch={patch}")

    def starts(size: int) -> list[int]:
        found = list(range(0, size - patch + 1, stride))
        return found if found[-1] == size - patch else [*found, size - patch]

    corners = list(itertools.product(*(starts(size) for size in shape)))
    masks = np.zeros((len(corners), *shape), dtype=np.float32)
    for k, corner in enumerate(corners):
        masks[k][tuple(slice(c, c + patch) for c in corner)] = 1.0
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
        self.masks = patch_masks(self.image_shape[:-1], self.patch, self.stride)
        coverage = self.masks.sum(axis=0)
        self.weights = self.masks / np.where(coverage > 0, coverage, 1.0)  # mean over patches

    def attribute(
        self, x: Any, target: Any, logits: Any, gradient: Any, *extra: Any
    ) -> tuple[Any, Any]:
        spatial = tuple(x.shape[1:-1])
        masks = ops.convert_to_tensor(self.masks)[None, ..., None]  # (1, P, *spatial, 1)
        patches = self.masks.shape[0]
        occluded = x[:, None] * (1.0 - masks) + self.fill * masks  # (N, P, *spatial, C)
        scores = self.class_scores_of(
            ops.reshape(occluded, (-1, *x.shape[1:])), ops.repeat(target, patches)
        )
        drop = self.class_logit(logits, target)[:, None] - ops.reshape(scores, (-1, patches))
        weights = ops.convert_to_tensor(self.weights.reshape(patches, -1).astype(np.float32))
        signed = ops.reshape(ops.matmul(drop, weights), (-1, *spatial, 1))
        return signed, ops.relu(signed)
