"""Faithfulness of attribution maps: deletion and insertion curves worked out on paper for a linear
model, against Xplique's Deletion/Insertion, random maps against gradients x inputs, and
AttributionLogger's scalars and curves picture read back from TensorBoard."""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import layers

import vizcallbacks as vc
from tests import models
from tests.events import read_events, tag_steps
from vizcallbacks.compute.attribution.faithfulness import blurred, random_maps
from vizcallbacks.compute.attribution.methods import ALL_METHODS
from vizcallbacks.compute.attribution.perturbed import (
    PERTURBED_BATCH_SIZE,
    padded_size,
    scorer,
)

# A 2x2 grey image and a linear sigmoid unit: logit = w · x, contributions w ⊙ x = (.5, -.5, .3, .8)
IMAGE = np.array([[0.1, 0.2], [0.3, 0.4]], np.float32)[None, ..., None]
WEIGHTS = np.array([5.0, -2.5, 1.0, 2.0], np.float32)


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def _linear_unit() -> keras.Model:
    inputs = keras.Input((2, 2, 1))
    dense = layers.Dense(1, activation="sigmoid", name="head")
    model = keras.Model(inputs, dense(layers.Flatten()(inputs)))
    dense.set_weights([WEIGHTS[:, None], np.zeros(1, np.float32)])
    return model


def test_deletion_and_insertion_of_a_linear_model_worked_out_on_paper() -> None:
    model = _linear_unit()
    maps = (WEIGHTS.reshape(2, 2) * IMAGE[0, ..., 0])[None]  # w ⊙ x ranks pixels 3, 0, 2, 1
    deletion = vc.deletion_curve(model, IMAGE, maps, steps=4)
    # logit 1.1; without pixel 3: 0.3; then without 0: -0.2; then without 2: -0.5; none left: 0
    expected = [_sigmoid(z) for z in (1.1, 0.3, -0.2, -0.5, 0.0)]
    np.testing.assert_allclose(deletion.probabilities[0], expected, atol=1e-6)
    np.testing.assert_allclose(deletion.fractions, [0, 0.25, 0.5, 0.75, 1])
    area = (expected[0] / 2 + expected[1] + expected[2] + expected[3] + expected[4] / 2) / 4
    assert deletion.auc[0] == pytest.approx(area, abs=1e-6)  # 0.5593... on paper
    assert deletion.class_index.tolist() == [1]  # the predicted class: logit > 0
    # From black: 0, then + .8, + .5, + .3, + (-.5); the full image ends at the model's value.
    insertion = vc.insertion_curve(model, IMAGE, maps, steps=4, start=0.0)
    expected = [_sigmoid(z) for z in (0.0, 0.8, 1.3, 1.6, 1.1)]
    np.testing.assert_allclose(insertion.probabilities[0], expected, atol=1e-6)
    area = (expected[0] / 2 + expected[1] + expected[2] + expected[3] + expected[4] / 2) / 4
    assert insertion.auc[0] == pytest.approx(area, abs=1e-6)
    # Two steps remove floor(linspace(0, 4, 3)) = 0, 2, 4 pixels; class 0 scores 1 - p.
    halves = vc.deletion_curve(model, IMAGE, maps, steps=2, class_index=0)
    np.testing.assert_allclose(halves.probabilities[0], [_sigmoid(-z) for z in (1.1, -0.2, 0)])


def test_insertion_of_the_full_image_ends_at_the_models_probability(digits) -> None:
    x, y = digits
    model = models.compiled(models.functional())
    model.fit(x[:128], y[:128], epochs=2, verbose=0)
    maps = vc.saliency(model, x[:6])
    curve = vc.insertion_curve(model, x[:6], maps, steps=10)
    probabilities = model.predict(x[:6], verbose=0)
    predicted = probabilities.argmax(axis=1)
    assert curve.class_index.tolist() == predicted.tolist()
    np.testing.assert_allclose(curve.probabilities[:, -1], probabilities.max(axis=1), atol=1e-5)
    start = model.predict(blurred(x[:6]), verbose=0)[np.arange(6), predicted]
    np.testing.assert_allclose(curve.probabilities[:, 0], start, atol=1e-5)
    deletion = vc.deletion_curve(model, x[:6], maps, steps=10)
    np.testing.assert_allclose(deletion.probabilities[:, 0], probabilities.max(axis=1), atol=1e-5)
    black = model.predict(np.zeros_like(x[:6]), verbose=0)[np.arange(6), predicted]
    np.testing.assert_allclose(deletion.probabilities[:, -1], black, atol=1e-5)
    mu = vc.mu_fidelity(model, x[:6], maps, samples=16)
    assert mu.shape == (6,) and np.all(np.abs(mu) <= 1.0)
    np.testing.assert_array_equal(mu, vc.mu_fidelity(model, x[:6], maps, samples=16))


