"""Tiny real models of every kind the loggers must handle."""

from __future__ import annotations

import keras
from keras import layers


def sequential_without_input() -> keras.Model:
    return keras.Sequential(
        [
            layers.Conv2D(6, 3, activation="relu", name="conv_a"),
            layers.MaxPooling2D(name="pool_a"),
            layers.Flatten(name="flat"),
            layers.Dense(10, activation="softmax", name="probs"),
        ]
    )


def functional(shape: tuple[int, ...] = (16, 16, 1)) -> keras.Model:
    inputs = keras.Input(shape)
    x = layers.Conv2D(4, 3, padding="same", name="conv_a")(inputs)
    x = layers.BatchNormalization(name="bn_a")(x)
    x = layers.Activation("relu", name="relu_a")(x)
    x = layers.MaxPooling2D(name="pool_a")(x)
    x = layers.Conv2D(8, 3, activation="relu", name="conv_b")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, layers.Dense(10, activation="softmax", name="probs")(x))


def nested(shape: tuple[int, ...] = (16, 16, 1)) -> keras.Model:
    base = keras.Sequential(
        [
            keras.Input(shape),
            layers.Conv2D(4, 3, activation="relu", name="conv_a"),
            layers.Conv2D(4, 3, activation="relu", name="conv_b"),
        ],
        name="base",
    )
    return keras.Sequential(
        [
            base,
            layers.GlobalAveragePooling2D(name="gap"),
            layers.Dense(10, activation="softmax", name="probs"),
        ]
    )


def compiled(model: keras.Model) -> keras.Model:
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def tensor_arithmetic_residual(shape: tuple[int, ...] = (16, 16, 1)) -> keras.Model:
    """A residual block written as tensor arithmetic: ``x + shortcut`` and ``x * 0.5`` become
    ``keras.ops`` operations in the graph, not layers (they take no ``training`` argument)."""
    inputs = keras.Input(shape)
    shortcut = layers.Conv2D(4, 1, name="proj")(inputs)
    x = layers.Conv2D(4, 3, padding="same", activation="relu", name="conv_a")(inputs)
    x = layers.Conv2D(4, 3, padding="same", name="conv_b")(x)
    x = (x + shortcut) * 0.5
    x = keras.ops.relu(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, layers.Dense(10, activation="softmax", name="probs")(x))
