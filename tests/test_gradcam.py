"""Grad-CAM: hand-set models with heatmaps written down, an independent GradientTape computation
on trained models, mixed precision, the model left untouched, and the callback's event files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

import vizcallbacks as vc
from tests import handset, models
from tests.events import read_events, tag_steps
from vizcallbacks.callbacks.gradcam import GradCAMLogger
from vizcallbacks.compute.attribution.cams import GradCAM
from vizcallbacks.compute.attribution.notebook import grad_cam
from vizcallbacks.render.overlay import enlarge, heatmap_image, image_to_rgb, overlay_heatmap


def test_bright_square_heatmap_by_hand() -> None:
    model = handset.square_detector()
    # d score_1 / dA = +1/64 everywhere (global mean, weight +1), so the map is A itself, A ≥ 0,
    # already at input resolution: heatmap = A / max(A).
    box = handset.box_filter(handset.SQUARE[0, ..., 0])
    expected = box / box.max()
    heatmap = grad_cam(model, handset.SQUARE)
    np.testing.assert_allclose(heatmap[0], expected, rtol=1e-5, atol=1e-6)
    assert heatmap.dtype == np.float32 and heatmap.shape == (1, 8, 8)
    assert np.unravel_index(heatmap[0].argmax(), (8, 8)) == (3, 3)  # the square's centre
    assert heatmap[0, 6:, :].max() == 0.0 and heatmap[0, :, 6:].max() == 0.0  # dark background
    # Class 0 ("dark") has weight -1: ReLU(-A/64) = 0, a blank map without NaN.
    np.testing.assert_array_equal(
        grad_cam(model, handset.SQUARE, class_index=0), np.zeros((1, 8, 8))
    )


def test_upsampled_heatmap_and_binary_sigmoid_by_hand() -> None:
    model = handset.pooled_detector()
    image = np.zeros((1, 4, 4, 1), np.float32)
    image[0, :2, :2, 0] = 1.0  # bright top-left quadrant: pooled map [[1, 0], [0, 0]]
    # Bilinear 2x upsampling with half-pixel centres samples the 2x2 map at -0.25, 0.25, 0.75,
    # 1.25 (clamped): weights of the first source row/column are 1, 3/4, 1/4, 0.
    weights = np.array([1.0, 0.75, 0.25, 0.0])
    cam = GradCAM(model, image_shape=(4, 4, 1))
    assert cam.layer_name == "pool"  # the last 4-D layer before the classifier
    result = cam(image)
    np.testing.assert_allclose(result.heatmaps[0], np.outer(weights, weights), atol=1e-6)
    # One sigmoid unit: logit = mean of the pooled map = 1/4, predicted class 1.
    assert result.predicted.tolist() == [1] and result.class_index.tolist() == [1]
    np.testing.assert_allclose(result.probability, [1 / (1 + np.exp(-0.25))], rtol=1e-6)
    # Class 0 is negative evidence, score -logit: nothing in the image argues for it.
    negative = cam(image, class_index=0)
    np.testing.assert_array_equal(negative.heatmaps, np.zeros((1, 4, 4)))
    np.testing.assert_allclose(negative.class_probability, [1 / (1 + np.exp(0.25))], rtol=1e-6)
    # Asking for the conv layer (4x4, no upsampling) gives the quadrant itself.
    np.testing.assert_allclose(
        grad_cam(model, image, layer="identity")[0], image[0, ..., 0], atol=1e-6
    )


def test_overlay_pixels_by_hand() -> None:
    image = np.array([[0.0, 1.0], [0.5, 0.25]], np.float32)[..., None]  # in [0, 1]: kept as is
    heatmap = np.array([[0.0, 1.0], [1.0, 0.0]], np.float32)
    # gray colormap: 0 → 0, 1 → 255; pixels round(255·image) = 0, 255, 128, 64 (half to even).
    # round(0.75·pixel + 0.25·heat): 0, 255, round(96 + 63.75) = 160, 48.
    out = overlay_heatmap(image, heatmap, cmap="gray", alpha=0.25)
    assert out.dtype == np.uint8 and out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out[..., 0], [[0, 255], [160, 48]])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    # alpha 0 is the image, alpha 1 the coloured heatmap.
    np.testing.assert_array_equal(
        overlay_heatmap(image, heatmap, alpha=0.0)[..., 1], image_to_rgb(image)[..., 1]
    )
    np.testing.assert_array_equal(
        overlay_heatmap(image, heatmap, alpha=1.0), heatmap_image(heatmap)
    )
    # uint8 images are kept; other ranges are min-max scaled; RGB passes through unchanged.
    np.testing.assert_array_equal(image_to_rgb(np.uint8([[7]]))[0, 0], [7, 7, 7])
    np.testing.assert_array_equal(image_to_rgb(np.array([[-2.0, 2.0]]))[0, :, 0], [0, 255])
    rgb = np.random.default_rng(0).integers(0, 256, (3, 4, 3)).astype(np.uint8)
    np.testing.assert_array_equal(image_to_rgb(rgb), rgb)
    assert heatmap_image(np.array([[np.nan]]))[0, 0].tolist() == [255, 0, 255]
    with pytest.raises(
        ValueError, match=r"heatmap must have the image's height and width \(2, 2\)"
    ):
        overlay_heatmap(image, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="alpha must be a number in"):
        overlay_heatmap(image, heatmap, alpha=1.5)


# --- Independent computation on trained models ------------------------------------------------


def _binary(shape: tuple[int, ...] = (16, 16, 1)) -> keras.Model:
    inputs = keras.Input(shape)
    x = layers.Conv2D(4, 3, activation="relu", name="conv_a")(inputs)
    x = layers.MaxPooling2D(name="pool_a")(x)
    x = layers.Conv2D(8, 3, activation="relu", name="conv_b")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, layers.Dense(1, activation="sigmoid", name="prob")(x))


def _features_and_logits(model: keras.Model, kind: str, images: tf.Tensor, tape) -> tuple:
    """The chosen layer's maps (watched) and the logits, with plain Keras calls per model kind."""
    dense = model.layers[-1]
    if kind == "nested":  # base (conv_a, conv_b) → gap → dense
        maps = model.layers[0](images, training=False)
        tape.watch(maps)
        pooled = model.layers[1](maps)
    elif kind == "sequential_without_input":  # conv_a → pool_a (chosen) → flat → dense
        maps = model.layers[1](model.layers[0](images))
        tape.watch(maps)
        pooled = model.layers[2](maps)
    else:  # functional: conv_b chosen, gap feeds the dense layer
        sub = keras.Model(model.inputs, [model.get_layer("conv_b").output, dense.input])
        maps, pooled = sub(images, training=False)
    return maps, tf.matmul(pooled, dense.kernel) + dense.bias


