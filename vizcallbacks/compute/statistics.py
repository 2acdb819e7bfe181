"""Activation statistics: plain numbers from a layer's output, logged as scalars and histograms."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vizcallbacks.arrays import as_float_array

__all__ = ["ActivationStatistics", "activation_statistics"]


@dataclass(frozen=True)
class ActivationStatistics:
    """Summary of one layer's output ``(N, ..., C)`` over all probes, any rank, channels last.

    ``zero_fraction`` is the share of exact zeros (the dead-ReLU share); ``channel_means`` holds
    one mean per channel (last axis), shape ``(C,)``; ``dead_channels`` the indices of channels
    that are exactly zero everywhere for every probe. ``positions`` is how many values a channel
    has per probe (``H·W`` for a map, ``T`` for a signal, 1 for a Dense or Flatten output):
    only outputs with more than one position have channels worth calling dead
    (:attr:`spatial`); for a Dense output a "dead channel" is a unit that is zero for every
    probe, which a ReLU gives by chance for about half of its units with one probe.
    """

    mean: float
    std: float
    zero_fraction: float
    channel_means: np.ndarray
    dead_channels: np.ndarray
    positions: int = 1

    @property
    def dead_fraction(self) -> float:
        """Share of channels that are dead."""
        return len(self.dead_channels) / len(self.channel_means)

    @property
    def spatial(self) -> bool:
        """True for conv-like outputs (maps, signals, volumes); False for Dense, Flatten, 1x1."""
        return self.positions > 1


def activation_statistics(activations: np.ndarray) -> ActivationStatistics:
    """Statistics of ``activations`` ``(N, ..., C)``, NaN and Inf included as they are."""
    values = as_float_array(activations, "activations").astype(np.float64)
    if values.ndim < 2:
        raise ValueError(f"activations must be (N, ..., C). Received shape {values.shape}")
    with np.errstate(invalid="ignore", over="ignore"):
        per_channel = values.reshape(-1, values.shape[-1])
        channel_means = per_channel.mean(axis=0)
        return ActivationStatistics(
            mean=float(values.mean()),
            std=float(values.std()),
            zero_fraction=float(np.count_nonzero(values == 0) / values.size),
            channel_means=channel_means.astype(np.float32),
            dead_channels=np.flatnonzero((per_channel == 0).all(axis=0)),
            positions=int(np.prod(values.shape[1:-1], dtype=np.int64)),
        )
