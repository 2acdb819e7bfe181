"""Graphs nobody on the project wrote: the loggers follow whatever Keras builds."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

import vizcallbacks as vc
from tests import models
from tests.events import read_events


def test_tensor_arithmetic_residual_trains_and_logs(digits, tmp_path: Path) -> None:
    """``x + shortcut`` and ``x * 0.5`` are keras.ops operations: no ``training`` argument."""
    x, y = digits
    model = models.compiled(models.tensor_arithmetic_residual())
    writers = [vc.TensorBoardWriter(tmp_path)]
    history = model.fit(
        x[:64],
        y[:64],
        epochs=2,
        batch_size=32,
        verbose=0,
        callbacks=[vc.ActivationLogger(x[0], writers), vc.GradCAMLogger(x[0], writers)],
    )
    assert len(history.history["loss"]) == 2
    events = read_events(tmp_path)
    for layer in ("proj", "conv_a", "conv_b"):
        assert set(events[f"activations/{layer}"]) == {0, 1, 2}
    # The block's output equals the replay's: the arithmetic ran as the model runs it.
    maps = vc.layer_activations(model, x[:1], layers=["conv_b", "proj", "gap"])
    conv_b, proj = maps["conv_b"][0], maps["proj"][0]
    expected_gap = np.maximum((conv_b + proj) * 0.5, 0).mean(axis=(0, 1))
    np.testing.assert_allclose(maps["gap"][0], expected_gap, rtol=1e-5, atol=1e-6)
    heatmap = vc.grad_cam(model, x[:1])
    assert heatmap.shape == (1, 16, 16) and np.isfinite(heatmap).all()


@pytest.mark.slow
def test_convnext_trains_and_logs(tmp_path: Path) -> None:
    """ConvNeXt's blocks add their residual with ``keras.ops``: the same family as above."""
    from skimage import data
    from skimage.transform import resize

    model = keras.applications.ConvNeXtTiny(
        weights=None, input_shape=(32, 32, 3), classes=2, include_preprocessing=False
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    photo = resize(data.chelsea(), (32, 32), anti_aliasing=True).astype("float32")
    x = np.stack([photo, photo[:, ::-1]] * 4)
    y = np.array([0, 1] * 4)
    writers = [vc.TensorBoardWriter(tmp_path)]
    first_block = "convnext_tiny_stage_0_block_0_depthwise_conv"
    model.fit(
        x,
        y,
        epochs=1,
        batch_size=4,
        verbose=0,
        callbacks=[
            vc.ActivationLogger(photo, writers, layers=[first_block]),
            vc.GradCAMLogger(photo, writers),
        ],
    )
    events = read_events(tmp_path)
    assert set(events[f"activations/{first_block}"]) == {0, 1}
    assert [tag for tag in events if tag.startswith("gradcam/")] != []


def test_early_stop_logs_the_last_completed_epoch(digits, tmp_path: Path) -> None:
    """every_n_epochs=3, but EarlyStopping ends training after epoch 2: step 2 is logged."""
    x, y = digits
    writers = [vc.TensorBoardWriter(tmp_path)]
    # The loss must fall by 10 to count as better: the second epoch never does.
    stop = keras.callbacks.EarlyStopping(monitor="loss", min_delta=10.0, patience=1)
    history = models.compiled(models.functional()).fit(
        x[:32],
        y[:32],
        epochs=10,
        verbose=0,
        callbacks=[stop, vc.ActivationLogger(x[0], writers, every_n_epochs=3)],
    )
    assert len(history.history["loss"]) == 2
    assert sorted(read_events(tmp_path)["activations/conv_a"]) == [0, 2]


class _TrainOnly(keras.layers.Layer):
    """A layer that refuses to run in inference mode: fit works, our inference pass cannot."""

    def call(self, x, training=None):
        if training is False:
            raise RuntimeError("this layer only runs while training")
        return x


# JAX's and PyTorch's fit first build the model by calling it with training=False, where this
# layer fails: Keras stops before any callback runs.
@pytest.mark.tensorflow_only
def test_our_failure_switches_the_logger_off_and_training_goes_on(
    digits, tmp_path: Path, caplog
) -> None:
    x, y = digits
    inputs = keras.Input((16, 16, 1))
    h = keras.layers.Conv2D(4, 3, activation="relu", name="conv_a")(inputs)
    h = _TrainOnly(name="train_only")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = models.compiled(keras.Model(inputs, keras.layers.Dense(10, "softmax")(h)))
    writers = [vc.TensorBoardWriter(tmp_path)]
    with caplog.at_level("WARNING", "vizcallbacks"):
        history = model.fit(
            x[:32],
            y[:32],
            epochs=2,
            verbose=0,
            callbacks=[vc.ActivationLogger(x[0], writers), vc.FilterLogger(writers)],
        )
    assert len(history.history["loss"]) == 2
    assert caplog.text.count("ActivationLogger is switched off") == 1
    assert "only runs while training" in caplog.text and "report" in caplog.text
    events = read_events(tmp_path)
    assert sorted(events["filters/conv_a"]) == [0, 1, 2]  # the other logger went on
    assert not any(tag.startswith("activations/") for tag in events)


# --- Every kind of model Keras builds: real fits, event files read back ----------------------


def _fit(model, x, y, loggers, epochs: int = 2):
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0, callbacks=loggers)
    return model


