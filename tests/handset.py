"""Test models with hand-set weights, whose outputs can be written down on paper (as Captum's
``basic_models.py``): one place, so every test that needs a known answer builds it the same way."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

# A bright 3x3 square on a dark 8x8 image.
SQUARE = np.zeros((1, 8, 8, 1), dtype=np.float32)
SQUARE[0, 2:5, 2:5, 0] = 1.0

# The two filters of linear_1x1: filter f computes x · W_f per pixel.
W0 = np.array([1.0, 2.0, 2.0])  # RMS √3
W1 = np.array([0.0, 0.0, -1.0])  # RMS 1/√3


def square_detector(head: str = "softmax") -> keras.Model:
    """Box-filter conv (kernel 1/9, same padding, ReLU) → global mean → Dense.

    Softmax head: logits (-mean, +mean), class 1 = "bright". Sigmoid head: one unit, logit = mean.
    """
    inputs = keras.Input((8, 8, 1))
    conv = layers.Conv2D(1, 3, padding="same", activation="relu", name="box")
    x = layers.GlobalAveragePooling2D(name="gap")(conv(inputs))
    units = 2 if head == "softmax" else 1
    dense = layers.Dense(units, activation=head, name="head")
    model = keras.Model(inputs, dense(x))
    conv.set_weights([np.full((3, 3, 1, 1), 1 / 9, np.float32), np.zeros(1, np.float32)])
    kernel = np.array([[-1.0, 1.0]] if units == 2 else [[1.0]], np.float32)
    dense.set_weights([kernel, np.zeros(units, np.float32)])
    return model


def box_filter(image: np.ndarray) -> np.ndarray:
    """The 3x3 mean with zero padding, written out: what the conv layer computes."""
    padded = np.pad(image, 1)
    out = np.zeros_like(image)
    for i in range(image.shape[0]):
        for j in range(image.shape[1]):
            out[i, j] = padded[i : i + 3, j : j + 3].sum() / 9
    return out


def pooled_detector() -> keras.Model:
    """4x4 input → identity 1x1 conv → 2x2 max pool → global mean → one sigmoid unit (w = 1)."""
    model = keras.Sequential(
        [
            keras.Input((4, 4, 1)),
            layers.Conv2D(1, 1, activation="relu", name="identity"),
            layers.MaxPooling2D(name="pool"),
            layers.GlobalAveragePooling2D(name="gap"),
            layers.Dense(1, activation="sigmoid", name="head"),
        ]
    )
    model.get_layer("identity").set_weights([np.ones((1, 1, 1, 1)), np.zeros(1)])
    model.get_layer("head").set_weights([np.ones((1, 1)), np.zeros(1)])
    return model


def linear_1x1() -> keras.Model:
    """A 1x1 conv without activation on 4x4 RGB images: filter f computes x · W_f per pixel."""
    model = keras.Sequential([keras.Input((4, 4, 3)), layers.Conv2D(2, 1, name="mix")])
    model.layers[0].set_weights([np.stack([W0, W1], -1)[None, None], np.zeros(2)])
    return model


def edge_detectors() -> keras.Model:
    """Filter 0 is a vertical-edge detector (Prewitt), filter 1 the same kernel transposed."""
    vertical = np.array([[-1.0, 0.0, 1.0]] * 3)
    model = keras.Sequential(
        [keras.Input((16, 16, 1)), layers.Conv2D(2, 3, activation="relu", name="edges")]
    )
    model.layers[0].set_weights([np.stack([vertical, vertical.T], -1)[:, :, None], np.zeros(2)])
    return model


# A 16x16 step image: left half dark, right half bright (columns 8..15 are 1).
STEP = np.zeros((16, 16, 1), dtype=np.float32)
STEP[:, 8:, 0] = 1.0


def frozen_edge_and_ramp(classes: int = 10) -> keras.Model:
    """A frozen 3x3 'valid' conv, no bias, no activation, over 16x16 images, with a trainable head.

    Filter 0 is the vertical-edge kernel ``[[-1, 0, 1]] * 3``: on STEP its 14x14 map is 3 at
    columns 6 and 7 (the windows that straddle the step) and 0 elsewhere. Filter 1 sums the 3x3
    window: 3 times the bright columns in it, ``[0]*6 + [3, 6] + [9]*6`` on every row.
    """
    inputs = keras.Input((16, 16, 1))
    conv = layers.Conv2D(2, 3, use_bias=False, trainable=False, name="edges")
    x = layers.Flatten(name="flat")(conv(inputs))
    model = keras.Model(inputs, layers.Dense(classes, activation="softmax", name="head")(x))
    vertical = np.array([[-1.0, 0.0, 1.0]] * 3)
    conv.set_weights([np.stack([vertical, np.ones((3, 3))], -1)[:, :, None].astype("float32")])
    return model


# --- Attribution: models whose attributions are written down on paper ----------------------

# The weights of linear_scorer: logit of class 1 = w · x (class 0 = -w · x), on 4x4 grey images.
LINEAR_W = np.arange(-8.0, 8.0, dtype=np.float32).reshape(4, 4) / 4.0


def linear_scorer(head: str = "softmax") -> keras.Model:
    """Flatten → Dense: softmax logits ``(-w·x, w·x)``; sigmoid head: one unit, logit ``w·x``."""
    units = 2 if head == "softmax" else 1
    inputs = keras.Input((4, 4, 1))
    dense = layers.Dense(units, activation=head, name="head")
    model = keras.Model(inputs, dense(layers.Flatten(name="flat")(inputs)))
    w = LINEAR_W.reshape(16, 1)
    dense.set_weights([np.concatenate([-w, w], 1) if units == 2 else w, np.zeros(units)])
    return model


# The 4x4 square of square_sum's score: rows and columns 2..5 of an 8x8 image.
SUM_SQUARE = np.zeros((8, 8), dtype=np.float32)
SUM_SQUARE[2:6, 2:6] = 1.0


def square_sum() -> keras.Model:
    """One sigmoid unit whose logit is the sum of the pixels inside SUM_SQUARE."""
    inputs = keras.Input((8, 8, 1))
    dense = layers.Dense(1, activation="sigmoid", name="head")
    model = keras.Model(inputs, dense(layers.Flatten(name="flat")(inputs)))
    dense.set_weights([SUM_SQUARE.reshape(64, 1), np.zeros(1)])
    return model


# The logit weight of each position of position_weighted's one-channel map (some negative).
POSITION_V = np.array(
    [[1.0, 2.0, -1.0, 0.5], [0.0, 3.0, 1.0, -2.0], [1.0, 1.0, 1.0, 1.0], [-1.0, 0.5, 2.0, 4.0]],
    dtype=np.float32,
)


def position_weighted() -> keras.Model:
    """4x4 grey input → identity 1x1 conv with ReLU (one channel, A = x for x ≥ 0) → Flatten →
    one sigmoid unit, logit ``sum_ij v_ij A_ij``: d logit / d A = POSITION_V."""
    inputs = keras.Input((4, 4, 1))
    conv = layers.Conv2D(1, 1, activation="relu", name="identity")
    dense = layers.Dense(1, activation="sigmoid", name="head")
    model = keras.Model(inputs, dense(layers.Flatten(name="flat")(conv(inputs))))
    conv.set_weights([np.ones((1, 1, 1, 1)), np.zeros(1)])
    dense.set_weights([POSITION_V.reshape(16, 1), np.zeros(1)])
    return model


# Two channels on 4x4 images: channel 0 lights a 2x2 square, channel 1 two pixels.
REGION_0 = np.zeros((4, 4), dtype=np.float32)
REGION_0[:2, :2] = 1.0
REGION_1 = np.zeros((4, 4), dtype=np.float32)
REGION_1[3, 2:] = 1.0
TWO_REGIONS = np.stack([REGION_0, REGION_1], -1)[None]  # (1, 4, 4, 2)


def two_channel_scorer() -> keras.Model:
    """(4, 4, 2) input → identity 1x1 conv with ReLU (A_k = x_k) → global mean → softmax over two
    classes with logits ``4 · mean(A_0)`` and ``4 · mean(A_1)``."""
    inputs = keras.Input((4, 4, 2))
    conv = layers.Conv2D(2, 1, activation="relu", name="identity")
    dense = layers.Dense(2, activation="softmax", name="head")
    model = keras.Model(inputs, dense(layers.GlobalAveragePooling2D(name="gap")(conv(inputs))))
    conv.set_weights([np.eye(2)[None, None], np.zeros(2)])
    dense.set_weights([4.0 * np.eye(2), np.zeros(2)])
    return model
