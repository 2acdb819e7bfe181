"""GradientLogger: is it learning? Gradients, weights and update ratios per layer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vizcallbacks.arrays import check_positive_int
from vizcallbacks.callbacks.background import warn_once
from vizcallbacks.callbacks.base import VisualizationCallback
from vizcallbacks.compute.gradient_health import (
    EXPLODING_FACTOR,
    VANISHING_FRACTION,
    LayerStep,
    exploded_layers,
    layer_step,
    norm,
    update_ratio,
    vanishing_layers,
)
from vizcallbacks.compute.gradients import (
    GradientPass,
    LayerWeights,
    check_loss_on,
    trainable_layers,
    weight_values,
)
from vizcallbacks.compute.labelled_batch import check_batch
from vizcallbacks.compute.layers import LayerSelection
from vizcallbacks.records import Record
from vizcallbacks.views.gradients import (
    FLOW_LAYER,
    evolution_records,
    flow_records,
    histogram_records,
    scalar_records,
)

__all__ = ["GradientLogger"]

_NAMED = 5  # layers named in a warning before "and N more"


@dataclass(frozen=True)
class _Step:
    """One logged step: per layer its numbers, its weights' gradients and values."""

    layers: dict[str, LayerStep]
    gradients: dict[str, dict[str, np.ndarray | None]]
    weights: dict[str, dict[str, np.ndarray]]


def _names(layers: list[str]) -> str:
    more = len(layers) - _NAMED
    return ", ".join(layers[:_NAMED]) + (f" and {more} more" if more > 0 else "")