def _plain_grad_cam(model: keras.Model, kind: str, images: np.ndarray, classes=None) -> np.ndarray:
    """Grad-CAM written out with tf.GradientTape, independent of vizcallbacks."""
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        maps, logits = _features_and_logits(model, kind, x, tape)
        if logits.shape[-1] == 1:  # sigmoid: class 1 = logit, class 0 = -logit
            if classes is None:
                classes = (logits[:, 0] > 0).numpy().astype(int)
            score = tf.reduce_sum(logits[:, 0] * np.where(np.asarray(classes) == 1, 1.0, -1.0))
        else:
            if classes is None:
                classes = tf.argmax(logits, axis=-1).numpy()
            score = tf.reduce_sum(tf.gather(logits, classes, batch_dims=1))
    grads = tape.gradient(score, maps).numpy()
    maps = maps.numpy()
    alpha = grads.mean(axis=(1, 2))  # (N, K)
    cam = np.maximum(np.einsum("nhwk,nk->nhw", maps, alpha), 0.0)
    cam = tf.image.resize(cam[..., None], images.shape[1:3], method="bilinear").numpy()[..., 0]
    peak = cam.max(axis=(1, 2), keepdims=True)
    return np.where(peak > 0, cam / np.where(peak > 0, peak, 1.0), 0.0)