def _steps(events, kind: str) -> dict[str, set[int]]:
    return {tag: set(steps) for tag, steps in events.items() if tag.startswith(f"{kind}/")}


def _snapshot(model: keras.Model) -> list[tuple]:
    """What the recording must leave as it was: every layer's attributes, weights and flags
    (the notebook functions' cache, kept on the model on purpose, aside)."""
    from vizcallbacks.compute.layers import all_layers

    return [
        (
            path,
            sorted(k for k in vars(layer) if k != "_vizcallbacks_built"),  # notebook cache
            layer.trainable,
            str(layer.dtype_policy.name),
            [keras.ops.convert_to_numpy(w).copy() for w in layer.weights],
        )
        for path, layer in [("", model), *all_layers(model)]
    ]


def _assert_same(before: list[tuple], after: list[tuple]) -> None:
    assert len(before) == len(after)
    for (p, keys, trainable, policy, weights), (p2, keys2, t2, policy2, w2) in zip(
        before, after, strict=True
    ):
        assert (p, keys, trainable, policy) == (p2, keys2, t2, policy2)
        for a, b in zip(weights, w2, strict=True):
            np.testing.assert_array_equal(a, b)


def test_subclassed_model_trains_logs_and_is_left_as_it_was(digits, tmp_path: Path) -> None:
    x, y = digits
    model = models.compiled(models.SubclassedNet())
    writers = [vc.TensorBoardWriter(tmp_path)]
    loggers = [vc.ActivationLogger(x[0], writers), vc.GradCAMLogger(x[0], writers)]
    _fit(model, x[:64], y[:64], loggers)
    events = read_events(tmp_path)
    assert _steps(events, "activations") == {
        "activations/conv_a": {0, 1, 2},
        "activations/conv_b": {0, 1, 2},
    }
    assert _steps(events, "gradcam") == {"gradcam/conv_b": {0, 1, 2}}
    before = _snapshot(model)
    maps = vc.layer_activations(model, x[:2], layers=["conv_a", "conv_b"])
    # The model's own arithmetic (x * 2.0) ran between the layers, as in training.
    conv_b = model.conv_b(maps["conv_a"] * 2.0)
    np.testing.assert_allclose(
        maps["conv_b"], keras.ops.convert_to_numpy(conv_b), rtol=1e-5, atol=1e-5
    )
    assert vc.grad_cam(model, x[:2]).shape == (2, 16, 16)
    _assert_same(before, _snapshot(model))


def test_subclassed_block_inside_functional(digits, tmp_path: Path) -> None:
    x, y = digits
    model = models.compiled(models.functional_with_block())
    writers = [vc.TensorBoardWriter(tmp_path)]
    loggers = [vc.ActivationLogger(x[0], writers), vc.GradCAMLogger(x[0], writers)]
    _fit(model, x[:64], y[:64], loggers)
    events = read_events(tmp_path)
    # The block's own output (the residual sum) is logged after its layers'.
    names = ("stem", "block/first", "block/second", "block")
    assert _steps(events, "activations") == {f"activations/{name}": {0, 1, 2} for name in names}
    assert _steps(events, "gradcam") == {"gradcam/block/second": {0, 1, 2}}
    before = _snapshot(model)
    maps = vc.layer_activations(model, x[:1], layers=["block"])
    assert list(maps) == ["block/first", "block/second", "block"]
    _assert_same(before, _snapshot(model))