class GradientLogger(VisualizationCallback):
    """Log, per layer with trainable weights, the gradient of the loss ``fit`` minimizes on a
    fixed labelled ``batch``, the weights, and how fast they move.

    ``batch``: ``(x, y)`` or ``(x, y, sample_weight)`` as ``fit`` takes them. Every
    ``every_n_epochs``: scalars ``gradient_norm``, ``weight_norm``, ``gradient_to_weight`` and
    ``update_ratio`` (‖W - W_prev‖ / ‖W_prev‖ per epoch) per layer, histograms
    ``gradients/<layer>/<weight>`` and ``weights/<layer>/<weight>``, and the picture
    ``gradient_flow/all_layers``; at train end ``gradient_flow/evolution``. With
    ``every_n_batches=k``, ``batch_weight_norm`` and ``batch_update_ratio`` every k batches (no
    gradient pass). Warns once each about vanishing, exploding and missing gradients. One
    compiled call per logged step; weights, optimizer and BatchNorm statistics are untouched.
    """

    def __init__(
        self,
        batch: Any,
        writers: Any,
        layers: LayerSelection = None,
        every_n_epochs: int = 1,
        every_n_batches: int | None = None,
    ) -> None:
        super().__init__(writers, every_n_epochs)
        self.batch = check_batch(batch)
        self.layers = layers
        self.every_n_batches = (
            None
            if every_n_batches is None
            else check_positive_int("every_n_batches", every_n_batches)
        )
        if self.every_n_batches is not None:
            # Only then: a batch hook turns off Keras' asynchronous batch dispatch.
            self.on_train_batch_end = self._batch_end
        self._groups: list[LayerWeights] = []
        self._pass: GradientPass | None = None
        self._norms_before: dict[str, float] = {}
        self._vanishing_before: set[str] = set()
        self._previous: tuple[int, dict[str, list[np.ndarray]]] | None = None  # view side
        self._history: list[tuple[int, dict[str, float]]] = []  # (step, log10 mean |g|)
        self._batches = 0  # the batch step: batches trained before this one, resumes included
        self._epochs_before = 0
        self._batch_previous: tuple[int, dict[str, list[np.ndarray]]] | None = None
        self._batch_norms_before: dict[str, float] = {}

    def setup(self) -> None:
        check_loss_on(self.model, self.batch)
        self._groups = trainable_layers(self.model, self.layers)
        if not self._groups:
            raise ValueError(
                "GradientLogger found no layer with trainable weights among the layers asked for "
                f"(layers={self.layers!r}). Pass layers= naming trainable layers, or leave it out."
            )
        self._pass = GradientPass(self.model)

    def claims(self) -> set[tuple[str, ...]]:
        return {("gradient_flow", FLOW_LAYER)} | {("gradient_norm", g.name) for g in self._groups}

    def _weights(self) -> dict[str, list[np.ndarray]]:
        return {g.name: weight_values(self.model, g.indices) for g in self._groups}

    def compute(self) -> _Step | None:
        if not self.model.built or self._pass is None:
            return None
        _, grads = self._pass(self.batch)
        weights = self._weights()
        steps, gradients = {}, {}
        for g in self._groups:
            layer_grads = [grads[i] for i in g.indices]
            steps[g.name] = layer_step(layer_grads, weights[g.name])
            gradients[g.name] = dict(zip(g.weights, layer_grads, strict=True))
        self._check_health(steps)
        named = {g.name: dict(zip(g.weights, weights[g.name], strict=True)) for g in self._groups}
        return _Step(steps, gradients, named)

    def _check_health(self, steps: dict[str, LayerStep]) -> None:
        missing = [name for name, s in steps.items() if not s.reached]
        if missing:
            warn_once(
                self,
                "no gradient",
                "vizcallbacks: GradientLogger: layer(s) %s get no gradient from the loss on the "
                "batch (every gradient is missing or exactly zero), so training never changes "
                "them. If a layer is meant to be frozen, set layer.trainable = False; otherwise "
                "connect it to the output the loss uses (an unused branch, a stop_gradient or "
                "dead ReLUs cut it off). Warned once.",
                _names(missing),
            )
        norms = {name: s.gradient_norm for name, s in steps.items() if s.reached}
        self._warn_exploding("gradient", exploded_layers(norms, self._norms_before), norms)
        vanishing = set(vanishing_layers(norms))
        twice = [name for name in norms if name in vanishing & self._vanishing_before]
        if twice:
            largest = max(norms, key=lambda k: norms[k] if np.isfinite(norms[k]) else -1.0)
            warn_once(
                self,
                "vanishing",
                "vizcallbacks: GradientLogger: vanishing gradients in %s: their gradient norm "
                "(%s) stayed below %.0e of the largest layer's (%.3g, %s) at two logged steps in "
                "a row, so they barely learn. Use ReLU-like activations with He initialization, "
                "BatchNormalization, residual connections or a shallower network. Warned once.",
                _names(twice),
                ", ".join(f"{norms[n]:.3g}" for n in twice[:_NAMED]),
                VANISHING_FRACTION,
                norms[largest],
                largest,
            )
        self._vanishing_before = vanishing
        self._norms_before = norms

    def _warn_exploding(self, what: str, layers: list[str], norms: dict[str, float]) -> None:
        if not layers:
            return
        before = self._norms_before if what == "gradient" else self._batch_norms_before
        evidence = ", ".join(
            f"{name}: {before.get(name, float('nan')):.3g} -> {norms[name]:.3g}"
            for name in layers[:_NAMED]
        )
        warn_once(
            self,
            "exploding",
            "vizcallbacks: GradientLogger: exploding %s in %s (%s norm at the previous logged "
            "step -> now; non-finite, or grown more than %gx). Training is diverging: lower the "
            "learning rate, clip gradients (compile with an optimizer given clipnorm=1.0), add "
            "normalization, or look for outliers in the data. Warned once.",
            "gradients" if what == "gradient" else "weights",
            _names(layers),
            evidence,
            EXPLODING_FACTOR,
        )

    def view(self, payload: _Step, step: int) -> list[Record]:
        weights = {layer: list(w.values()) for layer, w in payload.weights.items()}
        ratios: dict[str, float] = {}
        if self._previous is not None and self._previous[0] < step:
            before_step, before = self._previous
            ratios = {
                layer: update_ratio(w, before[layer], step - before_step)
                for layer, w in weights.items()
                if layer in before
            }
        self._previous = (step, weights)
        layers = payload.layers
        with np.errstate(divide="ignore", invalid="ignore"):
            self._history.append(
                (step, {k: float(np.log10(s.mean_abs)) for k, s in layers.items()})
            )
        scalars = {
            "gradient_norm": {k: s.gradient_norm for k, s in layers.items()},
            "weight_norm": {k: s.weight_norm for k, s in layers.items()},
            "gradient_to_weight": {k: s.gradient_to_weight for k, s in layers.items()},
            "update_ratio": ratios,
        }
        return (
            scalar_records(scalars)
            + histogram_records("gradients", payload.gradients)
            + histogram_records("weights", payload.weights)
            + flow_records(
                list(layers),
                [s.mean_abs for s in layers.values()],
                [s.max_abs for s in layers.values()],
            )
        )

    def summary_view(self) -> list[Record]:
        """log10 mean |g| per layer over every logged step: ``gradient_flow/evolution``."""
        names = [g.name for g in self._groups]
        steps = [step for step, _ in self._history]
        grid = np.array([[h.get(n, np.nan) for _, h in self._history] for n in names])
        return evolution_records(names, steps, grid.reshape(len(names), len(steps)))

    # every_n_batches ------------------------------------------------------------------------
    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        super().on_epoch_begin(epoch, logs)
        self._epochs_before = epoch + self._step_offset  # a resumed fit counts earlier epochs

    def _batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if not self._active or not self._groups:
            return
        steps = (self.params or {}).get("steps")  # None for data of unknown length: count on
        self._batches = self._epochs_before * steps + batch + 1 if steps else self._batches + 1
        if self.every_n_batches is None or self._batches % self.every_n_batches:
            return
        try:
            self._log_batch()
        except Exception as err:  # never kill training
            warn_once(
                self,
                "batch",
                "vizcallbacks: GradientLogger skipped batch logging (%s: %s)",
                type(err).__name__,
                err,
            )

    def _log_batch(self) -> None:
        weights = self._weights()
        norms = {layer: norm(w) for layer, w in weights.items()}
        ratios: dict[str, float] = {}
        if self._batch_previous is not None:
            at, before = self._batch_previous
            ratios = {k: update_ratio(w, before[k], self._batches - at) for k, w in weights.items()}
        self._warn_exploding("weight", exploded_layers(norms, self._batch_norms_before), norms)
        self._batch_previous = (self._batches, weights)
        self._batch_norms_before = norms
        records = scalar_records({"batch_weight_norm": norms, "batch_update_ratio": ratios})
        self._queue.submit("GradientLogger batch", self.fanout.write, records, self._batches)
