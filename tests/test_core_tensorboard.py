"""The core loop: fit tiny real models, read the event files back, compare with Keras itself."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import pytest

import vizcallbacks as vc
from tests import models
from tests.events import read_events, tag_steps

EPOCHS = 2


def _fit(model: keras.Model, data, log_dir: Path, epochs: int = EPOCHS, **kwargs) -> dict:
    x, y = data
    writers = [vc.TensorBoardWriter(log_dir)]
    callbacks = [vc.ActivationLogger(x[0], writers), vc.FilterLogger(writers)]
    models.compiled(model).fit(
        x[:64], y[:64], epochs=epochs, batch_size=32, verbose=0, callbacks=callbacks, **kwargs
    )
    return read_events(log_dir)


def _expected_pairs(
    spatial: list[str],
    dense: list[str],
    convs: list[str],
    rgb: list[str],
    steps: range,
    filter_steps: range,
) -> set[tuple[str, int]]:
    pairs = {("probe/input", 0), ("vizcallbacks/params", 0)}
    for step in steps:
        for layer in spatial + dense:
            for kind in (
                "activation_mean",
                "activation_std",
                "activation_zero_fraction",
                "dead_channels",
                "dead_channel_fraction",
                "channel_means",
            ):
                pairs.add((f"{kind}/{layer}", step))
        for layer in spatial:
            pairs |= {(f"activations/{layer}", step), (f"mean_activation/{layer}", step)}
    for step in filter_steps:
        pairs |= {(f"filters/{layer}", step) for layer in convs}
        if step > filter_steps[0]:
            for kind in ("filter_drift", "filter_drift_from_init"):
                pairs |= {(f"{kind}/{layer}", step) for layer in convs}
        pairs |= {(f"filters_rgb/{layer}", step) for layer in rgb}
    # At train end: a strip per layer with a row per logged step.
    pairs |= {(f"evolution/{layer}", steps[-1]) for layer in spatial}
    pairs |= {(f"filter_evolution/{layer}", filter_steps[-1]) for layer in convs}
    return pairs


CASES: dict[str, tuple[Callable[[], keras.Model], list[str], list[str], list[str], bool]] = {
    # name: (model factory, 4-D layers, other layers, conv layers, built before fit)
    "sequential_without_input": (
        models.sequential_without_input,
        ["conv_a", "pool_a"],
        ["flat", "probs"],
        ["conv_a"],
        False,
    ),
    "functional_bn_activation": (
        models.functional,
        ["conv_a", "bn_a", "relu_a", "pool_a", "conv_b"],
        ["gap", "probs"],
        ["conv_a", "conv_b"],
        True,
    ),
    "nested": (  # the nested model's own output follows its layers'
        models.nested,
        ["base/conv_a", "base/conv_b", "base"],
        ["gap", "probs"],
        ["base/conv_a", "base/conv_b"],
        True,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_exact_tags_steps_and_means(case: str, digits, tmp_path: Path) -> None:
    factory, spatial, dense, convs, built = CASES[case]
    model = factory()
    events = _fit(model, digits, tmp_path)
    steps = range(EPOCHS + 1)
    # An unbuilt Sequential's ActivationLogger builds it from the probe before step 0, so its
    # FilterLogger (listed after it) sees weights at step 0 too.
    # Dead-channel captions appear only where a layer has dead channels: checked separately.
    logged = {(t, s) for t, s in tag_steps(events) if not t.startswith("dead_channel_indices/")}
    assert logged == _expected_pairs(spatial, dense, convs, [], steps, steps)

    probe = digits[0][:1]
    for layer in spatial:
        grid = events[f"activations/{layer}"][EPOCHS]
        assert grid.dtype == np.uint8 and grid.shape[2] == 3
    # The logged final means equal an independent computation with a keras sub-model.
    for layer in spatial + dense:
        inner = model
        for part in layer.split("/")[:-1]:
            inner = inner.get_layer(part)
        target = inner.get_layer(layer.split("/")[-1])
        if inner is model and built:
            sub = keras.Model(model.inputs, target.output)
            expected = keras.ops.convert_to_numpy(sub(probe, training=False)).mean()
        else:
            expected = vc.layer_activations(model, probe, [layer])[layer].mean()
        np.testing.assert_allclose(
            events[f"activation_mean/{layer}"][EPOCHS], expected, rtol=1e-5, atol=1e-6
        )


def test_grid_size_matches_channels_and_upscaling(digits, tmp_path: Path) -> None:
    events = _fit(models.functional(), digits, tmp_path, epochs=1)
    conv_a = events["activations/conv_a"][1]  # 4 channels of 16x16 → 2x2 tiles, 2x upscaled
    assert conv_a.shape == (2 * 32 + 1, 2 * 32 + 1, 3)
    conv_b = events["activations/conv_b"][1]  # 8 channels of 6x6 → 3x3 grid, 6x upscaled
    assert conv_b.shape == (3 * 37 - 1, 3 * 37 - 1, 3)
    filters = events["filters/conv_b"][1]  # 8 filters x 4 inputs, 3x3 kernels 11x upscaled
    assert filters.shape == (8 * 34 - 1, 4 * 34 - 1, 3)


def test_every_n_epochs_and_last_epoch(digits, tmp_path: Path) -> None:
    x, y = digits
    writers = [vc.TensorBoardWriter(tmp_path)]
    model = models.compiled(models.functional())
    model.fit(
        x[:32],
        y[:32],
        epochs=5,
        verbose=0,
        callbacks=[vc.ActivationLogger(x[0], writers, every_n_epochs=2)],
    )
    assert sorted(read_events(tmp_path)["activations/conv_a"]) == [0, 2, 4, 5]


def test_second_fit_and_initial_epoch_continue_steps(digits, tmp_path: Path) -> None:
    x, y = digits
    writers = [vc.TensorBoardWriter(tmp_path)]
    logger = vc.ActivationLogger(x[0], writers, layers=["conv_a"])
    model = models.compiled(models.functional())
    model.fit(x[:32], y[:32], epochs=2, verbose=0, callbacks=[logger])
    model.fit(x[:32], y[:32], epochs=2, verbose=0, callbacks=[logger])
    assert sorted(read_events(tmp_path)["activations/conv_a"]) == [0, 1, 2, 3, 4]

    resumed = tmp_path / "resumed"
    fresh = vc.ActivationLogger(x[0], [vc.TensorBoardWriter(resumed)], layers=["conv_a"])
    model.fit(x[:32], y[:32], initial_epoch=4, epochs=6, verbose=0, callbacks=[fresh])
    assert sorted(read_events(resumed)["activations/conv_a"]) == [4, 5, 6]


def test_several_probes_get_their_own_image_tags(digits, tmp_path: Path) -> None:
    x, y = digits
    writers = [vc.TensorBoardWriter(tmp_path)]
    logger = vc.ActivationLogger(x[:2], writers, layers=["conv_a"], probe_names=["zero", "one"])
    models.compiled(models.functional()).fit(
        x[:32], y[:32], epochs=1, verbose=0, callbacks=[logger]
    )
    events = read_events(tmp_path)
    assert {"activations/conv_a/zero", "activations/conv_a/one", "probe/input/zero"} <= set(events)
    assert "activations/conv_a" not in events


def test_coexists_with_keras_tensorboard(digits, tmp_path: Path) -> None:
    x, y = digits
    writers = [vc.TensorBoardWriter(tmp_path)]
    model = models.compiled(models.functional())
    model.fit(
        x[:32],
        y[:32],
        epochs=2,
        verbose=0,
        validation_data=(x[32:48], y[32:48]),
        callbacks=[keras.callbacks.TensorBoard(tmp_path), vc.ActivationLogger(x[0], writers)],
    )
    assert sorted(read_events(tmp_path)["activations/conv_a"]) == [0, 1, 2]
    assert "epoch_loss" in read_events(tmp_path / "train")


def test_notebook_functions_match_keras(digits) -> None:
    model = models.functional()
    images = digits[0][:3]
    acts = vc.layer_activations(model, images)
    assert list(acts) == ["conv_a", "bn_a", "relu_a", "pool_a", "conv_b", "gap", "probs"]
    sub = keras.Model(model.inputs, model.get_layer("conv_b").output)
    expected = keras.ops.convert_to_numpy(sub(images, training=False))
    np.testing.assert_allclose(acts["conv_b"], expected, rtol=1e-5, atol=1e-6)
    filters = vc.normalized_filters(model)
    assert filters["conv_b"].shape == (8, 3, 3, 4)
    assert filters["conv_b"].min() == 0.0 and filters["conv_b"].max() == 1.0
    kernel = keras.ops.convert_to_numpy(model.get_layer("conv_b").kernel)
    order = np.argsort(np.transpose(kernel, (3, 0, 1, 2)).ravel())
    assert (np.diff(filters["conv_b"].ravel()[order]) >= 0).all()  # a monotone rescaling
    picture = vc.tile_maps(acts["conv_a"][0])
    assert picture.dtype == np.uint8 and picture.shape == (65, 65, 3)