class Picky(keras.layers.Layer):
    """Refuses odd heights (ValueError: the input's fault) and height 10 (a bug: RuntimeError)."""

    def call(self, x):
        height = x.shape[1]
        if height is not None and height % 2:
            raise ValueError("needs an even height")
        if height == 10:
            raise RuntimeError("something inside broke")
        return x


# On JAX and PyTorch Keras runs call() on unknown (None) sizes to infer the output, where this
# layer refuses: the model cannot be built.
@pytest.mark.tensorflow_only
def test_errors_name_the_block_at_fault_not_the_model() -> None:
    from vizcallbacks.compute.errors import ViewFailure

    inputs = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(2, 3, padding="same", name="conv")(inputs)
    x = Picky(name="picky")(x)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x), name="outer")
    with pytest.raises(ValueError, match="(?s)layer 'picky' \\(Picky\\).*needs an even height"):
        vc.layer_activations(model, np.zeros((1, 15, 16, 1), "float32"))
    with pytest.raises(
        ViewFailure, match="(?s)'picky' \\(Picky\\): RuntimeError.*something inside broke.*report"
    ):
        vc.layer_activations(model, np.zeros((1, 10, 16, 1), "float32"))
    assert vc.layer_activations(model, np.zeros((1, 8, 8, 1), "float32"))["conv"].shape[1] == 8


def test_shared_layer_is_recorded_once_per_call(digits, tmp_path: Path) -> None:
    x, y = digits
    model = models.compiled(models.shared_layer())
    writers = [vc.TensorBoardWriter(tmp_path)]
    _fit(model, x[:64], y[:64], [vc.ActivationLogger(x[0], writers, layers=["shared", "gap"])])
    events = read_events(tmp_path)
    assert _steps(events, "activations") == {
        "activations/shared": {0, 1, 2},
        "activations/shared_2": {0, 1, 2},
    }
    maps = vc.layer_activations(model, x[:1], layers=["shared"])
    assert list(maps) == ["shared", "shared_2"]
    again = keras.ops.convert_to_numpy(model.get_layer("shared")(maps["shared"]))
    np.testing.assert_allclose(maps["shared_2"], again, rtol=1e-5, atol=1e-5)


def test_two_inputs(digits, tmp_path: Path) -> None:
    x, y = digits
    extra = np.random.default_rng(0).normal(size=(len(x), 3)).astype("float32")
    model = models.compiled(models.two_inputs())
    writers = [vc.TensorBoardWriter(tmp_path)]
    probe = (x[0], extra[0])  # one example of each input
    loggers = [
        vc.ActivationLogger(probe, writers, layers=["conv_a"]),
        vc.GradCAMLogger(probe, writers),
    ]
    _fit(model, [x[:64], extra[:64]], y[:64], loggers)
    events = read_events(tmp_path)
    assert _steps(events, "activations") == {"activations/conv_a": {0, 1, 2}}
    assert _steps(events, "gradcam") == {"gradcam/conv_a": {0, 1, 2}}
    assert events["gradcam/conv_a"][2].shape[2] == 3
    as_dict = vc.layer_activations(model, {"image": x[:3], "extra": extra[:3]}, ["conv_a"])
    assert as_dict["conv_a"].shape == (3, 14, 14, 4)
    assert vc.grad_cam(model, (x[:3], extra[:3])).shape == (3, 16, 16)
    with pytest.raises(ValueError, match="2 inputs.*'image'.*'extra'.*tuple or a dict"):
        vc.layer_activations(model, x[:3])
    with pytest.raises(ValueError, match=r"probe input '1 \(extra\)' has shape \(4,\)"):
        vc.layer_activations(model, (x[:3], np.zeros((3, 4), "float32")))
    with pytest.raises(ValueError, match="probe input 1 has shape"):
        vc.layer_activations(model, (x[:3], np.zeros((2, 3), "float32")))


