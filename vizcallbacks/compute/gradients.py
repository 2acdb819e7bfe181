"""The gradient of the loss ``fit`` minimizes with respect to every trainable weight, per layer,
in one compiled call that changes nothing in the model or its optimizer.

The pass runs the model with ``training=True`` (dropout on, BatchNorm on the batch's statistics:
the loss a training step differentiates) inside a ``keras.StatelessScope``: the trainable weights
are the differentiated values, and every state update the call makes (BatchNorm's moving
statistics, a dropout seed, a loss metric) stays in the scope and is dropped. The optimizer is
never touched, so a ``LossScaleOptimizer``'s scale is not applied: the gradients are unscaled.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from vizcallbacks.compute.backend import compiled, output_arrays, value_and_gradients
from vizcallbacks.compute.labelled_batch import LabelledBatch, check_batch, check_batch_fits_model
from vizcallbacks.compute.layers import LayerSelection, ensure_built, select_layers
from vizcallbacks.tags import unique_safe_names

__all__ = [
    "GradientPass",
    "LayerWeights",
    "gradient_flow",
    "layer_gradients",
    "trainable_layers",
    "weight_values",
]


@dataclass(frozen=True)
class LayerWeights:
    """A layer with trainable weights: its tag-safe name, its weights' safe names (``kernel``,
    ``bias``) and their positions in ``model.trainable_variables``."""

    name: str
    layer: keras.layers.Layer
    weights: tuple[str, ...]
    indices: tuple[int, ...]


def trainable_layers(model: keras.Model, layers: LayerSelection = None) -> list[LayerWeights]:
    """The selected layers that own trainable weights, in forward order; a weight shared by two
    layers belongs to the first."""
    position = {id(v): i for i, v in enumerate(model.trainable_variables)}
    taken: set[int] = set()
    found = []
    for ref in select_layers(model, layers):
        owned = [v for v in ref.layer.trainable_weights if id(v) in position and id(v) not in taken]
        if not owned:
            continue
        taken.update(id(v) for v in owned)
        names = unique_safe_names((v.name,) for v in owned)
        indices = tuple(position[id(v)] for v in owned)
        found.append(LayerWeights(ref.name, ref.layer, tuple(names), indices))
    return found


def weight_values(model: keras.Model, indices: Sequence[int] | None = None) -> list[np.ndarray]:
    """The trainable weights (those at ``indices`` in ``model.trainable_variables``; all by
    default) as they are now, as float32 numpy copies: training changes them in place later."""
    variables = model.trainable_variables
    chosen = range(len(variables)) if indices is None else indices
    return [_own_float32(keras.ops.convert_to_numpy(variables[i].value)) for i in chosen]


def _own_float32(array: np.ndarray) -> np.ndarray:
    """``array`` as float32 memory of its own: copied only when it is a view (JAX and PyTorch
    share the variable's buffer) or of another dtype; TensorFlow's conversion is a copy already."""
    if array.dtype == np.float32 and array.flags.owndata and array.flags.writeable:
        return array
    return np.array(array, dtype=np.float32, copy=True)


class GradientPass:
    """``pass_(batch)`` → ``(loss, [gradient or None per trainable weight])``: the gradient of the
    model's compiled loss plus its regularization losses on ``batch``, compiled once.

    ``None`` marks a weight the loss does not depend on (TensorFlow, PyTorch); JAX gives zeros.
    """

    def __init__(self, model: keras.Model) -> None:
        self.model = model
        self.variables = list(model.trainable_variables)
        self._loss_takes_training = "training" in inspect.signature(model.compute_loss).parameters
        self._step = compiled(model, self._loss_and_gradients)

    def loss(self, values: Sequence[Any], x: Any, y: Any, sample_weight: Any) -> Any:
        """The training loss with the trainable weights set to ``values``; runs stateless."""
        mapping = list(zip(self.variables, values, strict=True))
        with keras.StatelessScope(state_mapping=mapping, collect_losses=True):
            y_pred = self.model(x, training=True)
            extra = {"training": True} if self._loss_takes_training else {}
            return self.model.compute_loss(x, y, y_pred, sample_weight, **extra)

    def _loss_and_gradients(self, x: Any, y: Any, sample_weight: Any) -> tuple[Any, list[Any]]:
        values = [keras.ops.convert_to_tensor(v.value) for v in self.variables]
        return value_and_gradients(lambda v: self.loss(v, x, y, sample_weight), values)

    def __call__(self, batch: LabelledBatch) -> tuple[float, list[np.ndarray | None]]:
        x, y = keras.tree.map_structure(keras.ops.convert_to_tensor, (batch.x, batch.y))
        weight = (
            None
            if batch.sample_weight is None
            else keras.ops.convert_to_tensor(batch.sample_weight)
        )
        loss, grads = self._step(x, y, weight)
        present = [g for g in grads if g is not None]
        arrays = iter(output_arrays(present))
        return float(keras.ops.convert_to_numpy(loss)), [
            None if g is None else next(arrays) for g in grads
        ]


def check_loss_on(model: keras.Model, batch: LabelledBatch) -> None:
    """Build the model and its compiled loss on two examples of ``batch`` (eagerly, stateless),
    or ``ValueError`` saying why ``y`` or ``sample_weight`` cannot feed the loss."""
    if not getattr(model, "compiled", False):
        raise ValueError(
            "The model is not compiled: the gradients are those of its compiled loss. Call "
            "model.compile(optimizer=..., loss=...) first."
        )
    leaf = keras.tree.flatten(batch.x)[0]
    ensure_built(model, tuple(leaf.shape))
    check_batch_fits_model(batch, model)
    head = batch.head(2)
    try:
        GradientPass(model).loss(
            [v.value for v in model.trainable_variables], head.x, head.y, head.sample_weight
        )
    except Exception as err:
        raise ValueError(
            f"The model's loss could not be computed on the batch ({type(err).__name__}: {err}). "
            "Pass batch=(x, y) or (x, y, sample_weight) as model.fit takes them: y shaped like "
            "the labels the compiled loss expects."
        ) from err


def layer_gradients(
    model: keras.Model, x: Any, y: Any, sample_weight: Any = None, layers: LayerSelection = None
) -> dict[str, dict[str, np.ndarray]]:
    """``{layer: {weight name: float32 gradient}}`` of the compiled loss (with regularization)
    on ``(x, y)``, layers in forward order; the model and its optimizer are left as they were.
    A weight the loss does not reach gets zeros."""
    batch = check_batch((x, y) if sample_weight is None else (x, y, sample_weight))
    check_loss_on(model, batch)
    _, found = GradientPass(model)(batch)
    shapes = [tuple(v.shape) for v in model.trainable_variables]
    grads = [
        np.zeros(s, np.float32) if g is None else g for s, g in zip(shapes, found, strict=True)
    ]
    return {
        group.name: {name: grads[i] for name, i in zip(group.weights, group.indices, strict=True)}
        for group in trainable_layers(model, layers)
    }


def gradient_flow(
    model: keras.Model, x: Any, y: Any, sample_weight: Any = None, layers: LayerSelection = None
) -> np.ndarray:
    """The gradient-flow picture of :func:`layer_gradients`: per layer, mean and max |g| on a log
    axis, layers in forward order top to bottom; uint8 ``(H, W, 3)``."""
    from vizcallbacks.render.gradient_flow import gradient_flow_image

    found = layer_gradients(model, x, y, sample_weight, layers)
    flat = {layer: np.concatenate([g.ravel() for g in w.values()]) for layer, w in found.items()}
    return gradient_flow_image(
        list(flat),
        [float(np.abs(g).mean()) for g in flat.values()],
        [float(np.abs(g).max()) for g in flat.values()],
    )
