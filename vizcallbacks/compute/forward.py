"""One forward pass that records the outputs of chosen layers, nested models included.

Keras offers ``keras.Model(model.inputs, layer.output)`` for this, but it cannot reach layers of a
nested model (a ``keras.applications`` base inside a ``Sequential``), and a ``Sequential`` built
without ``Input`` has no symbolic outputs at all. Running the layers ourselves works for both and
the same code serves Grad-CAM, which needs gradients through the recorded tensors.
"""

from __future__ import annotations

import functools
from collections.abc import Collection
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from vizcallbacks.compute.layers import LayerRef, is_container, is_traceable

__all__ = ["ActivationExtractor", "final_squashing", "record_forward"]

_SQUASHING = ("softmax", "sigmoid")


def _pre_activation(layer: keras.layers.Layer, inputs: Any) -> Any | None:
    """The logits of a final softmax/sigmoid layer, or None when the layer is not one."""
    if isinstance(layer, keras.layers.Softmax):  # keras.layers.Softmax has no .activation
        return inputs if layer.axis in (-1, len(inputs.shape) - 1) else None
    activation = getattr(layer, "activation", None)
    name = getattr(activation, "__name__", "")
    if name not in _SQUASHING:
        return None
    if isinstance(layer, keras.layers.Activation):
        return inputs
    if isinstance(layer, keras.layers.Dense):
        logits = keras.ops.matmul(inputs, layer.kernel)
        return logits + layer.bias if layer.use_bias else logits
    return None


def record_forward(
    model: keras.layers.Layer,
    inputs: Any,
    wanted: Collection[int],
    record: dict[int, Any],
    logits: bool = False,
) -> Any:
    """Run ``model`` on ``inputs`` in inference mode, storing outputs of the wanted layers by id.

    With ``logits=True`` the model's final softmax/sigmoid is skipped (Grad-CAM needs the score
    before squashing). Returns the model's output.
    """
    # Inside an outer scope a layer may be named ">c1" or "-c1" (TensorFlow refuses those as
    # root scope names, and a traced function has no other scope around it).
    with keras.name_scope("vizcallbacks"):
        return _replay(model, inputs, wanted, record, logits)


def _replay(
    model: keras.layers.Layer,
    inputs: Any,
    wanted: Collection[int],
    record: dict[int, Any],
    logits: bool,
) -> Any:
    output_layer = _output_layer(model) if logits else None

    def call(layer: keras.layers.Layer, *args: Any, **kwargs: Any) -> Any:
        if is_container(layer):
            out = _replay(layer, args[0], wanted, record, logits and layer is output_layer)
        elif layer is output_layer and (pre := _pre_activation(layer, args[0])) is not None:
            out = pre
        else:
            if isinstance(layer, keras.layers.Layer):
                # Layers take `training` (Keras drops it for those whose call() does not); the
                # keras.ops operations that `x + y` or `x * 0.5` put in a graph do not.
                kwargs["training"] = False
            out = layer(*args, **kwargs)
        if id(layer) in wanted:
            record[id(layer)] = out
        return out

    if isinstance(model, keras.Sequential):
        x = inputs
        for layer in model.layers:
            if not isinstance(layer, keras.layers.InputLayer):
                x = call(layer, x)
        return x
    if isinstance(model, keras.Model):
        if not is_traceable(model):
            raise ValueError(_subclassed_message(model))
        return model._run_through_graph(inputs, operation_fn=lambda op: functools.partial(call, op))
    return call(model, inputs)


def final_squashing(model: keras.layers.Layer) -> str | None:
    """``"softmax"``/``"sigmoid"``: what ``record_forward(..., logits=True)`` skips, else None."""
    layer = _output_layer(model)
    while layer is not None and is_container(layer):
        layer = _output_layer(layer)
    if layer is None:
        return None
    if isinstance(layer, keras.layers.Softmax):
        return "softmax" if layer.axis == -1 else None
    if not isinstance(layer, (keras.layers.Activation, keras.layers.Dense)):
        return None
    name = getattr(getattr(layer, "activation", None), "__name__", "")
    return name if name in _SQUASHING else None


def _output_layer(model: keras.layers.Layer) -> keras.layers.Layer | None:
    """The layer that produces the model's output (the last one for Sequential)."""
    if isinstance(model, keras.Sequential):
        layers = [la for la in model.layers if not isinstance(la, keras.layers.InputLayer)]
        return layers[-1] if layers else None
    if isinstance(model, keras.Model) and hasattr(model, "_run_through_graph"):
        history = getattr(model.outputs[0], "_keras_history", None)
        return history.operation if history is not None else None
    return None


def _subclassed_message(model: keras.layers.Layer) -> str:
    return (
        f"Model {model.name!r} ({type(model).__name__}) is a subclassed model: its call() is "
        "Python code, so the outputs of its inner layers cannot be reached from outside. "
        "Activation grids and Grad-CAM need a Sequential or Functional model (rebuild it with "
        "keras.Input and the functional API); FilterLogger works on any model."
    )


class ActivationExtractor:
    """Outputs of the chosen layers for a batch of images, from one compiled forward pass.

    Built once per training run; the ``tf.function`` is traced on the first call and reused for
    every later batch of the same shape, so weights are read fresh but nothing is rebuilt.
    """

    def __init__(self, model: keras.Model, refs: list[LayerRef]) -> None:
        if not is_traceable(model):
            raise ValueError(_subclassed_message(model))
        self.model = model
        self.refs = refs
        wanted = {id(ref.layer) for ref in refs}

        def forward(images: tf.Tensor) -> dict[str, tf.Tensor]:
            record: dict[int, Any] = {}
            record_forward(model, images, wanted, record)
            return {ref.name: record[id(ref.layer)] for ref in refs if id(ref.layer) in record}

        self._forward = tf.function(forward, reduce_retracing=True, autograph=False)

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """``images`` ``(N, H, W, C)`` → ``{layer name: float32 array (N, ...)}``."""
        outputs = self._forward(tf.convert_to_tensor(images, dtype=tf.float32))
        return {
            name: np.asarray(value, dtype=np.float32)
            for name, value in outputs.items()
            if isinstance(value, tf.Tensor)
        }
