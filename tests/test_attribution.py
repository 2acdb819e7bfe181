"""Attribution methods against maps derived on paper: hand-set models whose gradients, occlusion
drops and masked scores can be written down, completeness of integrated gradients on a trained
CNN, and the sanity check's re-initialization and rank correlation."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from scipy.stats import spearmanr

import vizcallbacks as vc
from tests import handset, models
from vizcallbacks.compute.attribution.cams import ScoreCAM
from vizcallbacks.compute.attribution.gradients import Saliency
from vizcallbacks.compute.attribution.occlusion import occlusion_masks
from vizcallbacks.compute.attribution.sanity import reinitialized, spearman, top_layer
from vizcallbacks.render.compare import labelled_columns

RNG = np.random.default_rng(16)
X4 = RNG.random((3, 4, 4, 1)).astype(np.float32)  # three 4x4 grey images in [0, 1)


# --- A linear model: logit = w · x -----------------------------------------------------------


@pytest.mark.parametrize("head", ["softmax", "sigmoid"])
def test_linear_model_gradient_methods_by_hand(head: str) -> None:
    model = handset.linear_scorer(head)
    w, x = handset.LINEAR_W, X4
    # Class 1's score is w · x, so d score / d x = w everywhere: saliency is |w| / max|w|, and
    # max|w| = 2. SmoothGrad averages the same constant |w| over every noisy copy.
    expected = np.broadcast_to(np.abs(w) / 2.0, (3, 4, 4))
    for smooth in (0, 7):
        np.testing.assert_allclose(
            vc.saliency(model, x, class_index=1, smooth_samples=smooth), expected, rtol=1e-6
        )
        np.testing.assert_allclose(
            vc.saliency(model, x, class_index=1, smooth_samples=smooth, signed=True),
            np.broadcast_to(w, (3, 4, 4)),
            rtol=1e-6,
        )
    product = w * x[..., 0]
    np.testing.assert_allclose(
        vc.gradients_x_inputs(model, x, class_index=1, signed=True), product, rtol=1e-6
    )
    np.testing.assert_allclose(
        vc.gradients_x_inputs(model, x, class_index=1),
        np.abs(product) / np.abs(product).max(axis=(1, 2), keepdims=True),
        rtol=1e-6,
    )
    # Class 0 is explained by -w (the other softmax row, or -logit for one sigmoid unit).
    np.testing.assert_allclose(
        vc.gradients_x_inputs(model, x, class_index=0, signed=True), -product, rtol=1e-6
    )
    # Integrated gradients from black: (x - 0) · w for any number of steps, the gradient being
    # constant along the path; from another baseline b: (x - b) · w.
    for steps in (1, 3, 64):
        np.testing.assert_allclose(
            vc.integrated_gradients(model, x, class_index=1, steps=steps, signed=True),
            product,
            rtol=1e-5,
            atol=1e-6,
        )
    baseline = np.full((4, 4, 1), 0.25, np.float32)
    np.testing.assert_allclose(
        vc.integrated_gradients(model, x, class_index=1, baseline=baseline, signed=True),
        w * (x[..., 0] - 0.25),
        rtol=1e-5,
        atol=1e-6,
    )


def test_predicted_class_is_explained_by_default() -> None:
    model = handset.linear_scorer("sigmoid")
    x = X4.copy()
    x[0] = x[0] * (handset.LINEAR_W > 0)[..., None]  # logit > 0: class 1
    x[1] = x[1] * (handset.LINEAR_W < 0)[..., None]  # logit < 0: class 0
    classes = np.where((handset.LINEAR_W * x[..., 0]).sum(axis=(1, 2)) > 0, 1, 0)
    assert classes[:2].tolist() == [1, 0]
    np.testing.assert_allclose(
        vc.gradients_x_inputs(model, x, signed=True),
        np.where(classes == 1, 1.0, -1.0)[:, None, None] * handset.LINEAR_W * x[..., 0],
        rtol=1e-6,
    )


@pytest.mark.xfail(
    keras.backend.backend() != "tensorflow",
    reason="this nested model does not learn the digits in model.fit on JAX/PyTorch (accuracy "
    "~0.11 after 10 epochs), so its logits stay near the baseline's: not an attribution fault",
    strict=True,
)
def test_integrated_gradients_completeness_on_trained_cnn(digits) -> None:
    x, y = digits
    model = models.nested()  # ReLU convolutions, global mean, dense
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=10, batch_size=32, verbose=0)
    images = x[:6]
    base, gap, dense = model.layers

    def logits(batch: np.ndarray) -> np.ndarray:
        numpy = keras.ops.convert_to_numpy
        pooled = numpy(gap(base(batch, training=False)))
        return pooled @ numpy(dense.kernel) + numpy(dense.bias)

    predicted = logits(images).argmax(-1)
    rows = np.arange(len(images))
    expected = logits(images)[rows, predicted] - logits(np.zeros_like(images))[rows, predicted]
    assert np.abs(expected).min() > 0.5  # far enough from the baseline to be a real test
    total = vc.integrated_gradients(model, images, steps=64, signed=True).sum(axis=(1, 2))
    np.testing.assert_allclose(total, expected, rtol=0.01)


# --- Occlusion: a score that is the sum of one square of pixels ------------------------------


def test_occlusion_of_a_summed_square_is_that_square() -> None:
    model = handset.square_sum()
    ones = np.ones((1, 8, 8, 1), np.float32)
    # 2x2 patches every 2 pixels: the four patches inside the square each drop the logit (16)
    # by their 4 pixels, the others by nothing. Every pixel is covered by exactly one patch.
    np.testing.assert_allclose(
        vc.occlusion_sensitivity(model, ones, patch=2, signed=True)[0], 4 * handset.SUM_SQUARE
    )
    np.testing.assert_allclose(
        vc.occlusion_sensitivity(model, ones, patch=2)[0], handset.SUM_SQUARE
    )
    # Filling with 0.5 hides half of each pixel; filling with the pixel's own value hides nothing.
    np.testing.assert_allclose(
        vc.occlusion_sensitivity(model, ones, patch=2, fill=0.5, signed=True)[0],
        2 * handset.SUM_SQUARE,
    )
    np.testing.assert_array_equal(vc.occlusion_sensitivity(model, ones, patch=2, fill=1.0), 0.0)
    # One-pixel patches: each pixel's drop is its own value inside the square.
    x = RNG.random((2, 8, 8, 1)).astype(np.float32) + 0.1
    np.testing.assert_allclose(
        vc.occlusion_sensitivity(model, x, patch=1, signed=True),
        x[..., 0] * handset.SUM_SQUARE,
        rtol=1e-5,
        atol=1e-6,
    )
    # 3x3 patches every 2 pixels on 8 pixels: starts 0, 2, 4 and 5 (the last touches the border).
    masks = occlusion_masks(8, 8, 3, 2)
    assert masks.shape == (16, 8, 8) and masks.sum(axis=0).min() >= 1
    assert masks[-1, 5:, 5:].all() and masks[-1].sum() == 9


# --- CAMs on hand-set conv layers -------------------------------------------------------------


def test_grad_cam_plus_plus_and_layer_cam_on_one_channel_by_hand() -> None:
    model = handset.position_weighted()
    v = handset.POSITION_V
    x = RNG.random((2, 4, 4, 1)).astype(np.float32) + 0.05
    ones = np.ones((1, 4, 4, 1), np.float32)
    # One channel A = x and d logit / d A = v. LayerCAM keeps each position: ReLU(ReLU(v) · A).
    relu_v = np.maximum(v, 0)
    np.testing.assert_allclose(
        vc.layer_cam(model, ones, class_index=1)[0], relu_v / relu_v.max(), rtol=1e-6
    )
    layer = relu_v * x[..., 0]
    np.testing.assert_allclose(
        vc.layer_cam(model, x, class_index=1),
        layer / layer.max(axis=(1, 2), keepdims=True),
        rtol=1e-5,
    )
    # Class 0 is -logit: the gradient is -v, so only the negative weights remain.
    relu_minus = np.maximum(-v, 0)
    np.testing.assert_allclose(
        vc.layer_cam(model, ones, class_index=0)[0], relu_minus / relu_minus.max(), rtol=1e-6
    )
    # Grad-CAM++ weighs the single channel by w = sum_ij alpha_ij ReLU(v_ij) with
    # alpha = v² / (2v² + v³ sum A) normalized over ij. On ones (sum A = 16) the alphas of
    # v = 1, 2, 0.5, 3, 4 are 1/18, 1/34, 1/10, 1/50, 1/66 and those of v = -1, -2 are -1/14,
    # -1/30: their sum is positive, so w > 0 and the map is A / max A itself.
    alpha = np.where(v != 0, 1 / (2 + 16 * v), 0.0)
    assert alpha.sum() > 0 and (alpha / alpha.sum() * relu_v).sum() > 0
    np.testing.assert_allclose(vc.grad_cam_plus_plus(model, ones, class_index=1), 1.0)
    np.testing.assert_allclose(
        vc.grad_cam_plus_plus(model, x, class_index=1),
        x[..., 0] / x[..., 0].max(axis=(1, 2), keepdims=True),
        rtol=1e-5,
    )
    # The square detector (box filter, global mean, class weight +1): g = 1/64 everywhere,
    # alpha = 1/64 after normalization, and the map is the box-filtered image over its maximum.
    box = handset.box_filter(handset.SQUARE[0, ..., 0])
    detector = handset.square_detector()
    for method in (vc.grad_cam_plus_plus, vc.layer_cam):
        np.testing.assert_allclose(
            method(detector, handset.SQUARE)[0], box / box.max(), rtol=1e-5, atol=1e-6
        )
        np.testing.assert_array_equal(method(detector, handset.SQUARE, class_index=0), 0.0)


def test_score_cam_on_two_hand_set_channels() -> None:
    model = handset.two_channel_scorer()
    x = handset.TWO_REGIONS
    r0, r1 = handset.REGION_0, handset.REGION_1
    # A_k = x_k, so the masks are the regions themselves. Masked by A_0, the image keeps its
    # 2x2 square: mean(A) = (4/16, 0), logits (1, 0). Masked by A_1 it keeps two pixels:
    # logits (0, 0.5). Class 0's weights are its softmax probabilities in each case.
    w0, w1 = 1 / (1 + np.exp(-1.0)), 1 / (1 + np.exp(0.5))
    np.testing.assert_allclose(
        vc.score_cam(model, x, class_index=0)[0], r0 + (w1 / w0) * r1, rtol=1e-5
    )
    v0, v1 = 1 / (1 + np.exp(1.0)), 1 / (1 + np.exp(-0.5))  # class 1
    np.testing.assert_allclose(
        vc.score_cam(model, x, class_index=1)[0], (v0 / v1) * r0 + r1, rtol=1e-5
    )
    # Faster Score-CAM with one channel keeps A_0, whose spatial spread is larger
    # (sqrt(4/16 · 12/16) > sqrt(2/16 · 14/16)): the map is the square alone.
    np.testing.assert_allclose(vc.score_cam(model, x, class_index=0, top_k=1)[0], r0, rtol=1e-6)


def test_expanded_batches_cut_into_chunks_give_the_same_maps() -> None:
    # 3 images x 7 noisy copies = 21 images through the model 4 at a time; 2 images x 2 channels
    # = 4 masked images one at a time: the same maps as in one pass.
    linear = handset.linear_scorer()
    chunked = Saliency(linear, smooth_samples=7, image_shape=(4, 4, 1), batch_size=4)
    np.testing.assert_allclose(
        chunked(X4, class_index=1).heatmaps,
        vc.saliency(linear, X4, class_index=1, smooth_samples=7),
        rtol=1e-6,
    )
    model = handset.two_channel_scorer()
    x = np.concatenate([handset.TWO_REGIONS, handset.TWO_REGIONS[:, ::-1]])
    one_by_one = ScoreCAM(model, image_shape=(4, 4, 2), batch_size=1)
    np.testing.assert_allclose(
        one_by_one(x, class_index=0).heatmaps,
        vc.score_cam(model, x, class_index=0),
        rtol=1e-6,
    )


# --- The sanity check -------------------------------------------------------------------------


def test_spearman_matches_scipy_with_ties() -> None:
    a = RNG.integers(0, 4, (6, 5)).astype(np.float32)  # many ties
    b = a + RNG.normal(0, 1, a.shape)
    assert spearman(a, b) == pytest.approx(spearmanr(a.ravel(), b.ravel())[0], abs=1e-12)
    assert spearman(a, a) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert spearman(a, np.zeros_like(a)) == 0.0  # a constant map ranks nothing


def test_reinitialized_top_layer_is_restored_exactly(digits) -> None:
    model = models.compiled(models.nested())
    model.fit(digits[0][:64], digits[1][:64], epochs=1, verbose=0)
    top = top_layer(model, digits[0][:1])
    assert top.name == "probs"
    before = [np.array(w) for w in model.weights]
    flags = [la.trainable for la in model.layers]
    with reinitialized(top.layer):
        changed = np.array(top.layer.kernel)
        assert not np.array_equal(changed, before[-2])
        np.testing.assert_array_equal(np.array(top.layer.bias), 0.0)  # its zeros initializer
    assert all(np.array_equal(a, np.array(b)) for a, b in zip(before, model.weights, strict=True))
    assert flags == [la.trainable for la in model.layers]
    with reinitialized(top.layer):  # the same seed: the same forgotten model every step
        np.testing.assert_array_equal(np.array(top.layer.kernel), changed)


# --- Arguments ----------------------------------------------------------------------------------


def test_bad_arguments_are_named() -> None:
    model = handset.square_sum()
    image = np.ones((1, 8, 8, 1), np.float32)
    with pytest.raises(ValueError, match=r"patch must fit in the image \(8x8\)"):
        vc.occlusion_sensitivity(model, image, patch=9)
    with pytest.raises(TypeError, match="stride must be an integer"):
        vc.occlusion_sensitivity(model, image, stride=1.5)
    with pytest.raises(TypeError, match="fill must be a number"):
        vc.occlusion_sensitivity(model, image, fill="black")
    with pytest.raises(ValueError, match="steps must be ≥ 1"):
        vc.integrated_gradients(model, image, steps=0)
    with pytest.raises(ValueError, match=r"baseline must be .* Received shape \(3, 3\)"):
        vc.integrated_gradients(model, image, baseline=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="smooth_samples must be ≥ 0"):
        vc.saliency(model, image, smooth_samples=-1)
    with pytest.raises(ValueError, match="noise must be a finite number ≥ 0"):
        vc.saliency(model, image, noise=-0.1)
    with pytest.raises(ValueError, match=r"class_index must lie in 0\.\.1"):
        vc.gradients_x_inputs(model, image, class_index=2)
    with pytest.raises(ValueError, match="top_k must be ≥ 1"):
        vc.score_cam(handset.square_detector(), handset.SQUARE, top_k=0)
    with pytest.raises(ValueError, match="layer='gap' has no 4-D"):
        vc.layer_cam(handset.square_detector(), handset.SQUARE, layer="gap")
    conv = keras.layers.Conv2D(2, 3, data_format="channels_first", name="cf")
    layers = [keras.Input((1, 8, 8)), conv, keras.layers.Flatten(), keras.layers.Dense(2)]
    channels_first = keras.Sequential(layers)
    with pytest.raises(ValueError, match="layer 'cf' is channels_first"):
        vc.saliency(channels_first, np.zeros((1, 1, 8, 8), np.float32))
    with pytest.raises(ValueError, match="one image input"):
        vc.saliency(models.two_inputs(), (np.zeros((16, 16, 1)), np.zeros(3)))


def test_side_by_side_picture_layout() -> None:
    cells = np.zeros((2, 3, 4, 4, 3), np.uint8)
    cells[1, 2] = 255
    table = labelled_columns(cells, ["probe", "a", "b"], ["first", "second"], min_size=8)
    # Cells enlarged twice (8x8), one grey pixel between them: a 17 x 26 grid under a 24-pixel
    # header, beside 120 pixels of row captions.
    assert table.shape == (24 + 17, 120 + 26, 3) and table.dtype == np.uint8
    np.testing.assert_array_equal(table[24 + 9 :, 120 + 18 :], 255)  # cell (1, 2)
    np.testing.assert_array_equal(table[24:, 120 + 8], 200)  # a separator column
    assert (table[:24, 120:128] < 255).any() and (table[24:41, :120] < 255).any()  # the text
    with pytest.raises(ValueError, match=r"labels needs one label per column \(3\)"):
        labelled_columns(cells, ["a", "b"])