def test_random_maps_score_worse_than_gradients_x_inputs_on_a_trained_linear_model(digits) -> None:
    x, y = digits
    model = keras.Sequential(
        [keras.Input((16, 16, 1)), layers.Flatten(), layers.Dense(10, activation="softmax")]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=20, verbose=0)
    probe = x[:16]
    chance = random_maps(probe.shape[:-1])
    np.testing.assert_array_equal(chance, random_maps(probe.shape[:-1]))  # the same every call
    informed = vc.gradients_x_inputs(model, probe)
    worse = vc.deletion_curve(model, probe, chance).auc.mean()
    better = vc.deletion_curve(model, probe, informed).auc.mean()
    assert better < worse - 0.1, (better, worse)
    assert vc.insertion_curve(model, probe, informed).auc.mean() > (
        vc.insertion_curve(model, probe, chance).auc.mean() + 0.1
    )
    assert (
        vc.mu_fidelity(model, probe, informed).mean() > vc.mu_fidelity(model, probe, chance).mean()
    )


def test_maps_and_options_are_checked_before_any_pass(tmp_path: Path) -> None:
    model = _linear_unit()
    with pytest.raises(ValueError, match=r"maps must hold one map per image.*\(1, 2, 2\)"):
        vc.deletion_curve(model, IMAGE, np.zeros((1, 3, 3)))
    with pytest.raises(ValueError, match="steps must be ≥ 1"):
        vc.deletion_curve(model, IMAGE, np.zeros((1, 2, 2)), steps=0)
    with pytest.raises(ValueError, match="start must be 'blur' or a number"):
        vc.insertion_curve(model, IMAGE, np.zeros((1, 2, 2)), start="black")
    with pytest.raises(ValueError, match="subset must be a share"):
        vc.mu_fidelity(model, IMAGE, np.zeros((1, 2, 2)), subset=1.5)
    with pytest.raises(ValueError, match="faithfulness: unknown metric"):
        vc.AttributionLogger(IMAGE, [vc.TensorBoardWriter(tmp_path)], faithfulness=("roar",))
    with pytest.raises(TypeError, match="faithfulness must be a sequence"):
        vc.AttributionLogger(IMAGE, [vc.TensorBoardWriter(tmp_path)], faithfulness="deletion")


@pytest.mark.tensorflow_only
def test_deletion_and_insertion_agree_with_xplique(digits) -> None:
    metrics = pytest.importorskip(
        "xplique.metrics",
        reason="Xplique is not installed (pip install --no-deps xplique==2.0.2, see .ci/run)",
    )
    x, y = digits
    model = models.compiled(models.functional())
    model.fit(x[:128], y[:128], epochs=2, verbose=0)
    probe = x[:8]
    # Maps without ties: Xplique breaks ties by its argsort's order, vizcallbacks by pixel order.
    for maps in (vc.saliency(model, probe), random_maps(probe.shape[:-1])):
        deletion = vc.deletion_curve(model, probe, maps, steps=20)
        targets = keras.utils.to_categorical(deletion.class_index, 10)
        theirs = metrics.Deletion(model, probe, targets, steps=20).evaluate(maps)
        assert deletion.auc.mean() == pytest.approx(float(theirs), abs=1e-3)
        insertion = vc.insertion_curve(model, probe, maps, steps=20)  # from the blur: its baseline
        start = metrics.Insertion(model, probe, targets, steps=20, baseline_mode=blurred)
        assert insertion.auc.mean() == pytest.approx(float(start.evaluate(maps)), abs=1e-3)


