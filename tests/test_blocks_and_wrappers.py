"""Blocks and wrappers: a custom block logs its own output after its layers' (keras-hub's ViT, a
residual block), and FilterLogger finds the convolution inside ``TimeDistributed``."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from keras import layers

import vizcallbacks as vc
from tests.events import read_events, tag_steps
from vizcallbacks.compute.filters import filter_weights, normalize_to_unit
from vizcallbacks.render.colormap import DEFAULT_CMAP
from vizcallbacks.views.filters import filter_records


class AddConv(layers.Layer):
    """A residual block: ``x + conv(x)``."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.conv = layers.Conv2D(1, 1, name="conv")

    def call(self, x):
        return x + self.conv(x)


def _logged_layers(events: dict, kind: str = "activations") -> list[str]:
    """The layers of ``kind`` in the order their tags were first written."""
    return [tag.split("/", 1)[1] for tag in events if tag.startswith(f"{kind}/")]


def test_residual_block_logs_its_own_output_with_the_right_value(tmp_path: Path) -> None:
    # conv(x) = 2x + 0.5, so the block gives x + 2x + 0.5 = 3x + 0.5.
    inputs = keras.Input((4, 4, 1))
    block = AddConv(name="res")
    x = layers.GlobalAveragePooling2D(name="gap")(block(inputs))
    model = keras.Model(inputs, layers.Dense(2, activation="softmax", name="probs")(x))
    block.conv.set_weights([np.full((1, 1, 1, 1), 2.0), np.full(1, 0.5)])
    block.trainable = False  # the head trains; the block keeps its hand-set weights
    model.compile("adam", "sparse_categorical_crossentropy")
    # A probe half zeros, half ones: mean 0.5, std 0.5; the block's output mean 2, std 1.5.
    probe = np.zeros((4, 4, 1), "float32")
    probe[:, :2] = 1.0
    rng = np.random.default_rng(0)
    x_train = rng.uniform(0, 1, (16, 4, 4, 1)).astype("float32")
    y_train = rng.integers(0, 2, 16)
    logger = vc.ActivationLogger(probe, [vc.TensorBoardWriter(tmp_path)])
    model.fit(x_train, y_train, epochs=2, batch_size=8, verbose=0, callbacks=[logger])

    events = read_events(tmp_path)
    assert _logged_layers(events) == ["res/conv", "res"]  # the block after its layer
    for step in (0, 1, 2):
        assert events["activation_mean/res/conv"][step] == pytest.approx(1.5)  # 2·0.5 + 0.5
        assert events["activation_mean/res"][step] == pytest.approx(2.0)  # 3·0.5 + 0.5
        assert events["activation_std/res"][step] == pytest.approx(1.5)  # 3·0.5
    assert events["activations/res"][2].shape[2] == 3
    maps = vc.layer_activations(model, probe)
    assert list(maps) == ["res/conv", "res", "gap", "probs"]
    np.testing.assert_allclose(maps["res"][0], 3 * probe + 0.5, rtol=1e-6)


def _tiny_vit() -> keras.Model:
    keras_hub = pytest.importorskip("keras_hub")
    backbone = keras_hub.models.ViTBackbone(
        image_shape=(32, 32, 3),
        patch_size=8,
        num_layers=2,
        num_heads=2,
        hidden_dim=16,
        mlp_dim=32,
    )
    return keras_hub.models.ViTImageClassifier(backbone=backbone, num_classes=3, preprocessor=None)


