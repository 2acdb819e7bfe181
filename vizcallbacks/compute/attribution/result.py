"""The one result of every attribution method: the maps, and the classes they explain."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from keras import ops

__all__ = ["Attribution", "attribution_from", "chosen_map"]


@dataclass(frozen=True)
class Attribution:
    """Maps and the classes behind them for a batch of ``N`` probes.

    ``heatmaps`` float32 ``(N, *spatial)`` in [0, 1] at the input's resolution (``(N, H, W)``
    for images, ``(N, T)`` for signals, ``(N, D, H, W)`` for volumes); ``signed`` the same shape
    in units of the class score, or None for methods without a signed map (the CAMs).
    """

    heatmaps: np.ndarray
    class_index: np.ndarray  # int64 (N,): the class each map explains
    predicted: np.ndarray  # int64 (N,): the model's predicted class
    probability: np.ndarray  # float32 (N,): the probability of the predicted class
    class_probability: np.ndarray  # float32 (N,): the probability of the explained class
    signed: np.ndarray | None = None


def attribution_from(out: Mapping[str, Any]) -> Attribution:
    """A compiled call's outputs (backend tensors by name) as an :class:`Attribution`."""
    arrays = {key: ops.convert_to_numpy(value) for key, value in out.items()}
    signed = arrays.get("signed")
    return Attribution(
        heatmaps=arrays["heatmaps"].astype(np.float32),
        class_index=arrays["class_index"].astype(np.int64),
        predicted=arrays["predicted"].astype(np.int64),
        probability=arrays["probability"].astype(np.float32),
        class_probability=arrays["class_probability"].astype(np.float32),
        signed=None if signed is None else signed.astype(np.float32),
    )


def chosen_map(result: Attribution, signed: bool) -> np.ndarray:
    """The signed map when asked for and the method has one, else the heatmaps."""
    return result.signed if signed and result.signed is not None else result.heatmaps
