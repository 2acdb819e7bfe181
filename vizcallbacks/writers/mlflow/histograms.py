"""Histograms for MLflow, which has no histogram type: quantile metrics plus one JSON file per step.

The quantiles (``channel_means_p50/<layer>``...) are charted over epochs and compared across
runs; the raw values of a step's layers go to ``histograms/step_000003.json``, rewritten as the
step's layers arrive (the sender skips versions a newer one replaces). A tag of more than
``MAX_VALUES`` values keeps that many evenly spaced order statistics of its finite values (the
same histogram shape; ResNet50's raw weights and gradients were 0.9 GB a step), and the file's
``reduced`` entry says how many values and non-finite ones the tag had.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from vizcallbacks.tags import QUANTILES, quantile_tag, shorten

__all__ = ["HistogramFiles", "quantile_metrics"]

RECENT_STEPS = 8  # recent steps whose histogram file is still being completed
MAX_VALUES = 4096  # values kept per tag and step


def quantile_metrics(tag: str, values: np.ndarray) -> dict[str, float]:
    """``{channel_means_min/<layer>: ..., ..._p50/...: ..., ..._max/...: ...}`` of the finite
    values; empty when none is finite."""
    finite = np.asarray(values, dtype=np.float64).ravel()
    finite = finite[np.isfinite(finite)]
    if not finite.size:
        return {}
    levels = np.quantile(finite, list(QUANTILES.values()))
    return {
        shorten(quantile_tag(tag, stat)): float(v)
        for stat, v in zip(QUANTILES, levels, strict=True)
    }


class HistogramFiles:
    """The values of recent steps' histograms, merged per step; not thread-safe (the writer
    holds its lock)."""

    def __init__(self) -> None:
        self._steps: dict[int, dict[str, Sequence[float | None]]] = {}
        self._reduced: dict[int, dict[str, dict[str, int]]] = {}
        self._changed: set[int] = set()

    def add(self, tag: str, values: np.ndarray, step: int) -> None:
        """Keep ``values`` under ``tag`` in step ``step``'s file (NaN and Inf become null; more
        than ``MAX_VALUES`` become that many order statistics)."""
        flat = np.asarray(values, dtype=np.float64).ravel()
        finite = np.isfinite(flat)
        reduced = self._reduced.setdefault(step, {})
        reduced.pop(tag, None)
        if flat.size > MAX_VALUES:
            ordered = np.sort(flat[finite])
            picks = np.linspace(0, ordered.size - 1, min(MAX_VALUES, ordered.size))
            listed: Sequence[float | None] = ordered[np.round(picks).astype(np.int64)].tolist()
            reduced[tag] = {"count": int(flat.size), "non_finite": int(flat.size - finite.sum())}
        elif finite.all():
            listed = flat.tolist()  # one C loop, not a float() per value
        else:
            listed = [
                v if ok else None for v, ok in zip(flat.tolist(), finite.tolist(), strict=True)
            ]
        self._steps.setdefault(step, {})[tag] = listed
        self._changed.add(step)
        for old in sorted(self._steps)[:-RECENT_STEPS]:
            del self._steps[old]
            self._reduced.pop(old, None)

    def take_changed(self) -> list[tuple[int, str, bytes]]:
        """``(step, file name, JSON bytes)`` of every step changed since the last call."""
        changed, self._changed = self._changed, set()
        return [
            (
                step,
                f"step_{step:06d}.json",
                json.dumps(
                    {"step": step, "values": self._steps[step]}
                    | ({"reduced": self._reduced[step]} if self._reduced.get(step) else {})
                ).encode("utf-8"),
            )
            for step in sorted(changed & set(self._steps))
        ]