def test_vit_blocks_log_their_outputs_in_forward_order(tmp_path: Path) -> None:
    model = _tiny_vit()  # built from its config: no weights downloaded
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (8, 32, 32, 3)).astype("float32")
    labels = rng.integers(0, 3, 8)
    logger = vc.ActivationLogger(images[:2], [vc.TensorBoardWriter(tmp_path)], max_channels=4)
    model.fit(images, labels, epochs=1, batch_size=4, verbose=0, callbacks=[logger])

    events = read_events(tmp_path)
    order = _logged_layers(events, "activation_mean")
    backbone = model.backbone.name
    encoder = f"{backbone}/vit_encoder"
    expected = [
        f"{backbone}/vit_patching_and_embedding/patch_embedding",
        f"{backbone}/vit_patching_and_embedding",  # the embedded patches
        f"{encoder}/transformer_block_1/mha",
        f"{encoder}/transformer_block_1/mlp/dense_2",
        f"{encoder}/transformer_block_1/mlp",
        f"{encoder}/transformer_block_1",  # the residual stream after block 1
        f"{encoder}/transformer_block_2/ln_1",
        f"{encoder}/transformer_block_2",
        f"{encoder}/ln",
        encoder,
        backbone,
        "predictions",
    ]
    assert [name for name in order if name in expected] == expected
    for name in expected[:-1]:  # (N, 17 tokens, 16) drawn as token x channel heatmaps
        assert {0, 1} <= {s for t, s in tag_steps(events) if t == f"activations/{name}/0"}
    # The position embedding (1, 17, 16) is the same for every probe: statistics, no pictures.
    position = f"{backbone}/vit_patching_and_embedding/position_embedding"
    assert set(events[f"activation_mean/{position}"]) == {0, 1}
    assert not [t for t in events if t.startswith(f"activations/{position}/")]
    # Block 2's output is its input plus attention and MLP: not any of its layers' outputs.
    stream = vc.layer_activations(model, images[:2])
    block_2 = stream[f"{encoder}/transformer_block_2"]
    assert block_2.shape == (2, 17, 16)
    for name, values in stream.items():
        if name.startswith(f"{encoder}/transformer_block_2/"):
            assert values.shape != block_2.shape or not np.allclose(values, block_2)


def _video_model() -> keras.Model:
    """Clips of 3 frames 8x8: a convolution per frame, then an LSTM over time."""
    inputs = keras.Input((3, 8, 8, 1))
    x = layers.TimeDistributed(layers.Conv2D(4, 3, name="conv"), name="frames")(inputs)
    x = layers.TimeDistributed(layers.GlobalAveragePooling2D(), name="pool")(x)
    x = layers.Bidirectional(layers.LSTM(4), name="bi")(x)
    return keras.Model(inputs, layers.Dense(2, activation="softmax", name="probs")(x))


def test_filter_logger_finds_the_convolution_inside_time_distributed(tmp_path: Path) -> None:
    model = _video_model()
    model.compile("adam", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    clips = rng.uniform(0, 1, (16, 3, 8, 8, 1)).astype("float32")
    labels = rng.integers(0, 2, 16)
    logger = vc.FilterLogger([vc.TensorBoardWriter(tmp_path)])
    model.fit(clips, labels, epochs=2, batch_size=8, verbose=0, callbacks=[logger])

    events = read_events(tmp_path)
    assert {t for t in events if t.startswith("filters/")} == {"filters/frames/conv"}
    assert set(events["filters/frames/conv"]) == {0, 1, 2}
    assert set(events["filter_drift/frames/conv"]) == {1, 2}
    assert events["filter_drift/frames/conv"][2] > 0  # it trained
    conv = model.get_layer("frames").layer
    final = normalize_to_unit(filter_weights(conv))
    [expected] = filter_records("frames/conv", final, 64, 16, DEFAULT_CMAP)
    np.testing.assert_array_equal(events["filters/frames/conv"][2], expected.pixels)
    assert set(vc.normalized_filters(model)) == {"frames/conv"}


def test_filter_patterns_do_not_look_inside_wrappers(tmp_path: Path) -> None:
    """Gradient ascent makes an image input; a video model has none: refused before training."""
    model = _video_model()
    model.compile("adam", "sparse_categorical_crossentropy")
    logger = vc.FilterPatternLogger([vc.TensorBoardWriter(tmp_path)])
    clips = np.zeros((4, 3, 8, 8, 1), "float32")
    with pytest.raises(ValueError, match="inside a wrapper"):
        model.fit(clips, np.zeros(4), epochs=1, verbose=0, callbacks=[logger])