KINDS: dict[str, tuple[Callable[[], keras.Model], str]] = {
    "functional": (models.functional, "conv_b"),
    "nested": (models.nested, "base/conv_b"),
    "sequential_without_input": (models.sequential_without_input, "pool_a"),
    "binary_sigmoid": (_binary, "conv_b"),
}


def _trained(kind: str, digits) -> keras.Model:
    x, y = digits
    model = KINDS[kind][0]()
    if kind == "binary_sigmoid":
        model.compile(optimizer="adam", loss="binary_crossentropy")
        model.fit(x, (y == 0).astype("float32"), epochs=3, batch_size=32, verbose=0)
    else:
        models.compiled(model).fit(x, y, epochs=2, batch_size=32, verbose=0)
    return model


@pytest.mark.tensorflow_only
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_matches_plain_gradient_tape_on_trained_models(kind: str, digits) -> None:
    model = _trained(kind, digits)
    images = digits[0][:6]
    cam = GradCAM(model, image_shape=images.shape[1:])
    assert cam.layer_name == KINDS[kind][1]
    result = cam(images)
    np.testing.assert_allclose(
        result.heatmaps, _plain_grad_cam(model, kind, images), rtol=1e-4, atol=1e-5
    )
    assert result.heatmaps.min() >= 0.0 and result.heatmaps.max() == 1.0
    probs = keras.ops.convert_to_numpy(model(images, training=False))
    if probs.shape[-1] == 1:
        probs = np.concatenate([1 - probs, probs], axis=-1)
    np.testing.assert_array_equal(result.predicted, probs.argmax(-1))
    np.testing.assert_allclose(result.probability, probs.max(-1), rtol=1e-5)
    # Explaining given classes, one per image, also matches.
    classes = np.array([1, 0, 1, 0, 1, 1]) if kind == "binary_sigmoid" else digits[1][:6]
    np.testing.assert_allclose(
        grad_cam(model, images, class_index=classes),
        _plain_grad_cam(model, kind, images, classes),
        rtol=1e-4,
        atol=1e-5,
    )


def test_frozen_base_and_model_left_unchanged(digits) -> None:
    model = _trained("nested", digits)
    images = digits[0][:4]
    before = grad_cam(model, images)
    base = model.layers[0]
    base.trainable = False  # transfer learning: the conv base frozen
    weights = [np.array(w) for w in model.weights]
    flags = [(la.name, la.trainable) for la in [model, *model.layers, *base.layers]]
    policies = [la.dtype_policy.name for la in [model, *model.layers, *base.layers]]
    frozen = grad_cam(model, images)
    np.testing.assert_allclose(frozen, before, rtol=1e-5, atol=1e-6)
    assert all(np.array_equal(w, np.array(v)) for w, v in zip(weights, model.weights, strict=True))
    assert flags == [(la.name, la.trainable) for la in [model, *model.layers, *base.layers]]
    assert policies == [la.dtype_policy.name for la in [model, *model.layers, *base.layers]]
    assert keras.mixed_precision.global_policy().name == "float32"


def test_mixed_precision_model(digits) -> None:
    images = digits[0][:4]
    mixed, reference = models.mixed_and_reference()
    assert mixed.get_layer("conv_b").compute_dtype == "float16"
    expected = grad_cam(reference, images)
    heatmaps = grad_cam(mixed, images)
    assert heatmaps.dtype == np.float32 and np.isfinite(heatmaps).all()
    np.testing.assert_allclose(heatmaps, expected, atol=0.02)
    assert mixed.dtype_policy.name == "mixed_float16"