def test_logger_logs_every_methods_faithfulness_and_the_curves(digits, tmp_path: Path) -> None:
    x, y = digits
    logger = vc.AttributionLogger(
        x[:3],
        [vc.TensorBoardWriter(tmp_path)],
        individual=False,
        faithfulness=("deletion", "insertion", "mu_fidelity"),
    )
    model = models.compiled(models.functional())
    model.fit(x[:64], y[:64], epochs=1, batch_size=32, verbose=0, callbacks=[logger])
    events = read_events(tmp_path)
    labels = [*ALL_METHODS, "random"]
    kinds = ("attribution_deletion_auc", "attribution_insertion_auc", "attribution_mu_fidelity")
    expected = {(f"{k}/{m}", s) for k in kinds for m in labels for s in (0, 1)}
    pictures = {(f"attribution_{p}/all_probes", s) for p in ("methods", "curves") for s in (0, 1)}
    assert tag_steps(events) == expected | pictures
    # The last step is what the notebook functions give for the trained model and its maps.
    probe = x[:3]
    maps = vc.integrated_gradients(model, probe)
    auc = vc.deletion_curve(model, probe, maps).auc.mean()
    logged = float(events["attribution_deletion_auc/integrated_gradients"][1])
    assert logged == pytest.approx(auc, abs=1e-6)
    chance = vc.insertion_curve(model, probe, random_maps(probe.shape[:-1])).auc.mean()
    assert float(events["attribution_insertion_auc/random"][1]) == pytest.approx(chance, abs=1e-6)
    curves = events["attribution_curves/all_probes"][1]
    assert curves.dtype == np.uint8 and curves.shape[0] >= 200 and curves.shape[1] > 600
    # Deterministic: computed twice more, the random line (and every method's) is the same.
    once, again = logger.compute().faithfulness, logger.compute().faithfulness
    assert once is not None and again is not None
    for metric, curves in again.curves.items():
        for label, curve in curves.items():
            np.testing.assert_array_equal(curve.auc, once.curves[metric][label].auc)
    assert again.curves["insertion"]["random"].auc.mean() == pytest.approx(chance, abs=1e-6)


def test_padded_batch_shapes_worked_out_on_paper() -> None:
    assert [padded_size(n, 128) for n in (1, 32, 33, 64, 65, 127, 128)] == [32] * 2 + [64] * 2 + [
        128
    ] * 3
    assert padded_size(5, 16) == 16 and padded_size(300, 256) == 256


def test_copies_of_an_image_are_scored_once_in_a_few_batch_shapes(digits) -> None:
    x, y = digits
    model = models.compiled(models.functional())
    model.fit(x[:128], y[:128], epochs=2, verbose=0)
    probe = x[:6]
    maps = probe[..., 0]  # brightest first: the black pixels last, on every backend
    scores = scorer(model, probe.shape[1:], None)
    shapes: list[int] = []
    run = scores._function

    def counted(images, classes):  # the compiled call, with the batch shapes it is given
        shapes.append(int(images.shape[0]))
        return run(images, classes)

    scores._function = counted
    scores.batch_size = 16  # fine enough to count the batches of distinct images
    curve = vc.deletion_curve(model, probe, maps, steps=16)
    # The same curve from every image built by hand and sent through predict, copies and all.
    order = np.argsort(-maps.reshape(6, -1), axis=1, kind="stable")
    images = []
    for i in range(6):
        for k in np.linspace(0, 256, 17).astype(int):
            image = probe[i].reshape(-1).copy()
            image[order[i, :k]] = 0.0
            images.append(image.reshape(16, 16, 1))
    classes = np.repeat(curve.class_index, 17)
    expected = model.predict(np.stack(images), verbose=0)[np.arange(102), classes]
    np.testing.assert_allclose(curve.probabilities.ravel(), expected, atol=1e-5)
    # Deleting a pixel already black changes nothing: such copies go through the model once.
    distinct = len({im.tobytes() + bytes([c]) for im, c in zip(images, classes, strict=True)})
    assert distinct <= 96  # a batch of 16 fewer than with every copy scored
    assert shapes == [16] * (1 + math.ceil(distinct / 16))  # the predicted classes, the curve
    scores.batch_size = PERTURBED_BATCH_SIZE
    shapes.clear()
    for steps in (3, 7, 40, 90):
        vc.deletion_curve(model, probe, maps, steps=steps)
        vc.insertion_curve(model, probe, maps, steps=steps)
    assert set(shapes) <= {32, 64, 128}  # the compiled call is never traced for a new count