def test_two_outputs_explained_by_name_or_index(digits, tmp_path: Path) -> None:
    x, y = digits
    model = models.two_outputs()
    model.compile("adam", ["sparse_categorical_crossentropy"] * 2)
    writers = [vc.TensorBoardWriter(tmp_path)]
    logger = vc.GradCAMLogger(x[0], writers, output="parity")
    _fit(model, x[:64], (y[:64], y[:64] % 2), [logger])
    events = read_events(tmp_path)
    assert _steps(events, "gradcam") == {"gradcam/conv_a": {0, 1, 2}}
    assert logger._cam is not None and logger._cam.num_classes == 2
    by_name = vc.grad_cam(model, x[:2], output="parity")
    np.testing.assert_allclose(vc.grad_cam(model, x[:2], output=1), by_name)
    with pytest.raises(ValueError, match=r"2 outputs.*\['digit', 'parity'\]"):
        vc.grad_cam(model, x[:2])
    with pytest.raises(ValueError, match="output='nope'"):
        vc.grad_cam(model, x[:2], output="nope")


def test_rescaling_inside_a_nested_base_is_found(digits, tmp_path: Path, caplog) -> None:
    import logging

    inner = keras.Input((16, 16, 1))
    base = keras.Model(
        inner,
        keras.layers.Conv2D(2, 3, name="conv")(keras.layers.Rescaling(1 / 255)(inner)),
        name="base",
    )
    model = keras.Sequential(
        [keras.Input((16, 16, 1)), base, keras.layers.Flatten(), keras.layers.Dense(10, "softmax")]
    )
    x, y = digits
    raw = np.round(x[:32] * 255)  # 0..255 pixels: the nested Rescaling maps them to [0, 1]
    with caplog.at_level(logging.WARNING, "vizcallbacks"):
        models.compiled(model).fit(
            raw,
            y[:32],
            epochs=1,
            verbose=0,
            callbacks=[vc.ActivationLogger(raw[0], [vc.TensorBoardWriter(tmp_path)])],
        )
    assert "probe's values reach" not in caplog.text
    assert sorted(read_events(tmp_path)["activations/base/conv"]) == [0, 1]
    with caplog.at_level(logging.WARNING, "vizcallbacks"):
        vc.layer_activations(models.functional(), raw[:1])
    assert "probe's values reach" in caplog.text  # no Rescaling anywhere: warned


def test_grad_cam_default_skips_a_1x1_last_layer(caplog) -> None:
    import logging

    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(3, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.MaxPooling2D(6, name="pool")(x)
    x = keras.layers.Flatten(name="flat")(x)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="out")(x))
    image = np.random.default_rng(0).random((1, 8, 8, 1)).astype("float32")
    with caplog.at_level(logging.WARNING, "vizcallbacks"):
        from vizcallbacks.compute.attribution.cams import GradCAM

        assert GradCAM(model).layer_name == "conv"
    assert "pool, is 1x1" in caplog.text and "using conv" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, "vizcallbacks"):
        heatmap = vc.grad_cam(model, image, layer="pool")
    assert "layer pool is 1x1" in caplog.text and "uniform" in caplog.text
    assert np.ptp(heatmap) < 1e-6


def test_grad_cam_logger_on_a_1x1_last_layer_logs_the_larger_one(digits, tmp_path: Path) -> None:
    x, y = digits
    inputs = keras.Input((16, 16, 1))
    h = keras.layers.Conv2D(3, 3, activation="relu", name="conv")(inputs)
    h = keras.layers.MaxPooling2D(14, name="pool")(h)  # 14x14 -> 1x1
    h = keras.layers.Flatten(name="flat")(h)
    model = models.compiled(keras.Model(inputs, keras.layers.Dense(10, "softmax", name="out")(h)))
    logger = vc.GradCAMLogger(x[0], [vc.TensorBoardWriter(tmp_path)])
    model.fit(x[:32], y[:32], epochs=1, verbose=0, callbacks=[logger])
    events = read_events(tmp_path)
    assert sorted(t for t in events if t.startswith("gradcam")) == [
        "gradcam/conv",
        "gradcam_heatmap/conv",
        "gradcam_predicted_class/conv",
        "gradcam_probability/conv",
    ]
    assert sorted(events["gradcam/conv"]) == [0, 1]


