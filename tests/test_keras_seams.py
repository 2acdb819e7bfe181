"""The Keras internals vizcallbacks relies on (compute/keras_seams.py), checked one by one against
the installed Keras: a release that changes one fails here, naming the seam and the version."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
import pytest

from tests import models
from vizcallbacks.compute import keras_seams
from vizcallbacks.compute.keras_seams import (
    SEAMS,
    is_keras_layer,
    kept_on,
    restore_call,
    swap_call,
    tracked_sublayers,
)


@contextlib.contextmanager
def seam(name: str) -> Iterator[None]:
    """Fail with the seam's name, what vizcallbacks relies on and the Keras version."""
    try:
        yield
    except Exception as err:
        pytest.fail(
            f"Keras seam {name!r} no longer holds in Keras {keras.__version__}: vizcallbacks "
            f"relies on: {SEAMS[name]}. Update vizcallbacks/compute/keras_seams.py. ({err!r})",
            pytrace=False,
        )


class Pair(keras.layers.Layer):
    """A block holding two layers, in the order they were set."""

    def __init__(self) -> None:
        super().__init__(name="pair")
        self.second = keras.layers.Dense(2, name="second")
        self.first = keras.layers.Dense(2, name="first")

    def call(self, x):
        return self.second(self.first(x))


def test_tracked_sublayers() -> None:
    with seam("tracked_sublayers"):
        assert [la.name for la in tracked_sublayers(Pair())] == ["second", "first"]
        inner = keras.layers.Conv2D(2, 3, name="conv")
        assert tracked_sublayers(keras.layers.TimeDistributed(inner)) == [inner]
        both = keras.layers.Bidirectional(keras.layers.LSTM(2, name="lstm"))
        assert {la.name for la in tracked_sublayers(both)} == {"forward_lstm", "backward_lstm"}
        assert tracked_sublayers(keras.layers.Dense(2)) == []


def test_is_keras_layer() -> None:
    with seam("is_keras_layer"):
        shipped = [keras.layers.Conv2D(1, 1), keras.layers.MultiHeadAttention(1, 2)]
        assert all(is_keras_layer(layer) for layer in shipped)
        assert not is_keras_layer(Pair()) and not is_keras_layer(models.ResidualBlock(2))


def test_swap_call() -> None:
    layer = keras.layers.Dense(1, kernel_initializer="ones", bias_initializer="zeros")
    x = np.ones((1, 2), "float32")
    seen = []

    def recording(*args, **kwargs):
        out = type(layer).call(layer, *args, **kwargs)
        seen.append(out)
        return out

    with seam("swap_call"):
        before = swap_call(layer, recording)
        assert float(layer(x)[0, 0]) == 2.0 and len(seen) == 1
        assert "call" in vars(layer) and tracked_sublayers(layer) == []  # not tracked
        restore_call(layer, before)
        assert "call" not in vars(layer)
        layer(x)
        assert len(seen) == 1  # the class's call again


def test_kept_on() -> None:
    model = models.functional()
    config = model.get_config()
    weights = len(model.weights)
    with seam("kept_on"):
        kept = kept_on(model, "_vizcallbacks_seam", lambda: {"a": np.zeros(3)})
        assert kept_on(model, "_vizcallbacks_seam", dict) is kept
        assert model.get_config() == config and len(model.weights) == weights


def test_shared_output() -> None:
    """A nested Functional model's output is its last layer's output tensor, call by call."""
    from vizcallbacks.compute.forward import record_forward

    model = models.nested()
    with seam("shared_output"):
        calls = record_forward(model, keras.ops.zeros((1, 16, 16, 1))).calls
        base = model.get_layer("base")
        assert calls[id(base)][0] is calls[id(base.get_layer("conv_b"))][0]


def test_kernel_layouts() -> None:
    cases = {
        keras.layers.Conv2D(5, (2, 3)): (2, 3, 4, 5),
        keras.layers.Conv2DTranspose(5, (2, 3)): (2, 3, 5, 4),
        keras.layers.Conv1D(5, 3): (3, 4, 5),
        keras.layers.Conv3D(5, (1, 2, 3)): (1, 2, 3, 4, 5),
        keras.layers.DepthwiseConv2D((2, 3), depth_multiplier=5): (2, 3, 4, 5),
    }
    with seam("kernel_layouts"):
        for data_format in ("channels_last", "channels_first"):
            for layer, shape in cases.items():
                config = {**layer.get_config(), "data_format": data_format}
                layer = type(layer).from_config(config)
                space = (8,) * (len(shape) - 2)
                first = data_format == "channels_first"
                layer.build((1, 4, *space) if first else (1, *space, 4))
                assert tuple(layer.kernel.shape) == shape, (type(layer).__name__, data_format)


def test_every_seam_is_checked() -> None:
    """A seam added to SEAMS without a check in this file fails here."""
    checked = set(re.findall(r'seam\("(\w+)"\)', Path(__file__).read_text(encoding="utf-8")))
    assert checked == set(SEAMS), checked ^ set(SEAMS)
    assert set(keras_seams.__all__) - {"SEAMS", "restore_call"} <= set(SEAMS)