def test_bad_arguments_are_named() -> None:
    model = handset.square_detector()
    with pytest.raises(ValueError, match=r"class_index must lie in 0\.\.1"):
        grad_cam(model, handset.SQUARE, class_index=2)
    with pytest.raises(ValueError, match="one class per image"):
        grad_cam(model, handset.SQUARE, class_index=[0, 1])
    with pytest.raises(ValueError, match="layer='gap' has no 4-D"):
        grad_cam(model, handset.SQUARE, layer="gap")
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        grad_cam(model, handset.SQUARE, layer="nope")
    with pytest.raises(ValueError, match="expects inputs of shape"):
        grad_cam(model, np.zeros((1, 9, 9, 1), np.float32))
    with pytest.raises(ValueError, match="not both"):
        GradCAMLogger(handset.SQUARE, [vc.TensorBoardWriter("unused")], class_index=1, labels=[1])
    with pytest.raises(ValueError, match="alpha"):
        GradCAMLogger(handset.SQUARE, [vc.TensorBoardWriter("unused")], alpha=2)


# --- The callback, through real event files ---------------------------------------------------

EPOCHS = 2


def test_logger_writes_overlays_heatmaps_and_scalars(digits, tmp_path: Path) -> None:
    x, y = digits
    probe, labels = x[:2], y[:2]
    writers = [vc.TensorBoardWriter(tmp_path)]
    names = [str(i) for i in range(10)]
    logger = GradCAMLogger(
        probe, writers, labels=labels, probe_names=["a", "b"], class_names=names, alpha=0.5
    )
    model = models.compiled(models.functional())
    model.fit(x[:64], y[:64], epochs=EPOCHS, batch_size=32, verbose=0, callbacks=[logger])
    events = read_events(tmp_path)
    kinds = ("gradcam", "gradcam_heatmap", "gradcam_predicted_class", "gradcam_probability")
    expected = {
        (f"{kind}/conv_b/{name}", step)
        for kind in (*kinds, "gradcam_prediction")
        for name in ("a", "b")
        for step in range(EPOCHS + 1)
    }
    assert tag_steps(events) == expected
    # The last step equals grad_cam on the trained model, explained for the true labels.
    heatmaps = grad_cam(model, probe, class_index=labels)
    probs = keras.ops.convert_to_numpy(model(probe, training=False))
    for i, name in enumerate(["a", "b"]):
        overlay = events[f"gradcam/conv_b/{name}"][EPOCHS]
        assert overlay.shape == (32, 32, 3) and overlay.dtype == np.uint8  # 16x16, 2x enlarged
        np.testing.assert_array_equal(
            overlay, enlarge(overlay_heatmap(probe[i], heatmaps[i], "jet", 0.5))
        )
        bare = events[f"gradcam_heatmap/conv_b/{name}"][EPOCHS]
        np.testing.assert_array_equal(bare, enlarge(heatmap_image(heatmaps[i], "jet")))
        predicted = events[f"gradcam_predicted_class/conv_b/{name}"][EPOCHS]
        assert predicted == probs[i].argmax()
        np.testing.assert_allclose(
            events[f"gradcam_probability/conv_b/{name}"][EPOCHS], probs[i].max(), rtol=1e-5
        )
        text = events[f"gradcam_prediction/conv_b/{name}"][EPOCHS]
        assert f"explains **{labels[i]}**".encode() in text.item()


@pytest.mark.parametrize(
    ("factory", "layer"), [(models.sequential_without_input, "pool_a"), (models.nested, None)]
)
def test_logger_on_unbuilt_sequential_and_nested(factory, layer, digits, tmp_path: Path) -> None:
    x, y = digits
    writers = [vc.TensorBoardWriter(tmp_path)]
    logger = GradCAMLogger(x[0], writers, layer=layer, every_n_epochs=2)
    model = models.compiled(factory())
    model.fit(x[:64], y[:64], epochs=3, batch_size=32, verbose=0, callbacks=[logger])
    name = "pool_a" if layer else "base/conv_b"
    kinds = ("gradcam", "gradcam_heatmap", "gradcam_predicted_class", "gradcam_probability")
    assert tag_steps(read_events(tmp_path)) == {
        (f"{kind}/{name}", step) for kind in kinds for step in (0, 2, 3)
    }
