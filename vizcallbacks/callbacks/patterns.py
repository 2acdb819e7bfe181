"""FilterPatternLogger: what each filter of chosen layers responds to most, every few epochs."""

from __future__ import annotations

import logging
import time
from typing import Any

from vizcallbacks.callbacks.background import warn_once
from vizcallbacks.callbacks.base import VisualizationCallback
from vizcallbacks.compute.filters import conv_layers, kernel_layers
from vizcallbacks.compute.layers import LayerSelection
from vizcallbacks.compute.patterns import (
    FilterPatterns,
    FilterSelection,
    PatternOptions,
    PatternResult,
    check_seed,
)
from vizcallbacks.records import Record
from vizcallbacks.views.patterns import pattern_records

__all__ = ["FilterPatternLogger"]

SLOW_STEP_SECONDS = 30.0  # of training time per logged step before the logger says so

log = logging.getLogger("vizcallbacks")


class FilterPatternLogger(VisualizationCallback):
    """Log filter patterns found by gradient ascent, ``filter_patterns/<layer>``, and the seconds
    each took, ``filter_patterns_seconds/<layer>``; expensive, so every 5 epochs by default.

    Args:
        writers: where to log, e.g. ``[vc.TensorBoardWriter("logs")]``.
        layers: names, nested paths or indices of layers with 4-D outputs; ``None``: every conv.
        filters: ``n`` for the first n filters of each layer, a list of indices, ``None`` for all.
        every_n_epochs: log after every n-th epoch (and after the last).
        seed: the same start image every time, so epochs differ only through the model.
        options: the other fields of :class:`vizcallbacks.compute.patterns.PatternOptions`
            (``steps``, ``step_size``, ``noise``, ``jitter``, ``blur``, ``value_range``,
            ``image_shape``), as in :func:`vizcallbacks.filter_patterns`.
    """

    def __init__(
        self,
        writers: Any,
        layers: LayerSelection = None,
        filters: FilterSelection = 16,
        every_n_epochs: int = 5,
        seed: int = 0,
        **options: Any,
    ) -> None:
        super().__init__(writers, every_n_epochs)
        self.layers = layers
        self.seed = check_seed(seed)
        self.options = PatternOptions(filters=filters, **options)  # bad options fail here
        self._patterns: list[FilterPatterns] | None = None

    def setup(self) -> None:
        self._patterns = None
        if self.model.built:  # a Sequential without Input is built by its first training step
            self._build()

    def claims(self) -> set[tuple[str, ...]]:
        if self._patterns is not None:
            return {("filter_patterns", patterns.layer_name) for patterns in self._patterns}
        return {("filter_patterns", str(self.layers or "every conv layer"))}

    def _build(self) -> list[FilterPatterns]:
        if self.layers is None:
            names: list[str | int] = ["/".join(ref.path) for ref in conv_layers(self.model)]
            if not names:
                wrapped = [ref.name for ref in kernel_layers(self.model)]
                inside = (
                    f" ({', '.join(wrapped)} sit inside a wrapper: they see frames or steps, not "
                    "an image input that gradient ascent could make)"
                    if wrapped
                    else ""
                )
                raise ValueError(
                    f"FilterPatternLogger found no conv layer in the model{inside}; pass "
                    "layers= naming layers with a 4-D (N, H, W, C) output of an image model."
                )
        else:
            names = [self.layers] if isinstance(self.layers, (str, int)) else list(self.layers)
        built: dict[str, FilterPatterns] = {}
        for name in names:
            patterns = FilterPatterns(self.model, name, self.options)
            built.setdefault(patterns.layer_name, patterns)
        self._patterns = list(built.values())
        return self._patterns

    def compute(self) -> dict[str, tuple[PatternResult, float]] | None:
        if self._patterns is None:
            if not self.model.built:
                return None
            self._build()
        assert self._patterns is not None
        payload: dict[str, tuple[PatternResult, float]] = {}
        for patterns in self._patterns:
            start = time.perf_counter()
            result = patterns.ascend(self.seed)
            payload[patterns.layer_name] = (result, time.perf_counter() - start)
        total = sum(seconds for _, seconds in payload.values())
        if total > SLOW_STEP_SECONDS:
            warn_once(
                self,
                "slow",
                "vizcallbacks: filter patterns took %.0f s of training time this step (%s). Pass "
                "layers= with fewer layers, fewer filters= or steps=, or a larger "
                "every_n_epochs. Warned once.",
                total,
                ", ".join(f"{name} {seconds:.1f} s" for name, (_, seconds) in payload.items()),
            )
        return payload

    def view(self, payload: dict[str, tuple[PatternResult, float]], step: int) -> list[Record]:
        records: list[Record] = []
        for layer, (result, seconds) in payload.items():
            self.warn_nonfinite(f"filter patterns of {layer}", result.images)
            if not result.responded.all():
                warn_once(
                    self,
                    f"silent {layer}",
                    "vizcallbacks: %d of %d filters of %s never fired on the start image; "
                    "drawn black. Warned once.",
                    int((~result.responded).sum()),
                    result.responded.size,
                    layer,
                )
            records += pattern_records(layer, result.images, result.responded, seconds)
            log.info(
                "vizcallbacks: filter patterns of %s (%d filters) took %.2f s at step %d",
                layer,
                result.images.shape[0],
                seconds,
                step,
            )
        return records
