"""Per-layer numbers of one logged step (norms, mean and max |g|, update ratio) and the signs of
a sick run they show: vanishing, exploding, or no gradient at all."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "EXPLODING_FACTOR",
    "VANISHING_FRACTION",
    "LayerStep",
    "exploded_layers",
    "layer_step",
    "norm",
    "update_ratio",
    "vanishing_layers",
]

VANISHING_FRACTION = 1e-6  # a layer's gradient norm below this share of the largest layer's
EXPLODING_FACTOR = 100.0  # a norm that grew more than this between two logged steps


def norm(arrays: Sequence[np.ndarray]) -> float:
    """The L2 norm of all ``arrays`` together, in float64 (a float32 sum of squares overflows
    long before the weights do)."""
    return float(np.sqrt(sum(np.square(a, dtype=np.float64).sum() for a in arrays)))


def _max_abs(array: np.ndarray) -> float:
    """max |array| from its largest and smallest value (NaN if any is NaN), without a copy."""
    return max(abs(float(array.max())), abs(float(array.min())))


@dataclass(frozen=True)
class LayerStep:
    """One layer at one logged step: ``reached`` is False when no weight of it got a gradient
    (disconnected from the loss) or every gradient is exactly zero."""

    gradient_norm: float
    weight_norm: float
    mean_abs: float
    max_abs: float
    reached: bool

    @property
    def finite(self) -> bool:
        return bool(np.isfinite(self.gradient_norm))

    @property
    def gradient_to_weight(self) -> float:
        return self.gradient_norm / self.weight_norm if self.weight_norm > 0 else float("nan")


def layer_step(gradients: Sequence[np.ndarray | None], weights: Sequence[np.ndarray]) -> LayerStep:
    """The numbers of one layer from its weights' gradients (``None``: not reached) and values."""
    present = [g for g in gradients if g is not None]
    size = sum(g.size for g in present)
    with np.errstate(over="ignore", invalid="ignore"):
        # |g| in g's own dtype (exact), summed in float64: no float64 copy of every gradient.
        mean_abs = (
            sum(float(np.abs(g).sum(dtype=np.float64)) for g in present) / size if size else 0.0
        )
        max_abs = max((_max_abs(g) for g in present if g.size), default=0.0)
        gradient_norm = norm(present)
    reached = bool(present) and (max_abs > 0 or not np.isfinite(max_abs))
    return LayerStep(gradient_norm, norm(weights), mean_abs, max_abs, reached)


def update_ratio(
    now: Sequence[np.ndarray], before: Sequence[np.ndarray], steps_between: int = 1
) -> float:
    """‖W_now - W_before‖ / ‖W_before‖ per step between them: how fast a layer moves."""
    change = norm([a - b for a, b in zip(now, before, strict=True)])
    size = norm(before)
    return change / size / max(steps_between, 1) if size > 0 else float("nan")


def vanishing_layers(norms: Mapping[str, float], fraction: float = VANISHING_FRACTION) -> list[str]:
    """Layers whose finite gradient norm is below ``fraction`` of the largest layer's (layers
    without any gradient are another problem, left out)."""
    finite = {k: v for k, v in norms.items() if np.isfinite(v) and v > 0}
    if not finite:
        return []
    largest = max(finite.values())
    return [k for k, v in finite.items() if v < fraction * largest]


def exploded_layers(
    now: Mapping[str, float], before: Mapping[str, float], factor: float = EXPLODING_FACTOR
) -> list[str]:
    """Layers whose norm is not finite now, or grew more than ``factor`` times since before."""
    return [
        k
        for k, v in now.items()
        if not np.isfinite(v) or (before.get(k, 0.0) > 0 and v > factor * before[k])
    ]
