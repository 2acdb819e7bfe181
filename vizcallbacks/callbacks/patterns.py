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
    ClassPatterns,
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
    each took, ``filter_patterns_seconds/<layer>``; with ``classes``, the patterns of output
    classes too, ``class_patterns/<output>``; expensive, so every 5 epochs by default.

    Args:
        writers: where to log, e.g. ``[vc.TensorBoardWriter("logs")]``.
        layers: names, nested paths or indices of layers with 4-D outputs; ``None``: every conv;
            ``[]``: none (class patterns only).
        filters: ``n`` for the first n filters of each layer, a list of indices, ``None`` for all.
        every_n_epochs: log after every n-th epoch (and after the last).
        seed: the same start image every time, so epochs differ only through the model.
        classes: output classes whose logit to maximize: ``n`` for the first n, a list of
            indices; ``None`` (default): no class patterns.
        output: the classifier output's name or index when the model has several.
        options: the other fields of :class:`vizcallbacks.compute.patterns.PatternOptions`
            (``steps``, ``parameterization``, ``transforms``, ``variants``, ``diversity``,
            ``value_range``, ...), as in :func:`vizcallbacks.filter_patterns`.
    """

    def __init__(
        self,
        writers: Any,
        layers: LayerSelection = None,
        filters: FilterSelection = 16,
        every_n_epochs: int = 5,
        seed: int = 0,
        classes: FilterSelection = None,
        output: str | int | None = None,
        **options: Any,
    ) -> None:
        super().__init__(writers, every_n_epochs)
        self.layers = layers
        self.seed = check_seed(seed)
        self.options = PatternOptions(filters=filters, **options)  # bad options fail here
        PatternOptions(filters=classes)  # the same checks of form for classes
        self.classes, self.output = classes, output
        self._patterns: list[FilterPatterns | ClassPatterns] | None = None

    def setup(self) -> None:
        self._patterns = None
        if self.model.built:  # a Sequential without Input is built by its first training step
            self._build()

    def claims(self) -> set[tuple[str, ...]]:
        if self._patterns is not None:
            return {_kind_and_name(patterns) for patterns in self._patterns}
        claimed = {("filter_patterns", str(self.layers or "every conv layer"))}
        return claimed | ({("class_patterns", str(self.output))} if self.classes else set())

    def _build(self) -> list[FilterPatterns | ClassPatterns]:
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
        built: dict[str, FilterPatterns | ClassPatterns] = {}
        for name in names:
            patterns = FilterPatterns(self.model, name, self.options)
            built.setdefault(patterns.layer_name, patterns)
        self._patterns = list(built.values())
        if self.classes is not None:
            self._patterns.append(
                ClassPatterns(self.model, self.classes, self.options, self.output)
            )
        return self._patterns

    def compute(self) -> dict[tuple[str, str], tuple[PatternResult, float]] | None:
        if self._patterns is None:
            if not self.model.built:
                return None
            self._build()
        assert self._patterns is not None
        payload: dict[tuple[str, str], tuple[PatternResult, float]] = {}
        for patterns in self._patterns:
            start = time.perf_counter()
            result = patterns.ascend(self.seed)
            payload[_kind_and_name(patterns)] = (result, time.perf_counter() - start)
        total = sum(seconds for _, seconds in payload.values())
        if total > SLOW_STEP_SECONDS:
            warn_once(
                self,
                "slow",
                "vizcallbacks: filter patterns took %.0f s of training time this step (%s). Pass "
                "layers= with fewer layers, fewer filters= or steps=, or a larger "
                "every_n_epochs. Warned once.",
                total,
                ", ".join(f"{name} {seconds:.1f} s" for (_, name), (_, seconds) in payload.items()),
            )
        return payload

    def view(
        self, payload: dict[tuple[str, str], tuple[PatternResult, float]], step: int
    ) -> list[Record]:
        records: list[Record] = []
        for (kind, layer), (result, seconds) in payload.items():
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
            records += pattern_records(
                layer, result.images, result.responded, seconds, kind, self.options.variants
            )
            log.info(
                "vizcallbacks: %s of %s (%d images) took %.2f s at step %d",
                kind.replace("_", " "),
                layer,
                result.images.shape[0],
                seconds,
                step,
            )
        return records


def _kind_and_name(patterns: FilterPatterns | ClassPatterns) -> tuple[str, str]:
    """``("filter_patterns", layer)`` or ``("class_patterns", output)``: what a search logs."""
    if isinstance(patterns, ClassPatterns):
        return "class_patterns", patterns.output_name
    return "filter_patterns", patterns.layer_name
