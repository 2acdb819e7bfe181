"""Every attribution method on every kind of model (Sequential, nested, sigmoid binary, mixed
precision), the model left unchanged; a plain tf.GradientTape reference; and tf-keras-vis'
Saliency, Grad-CAM++, Score-CAM and LayerCAM on the same Functional model."""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

import vizcallbacks as vc
from tests import models
from vizcallbacks.compute.attribution.methods import ALL_METHODS, build_method, method_options
from vizcallbacks.compute.layers import all_layers


def _binary(shape: tuple[int, ...] = (16, 16, 1)) -> keras.Model:
    inputs = keras.Input(shape)
    x = layers.Conv2D(4, 3, activation="relu", name="conv_a")(inputs)
    x = layers.MaxPooling2D(name="pool_a")(x)
    x = layers.Conv2D(8, 3, activation="relu", name="conv_b")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, layers.Dense(1, activation="sigmoid", name="prob")(x))


KINDS: dict[str, Callable[[], keras.Model]] = {
    "sequential_without_input": models.sequential_without_input,
    "nested": models.nested,
    "functional": models.functional,
    "binary_sigmoid": _binary,
}


def _state(model: keras.Model) -> tuple[list[np.ndarray], list, list]:
    everything = [model, *(layer for _, layer in all_layers(model))]
    return (
        [np.array(w) for w in model.weights],
        [(la.name, la.trainable) for la in everything],
        [la.dtype_policy.name for la in everything],
    )


def _all_maps(model: keras.Model, images: np.ndarray) -> dict[str, np.ndarray]:
    options = method_options(ALL_METHODS, images)
    return {
        name: build_method(name, opts, model, images, None, None)(images, None).heatmaps
        for name, opts in options.items()
    }


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_method_on_every_model_kind(kind: str, digits) -> None:
    model = KINDS[kind]()
    images = digits[0][:3]
    if not model.built:
        model.build((None, *images.shape[1:]))
    before = _state(model)
    maps = _all_maps(model, images)
    for name, heatmaps in maps.items():
        assert heatmaps.shape == (3, 16, 16) and heatmaps.dtype == np.float32, name
        assert np.isfinite(heatmaps).all() and heatmaps.min() >= 0 and heatmaps.max() <= 1, name
        peaks = heatmaps.max(axis=(1, 2))  # 0: no positive evidence in that image (ReLU)
        assert np.all(np.isclose(peaks, 1.0) | (peaks == 0.0)), name
    after = _state(model)
    assert all(np.array_equal(a, b) for a, b in zip(before[0], after[0], strict=True))
    assert before[1:] == after[1:]


def test_every_method_under_mixed_precision(digits) -> None:
    images = digits[0][:3]
    mixed, reference = models.mixed_and_reference()
    assert mixed.get_layer("conv_b").compute_dtype == "float16"
    expected = _all_maps(reference, images)
    before = _state(mixed)
    for name, heatmaps in _all_maps(mixed, images).items():
        assert heatmaps.dtype == np.float32 and np.isfinite(heatmaps).all(), name
        # float16 activations: the maps agree in the large, not to the last bit.
        assert np.abs(heatmaps - expected[name]).mean() < 0.02, name
    assert mixed.dtype_policy.name == "mixed_float16"
    after = _state(mixed)
    assert before[1:] == after[1:]
    assert all(np.array_equal(a, b) for a, b in zip(before[0], after[0], strict=True))


@pytest.mark.tensorflow_only
def test_gradients_match_a_plain_gradient_tape_on_a_nested_model(digits) -> None:
    x, y = digits
    model = models.compiled(models.nested())
    model.fit(x[:64], y[:64], epochs=1, verbose=0)
    images = tf.constant(x[:4])
    base, gap, dense = model.layers
    with tf.GradientTape() as tape:  # written out, independent of vizcallbacks
        tape.watch(images)
        logits = tf.matmul(gap(base(images, training=False)), dense.kernel) + dense.bias
        classes = tf.argmax(logits, axis=-1)
        score = tf.reduce_sum(tf.gather(logits, classes, batch_dims=1))
    grads = tape.gradient(score, images).numpy()[..., 0]
    saliency = np.abs(grads) / np.abs(grads).max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(vc.saliency(model, x[:4]), saliency, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        vc.gradients_x_inputs(model, x[:4], signed=True),
        grads * x[:4, ..., 0],
        rtol=1e-4,
        atol=1e-6,
    )


def test_several_outputs_one_explained(digits) -> None:
    model = models.two_outputs()
    images = digits[0][:2]
    for method in (vc.saliency, vc.occlusion_sensitivity, vc.integrated_gradients):
        heatmaps = method(model, images, output="parity")
        assert heatmaps.shape == (2, 16, 16) and np.isfinite(heatmaps).all()
        with pytest.raises(ValueError, match="has 2 outputs; pass output="):
            method(model, images)
    assert vc.score_cam(model, images, output=1).shape == (2, 16, 16)


# --- tf-keras-vis on the same Functional model ------------------------------------------------


def _logit_model() -> keras.Model:
    """'same' convolutions without pooling: the explained layer has the input's size, so neither
    library resizes (tf-keras-vis zooms with scipy, vizcallbacks resizes bilinearly)."""
    inputs = keras.Input((16, 16, 1))
    x = layers.Conv2D(4, 3, padding="same", activation="relu", name="conv_a")(inputs)
    x = layers.Conv2D(6, 3, padding="same", activation="relu", name="conv_b")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, layers.Dense(10, name="logits")(x))  # linear: scores = logits


@pytest.mark.tensorflow_only
def test_agrees_with_tf_keras_vis(digits) -> None:
    pytest.importorskip("tf_keras_vis")
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.layercam import Layercam
    from tf_keras_vis.saliency import Saliency
    from tf_keras_vis.scorecam import Scorecam
    from tf_keras_vis.utils.scores import CategoricalScore

    x, y = digits
    model = _logit_model()
    model.compile(
        optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    model.fit(x[:128], y[:128], epochs=2, verbose=0)
    images = x[:4]
    classes = np.asarray(model(images)).argmax(-1)
    score = CategoricalScore(classes.tolist())

    def peak(maps: np.ndarray) -> np.ndarray:  # tf-keras-vis unnormalized → divided by max
        maps = np.asarray(maps, dtype=np.float64)
        return maps / maps.max(axis=(1, 2), keepdims=True)

    theirs = Saliency(model)(score, images, normalize_map=False)
    np.testing.assert_allclose(vc.saliency(model, images), peak(theirs), rtol=1e-4, atol=1e-5)
    cam = {"penultimate_layer": "conv_b", "normalize_cam": False}
    theirs = GradcamPlusPlus(model)(score, images, **cam)
    np.testing.assert_allclose(
        vc.grad_cam_plus_plus(model, images), peak(theirs), rtol=1e-4, atol=1e-5
    )
    theirs = Layercam(model)(score, images, **cam)
    np.testing.assert_allclose(vc.layer_cam(model, images), peak(theirs), rtol=1e-4, atol=1e-5)
    theirs = Scorecam(model)(score, images, **cam)
    np.testing.assert_allclose(vc.score_cam(model, images), peak(theirs), rtol=1e-3, atol=1e-4)
    one = CategoricalScore(classes[:1].tolist())  # one image: both keep the same channels
    theirs = Scorecam(model)(one, images[:1], max_N=3, **cam)
    np.testing.assert_allclose(
        vc.score_cam(model, images[:1], top_k=3),
        peak(theirs[None] if theirs.ndim == 2 else theirs),
        rtol=1e-3,
        atol=1e-4,
    )
