"""Tiny real models of every kind the loggers must handle."""

from __future__ import annotations

from collections.abc import Callable

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


def mixed_and_reference(
    build: Callable[[], keras.Model] = functional,
) -> tuple[keras.Model, keras.Model]:
    """The same model built under mixed_float16 and under float32, with the same weights."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        mixed = build()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    reference = build()
    reference.set_weights(mixed.get_weights())
    return mixed, reference


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


class SubclassedNet(keras.Model):
    """A model whose forward pass is Python code: its layers are attributes."""

    def __init__(self) -> None:
        super().__init__(name="subclassed_net")
        self.conv_a = layers.Conv2D(4, 3, padding="same", activation="relu", name="conv_a")
        self.conv_b = layers.Conv2D(6, 3, activation="relu", name="conv_b")
        self.gap = layers.GlobalAveragePooling2D(name="gap")
        self.probs = layers.Dense(10, activation="softmax", name="probs")

    def call(self, x):
        return self.probs(self.gap(self.conv_b(self.conv_a(x) * 2.0)))


@keras.saving.register_keras_serializable("vizcallbacks_tests")
class ResidualBlock(layers.Layer):
    """A user-written block holding two convolutions and a residual sum."""

    def __init__(self, filters: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.first = layers.Conv2D(filters, 3, padding="same", activation="relu", name="first")
        self.second = layers.Conv2D(filters, 3, padding="same", name="second")

    def call(self, x):
        return keras.ops.relu(x + self.second(self.first(x)))


def functional_with_block(shape: tuple[int, ...] = (16, 16, 1)) -> keras.Model:
    inputs = keras.Input(shape)
    x = layers.Conv2D(4, 3, padding="same", name="stem")(inputs)
    x = ResidualBlock(4, name="block")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, layers.Dense(10, activation="softmax", name="probs")(x))


def shared_layer(shape: tuple[int, ...] = (16, 16, 1)) -> keras.Model:
    """One convolution applied twice (shared weights)."""
    inputs = keras.Input(shape)
    x = layers.Conv2D(4, 3, padding="same", activation="relu", name="stem")(inputs)
    shared = layers.Conv2D(4, 3, padding="same", activation="relu", name="shared")
    x = shared(shared(x))
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, layers.Dense(10, activation="softmax", name="probs")(x))


def two_inputs(shape: tuple[int, ...] = (16, 16, 1)) -> keras.Model:
    image = keras.Input(shape, name="image")
    extra = keras.Input((3,), name="extra")
    x = layers.Conv2D(4, 3, activation="relu", name="conv_a")(image)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Concatenate(name="join")([x, layers.Dense(4, name="extra_dense")(extra)])
    return keras.Model([image, extra], layers.Dense(10, activation="softmax", name="probs")(x))


def two_outputs(shape: tuple[int, ...] = (16, 16, 1)) -> keras.Model:
    inputs = keras.Input(shape)
    x = layers.Conv2D(4, 3, activation="relu", name="conv_a")(inputs)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    digit = layers.Dense(10, activation="softmax", name="digit")(x)
    parity = layers.Dense(2, activation="softmax", name="parity")(x)
    return keras.Model(inputs, [digit, parity])