def test_display_is_drawn_under_the_heatmap(digits, tmp_path: Path) -> None:
    x, y = digits
    mean_subtracted = x[:2] - 0.5  # a probe that does not look like a picture
    display = np.zeros((2, 16, 16, 3), np.uint8)  # black: the overlay is the heatmap's share
    writers = [vc.TensorBoardWriter(tmp_path)]
    logger = vc.GradCAMLogger(mean_subtracted, writers, display=display, alpha=0.4)
    _fit(models.compiled(models.functional()), x[:64], y[:64], [logger], epochs=1)
    events = read_events(tmp_path)
    overlay = events["gradcam/conv_b/0"][1].astype(float)
    bare = events["gradcam_heatmap/conv_b/0"][1].astype(float)
    np.testing.assert_allclose(overlay, np.round(0.4 * bare), atol=1)
    with pytest.raises(ValueError, match="display must hold one picture per probe"):
        vc.GradCAMLogger(mean_subtracted, writers, display=display[:1])
    with pytest.raises(ValueError, match=r"\[0, 1\] or \[0, 255\]"):
        vc.GradCAMLogger(mean_subtracted, writers, display=display - 3.0)


# --- Every keras.applications family, untrained (weights=None: nothing to download) -----------

# ConvNeXt has its own test above. RegNet is not exported by keras.applications in Keras 3.15.
FAMILIES = [
    ("ResNet50", {}, 32),
    ("MobileNetV2", {"alpha": 0.35}, 32),
    ("EfficientNetB0", {}, 32),
    ("InceptionV3", {}, 75),  # its last 4-D layer is 1x1 at 75x75: Grad-CAM steps back
    ("Xception", {}, 71),
    ("MobileNetV3Small", {}, 32),
    ("VGG16", {}, 32),
    ("DenseNet121", {}, 32),
    ("NASNetMobile", {}, 32),
    ("EfficientNetV2B0", {}, 32),
]


def _photos(size: int) -> np.ndarray:
    """Six real photographs in [0, 1]: three scenes and their mirror images."""
    from skimage import data
    from skimage.transform import resize

    scenes = [data.chelsea(), data.astronaut(), data.coffee()]
    small = [resize(s, (size, size), anti_aliasing=True).astype("float32") for s in scenes]
    return np.stack(small + [s[:, ::-1] for s in small])


@pytest.mark.slow
@pytest.mark.parametrize(("family", "options", "size"), FAMILIES, ids=[f[0] for f in FAMILIES])
def test_every_application_family_trains_and_logs(
    family: str, options: dict, size: int, tmp_path: Path
) -> None:
    from vizcallbacks.compute.layers import leaf_layers

    model = getattr(keras.applications, family)(
        weights=None, input_shape=(size, size, 3), classes=3, **options
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    x, y = _photos(size), np.array([0, 1, 2] * 2)
    convs = [r.name for r in leaf_layers(model) if isinstance(r.layer, keras.layers.Conv2D)]
    chosen = [convs[0], convs[-1]]
    writers = [vc.TensorBoardWriter(tmp_path)]
    loggers = [
        vc.ActivationLogger(x[0], writers, layers=chosen),
        vc.GradCAMLogger(x[:2], writers, probe_names=["cat", "astronaut"]),
    ]
    model.fit(x, y, epochs=1, batch_size=6, verbose=0, callbacks=loggers)
    events = read_events(tmp_path)
    assert _steps(events, "activations") == {f"activations/{n}": {0, 1} for n in chosen}
    cam = loggers[1].layer_name
    assert _steps(events, "gradcam") == {
        f"gradcam/{cam}/{probe}": {0, 1} for probe in ("cat", "astronaut")
    }
    assert cam in {r.name for r in leaf_layers(model)}
    overlay = events[f"gradcam/{cam}/cat"][1]
    assert overlay.ndim == 3 and overlay.shape[2] == 3
