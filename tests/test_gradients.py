"""GradientLogger and vc.layer_gradients: the gradient written out on paper, nothing in the model
or its optimizer changed by a logged step, the warnings of a sick run, what the writers hold."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from keras import layers

import vizcallbacks as vc
from tests import models
from tests.events import read_events

# A Dense(1) layer set by hand: kernel (1, 2), bias 0.5, on two examples whose labels are 0.
KERNEL = np.array([[1.0], [2.0]], np.float32)
X = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
Y = np.zeros((2, 1), np.float32)
# predictions 1.5 and 2.5; MSE = (1.5² + 2.5²) / 2; dMSE/dpred = 2 (pred - y) / 2 = pred, so
# dL/dkernel = Xᵀ pred = [1.5, 2.5] and dL/dbias = 1.5 + 2.5 = 4; L2(0.1) adds 0.2 · kernel.
KERNEL_GRADIENT = np.array([[1.5], [2.5]], np.float32)
BIAS_GRADIENT = np.array([4.0], np.float32)


def hand_set_dense(l2: float = 0.0, learning_rate: float = 0.1) -> keras.Model:
    regularizer = keras.regularizers.L2(l2) if l2 else None
    model = keras.Sequential(
        [
            keras.Input((2,), name="features"),
            layers.Dense(1, name="dense", kernel_regularizer=regularizer),
        ]
    )
    model.layers[0].set_weights([KERNEL, np.array([0.5], np.float32)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate), loss="mse")
    return model


def test_hand_set_dense_gradient_is_the_one_on_paper() -> None:
    found = vc.layer_gradients(hand_set_dense(), X, Y)
    assert list(found) == ["dense"] and list(found["dense"]) == ["kernel", "bias"]
    np.testing.assert_allclose(found["dense"]["kernel"], KERNEL_GRADIENT, rtol=1e-6)
    np.testing.assert_allclose(found["dense"]["bias"], BIAS_GRADIENT, rtol=1e-6)


def test_l2_regularizer_is_in_the_loss_differentiated() -> None:
    found = vc.layer_gradients(hand_set_dense(l2=0.1), X, Y)
    np.testing.assert_allclose(found["dense"]["kernel"], [[1.7], [2.9]], rtol=1e-6)
    np.testing.assert_allclose(found["dense"]["bias"], BIAS_GRADIENT, rtol=1e-6)


def test_sample_weight_weighs_the_examples() -> None:
    # weights (1, 0): loss = 1 · 1.5² / 2 (Keras divides by the batch size), whose gradient
    # 2 · 1.5 / 2 = 1.5 reaches the first kernel entry only (x = [1, 0]).
    found = vc.layer_gradients(hand_set_dense(), X, Y, sample_weight=np.array([1.0, 0.0]))
    np.testing.assert_allclose(found["dense"]["kernel"], [[1.5], [0.0]], rtol=1e-6)
    np.testing.assert_allclose(found["dense"]["bias"], [1.5], rtol=1e-6)


def test_logged_values_read_back_from_tensorboard(tmp_path: Path) -> None:
    """One SGD epoch (lr 0.1) on the whole batch: step 0 holds the paper gradient, step 1 the
    update ratio 0.1 · ‖g‖ / ‖W‖."""
    model = hand_set_dense()
    logger = vc.GradientLogger((X, Y), [vc.TensorBoardWriter(tmp_path)])
    model.fit(X, Y, epochs=1, batch_size=2, shuffle=False, verbose=0, callbacks=[logger])
    events = read_events(tmp_path)
    g_norm = np.sqrt(1.5**2 + 2.5**2 + 4.0**2)
    w_norm = np.sqrt(1.0 + 4.0 + 0.25)
    assert events["gradient_norm/dense"][0] == pytest.approx(g_norm, rel=1e-6)
    assert events["weight_norm/dense"][0] == pytest.approx(w_norm, rel=1e-6)
    assert events["gradient_to_weight/dense"][0] == pytest.approx(g_norm / w_norm, rel=1e-6)
    assert set(events["update_ratio/dense"]) == {1}
    assert events["update_ratio/dense"][1] == pytest.approx(0.1 * g_norm / w_norm, rel=1e-5)
    for kind in ("gradients", "weights"):
        assert set(events[f"{kind}/dense/kernel"]) == set(events[f"{kind}/dense/bias"]) == {0, 1}
    flow = events["gradient_flow/all_layers"]
    assert set(flow) == {0, 1} and flow[0].dtype == np.uint8 and flow[0].shape[-1] == 3
    assert set(events["gradient_flow/evolution"]) == {1}
    assert not any(t.startswith("batch_") for t in events)  # every_n_batches not set


def test_logged_values_read_back_from_mlflow(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    writer = vc.MLflowWriter(uri, experiment_name="gradients", spool_dir=tmp_path / "spool")
    model = hand_set_dense()
    logger = vc.GradientLogger((X, Y), [writer])
    model.fit(X, Y, epochs=1, batch_size=2, shuffle=False, verbose=0, callbacks=[logger])
    assert writer.wait(timeout=120)
    client = MlflowClient(uri)
    [run] = client.search_runs([client.get_experiment_by_name("gradients").experiment_id])
    history = {
        m.step: m.value for m in client.get_metric_history(run.info.run_id, "gradient_norm/dense")
    }
    assert history[0] == pytest.approx(np.sqrt(24.5), rel=1e-6) and set(history) == {0, 1}
    kernel_max = client.get_metric_history(run.info.run_id, "gradients_max/dense/kernel")
    assert {m.step: m.value for m in kernel_max}[0] == pytest.approx(2.5, rel=1e-6)


def _state(model: keras.Model) -> list[np.ndarray]:
    """Every variable of the model, its optimizer (moments, iterations, loss scale) and metrics."""
    variables = list(model.variables) + list(model.optimizer.variables)
    variables += list(model.metrics_variables)
    return [np.array(keras.ops.convert_to_numpy(v.value)) for v in variables]


class _Snapshot(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.states: list[list[np.ndarray]] = []

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self.states.append(_state(self.model))


def _bn_dropout_cnn() -> keras.Model:
    inputs = keras.Input((16, 16, 1))
    x = layers.Conv2D(4, 3, name="conv")(inputs)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.Dropout(0.5, name="drop")(layers.Flatten()(layers.ReLU()(x)))
    return keras.Model(inputs, layers.Dense(10, activation="softmax", name="probs")(x))


@pytest.mark.parametrize("policy", ["float32", "mixed_float16"])
def test_a_logged_step_changes_nothing(digits: Any, tmp_path: Path, policy: str) -> None:
    """Snapshots taken just before and just after the logger's on_epoch_end are equal bit for bit:
    weights, BatchNorm statistics, Adam's moments and iterations, the loss scale, the metrics."""
    x, y = digits
    keras.config.set_dtype_policy(policy)
    try:
        model = _bn_dropout_cnn()
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["acc"])
    finally:
        keras.config.set_dtype_policy("float32")
    if policy == "mixed_float16":
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    before, after = _Snapshot(), _Snapshot()
    logger = vc.GradientLogger((x[:32], y[:32]), [vc.TensorBoardWriter(tmp_path)])
    model.fit(x[:64], y[:64], epochs=2, batch_size=32, verbose=0, callbacks=[before, logger, after])
    assert len(before.states) == len(after.states) == 2
    for first, second in zip(before.states, after.states, strict=True):
        assert len(first) == len(second) > 10
        for a, b in zip(first, second, strict=True):
            np.testing.assert_array_equal(a, b)
    # training did move the state between the epochs (a loss-scale optimizer may skip steps)
    assert any((a != b).any() for a, b in zip(*before.states, strict=True))
    events = read_events(tmp_path)
    assert set(events["gradient_norm/conv"]) == {0, 1, 2}
    assert all(np.isfinite(v) and v > 0 for v in events["gradient_norm/conv"].values())


def _warnings(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)


def _flat_digits(digits: Any) -> tuple[np.ndarray, np.ndarray]:
    x, y = digits
    return x[:128, ::2, ::2].reshape(128, -1), y[:128]


def test_deep_sigmoid_mlp_warns_vanishing_naming_its_first_layers(
    digits: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    x, y = _flat_digits(digits)
    model = keras.Sequential(
        [keras.Input((64,))]
        + [layers.Dense(16, activation="sigmoid", name=f"dense_{i}") for i in range(19)]
        + [layers.Dense(10, activation="softmax", name="probs")]
    )
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    logger = vc.GradientLogger((x[:64], y[:64]), [vc.TensorBoardWriter(tmp_path)])
    with caplog.at_level(logging.WARNING, logger="vizcallbacks"):
        model.fit(x, y, epochs=2, batch_size=64, verbose=0, callbacks=[logger])
    text = _warnings(caplog)
    assert text.count("vanishing gradients in dense_0, dense_1") == 1, text
    assert "exploding" not in text and "no gradient" not in text


def test_relu_batchnorm_cnn_of_the_same_depth_does_not_warn(
    digits: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    x, y = digits
    inputs = keras.Input((16, 16, 1))
    h = inputs
    for i in range(19):
        h = layers.Conv2D(8, 3, padding="same", kernel_initializer="he_normal", name=f"c{i}")(h)
        h = layers.ReLU()(layers.BatchNormalization(name=f"bn{i}")(h))
    outputs = layers.Dense(10, activation="softmax")(layers.GlobalAveragePooling2D()(h))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    logger = vc.GradientLogger((x[:32], y[:32]), [vc.TensorBoardWriter(tmp_path)])
    with caplog.at_level(logging.WARNING, logger="vizcallbacks"):
        model.fit(x[:64], y[:64], epochs=2, batch_size=32, verbose=0, callbacks=[logger])
    assert "GradientLogger" not in _warnings(caplog)
    assert len(read_events(tmp_path)["gradient_norm/c0"]) == 3


def test_an_unused_branch_is_named_as_getting_no_gradient(
    digits: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    x, y = _flat_digits(digits)
    inputs = keras.Input((64,))
    used = layers.Dense(10, activation="softmax", name="probs")(inputs)
    unused = layers.Dense(3, name="side_head")(inputs)
    model = keras.Model(inputs, {"probs": used, "side_head": unused})
    model.compile(
        optimizer="sgd", loss={"probs": "sparse_categorical_crossentropy", "side_head": None}
    )
    ys = {"probs": y, "side_head": np.zeros((len(y), 3), np.float32)}
    logger = vc.GradientLogger(
        (x[:32], {k: v[:32] for k, v in ys.items()}), [vc.TensorBoardWriter(tmp_path)]
    )
    with caplog.at_level(logging.WARNING, logger="vizcallbacks"):
        model.fit(x, ys, epochs=1, batch_size=32, verbose=0, callbacks=[logger])
    text = _warnings(caplog)
    assert "layer(s) side_head get no gradient" in text and "probs get" not in text, text
    assert text.count("get no gradient") == 1


def test_huge_learning_rate_warns_exploding_while_the_weights_are_finite(
    digits: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    x, y = _flat_digits(digits)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            layers.Dense(32, activation="relu", name="hidden"),
            layers.Dense(10, name="out"),
        ]
    )
    model.compile(optimizer=keras.optimizers.SGD(1e3), loss="mse")
    targets = np.eye(10, dtype=np.float32)[y]
    finite_when_warned: list[bool] = []

    class Watch(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            if "exploding" in _warnings(caplog) and not finite_when_warned:
                weights = [np.asarray(w) for w in self.model.get_weights()]
                finite_when_warned.append(all(np.isfinite(w).all() for w in weights))

    logger = vc.GradientLogger(
        (x[:32], targets[:32]), [vc.TensorBoardWriter(tmp_path)], every_n_batches=1
    )
    with caplog.at_level(logging.WARNING, logger="vizcallbacks"):
        model.fit(x, targets, epochs=3, batch_size=16, verbose=0, callbacks=[logger, Watch()])
    assert finite_when_warned == [True], _warnings(caplog)
    assert _warnings(caplog).count("exploding") == 1
    assert "exploding weights in hidden, out" in _warnings(caplog)
    steps = read_events(tmp_path)["batch_weight_norm/hidden"]
    assert sorted(steps) == list(range(1, 25))


def test_the_gradient_pass_is_compiled_once(monkeypatch: Any, tmp_path: Path) -> None:
    """Steps 0 to 3 run the pass's body once, when it is traced (TensorFlow, JAX): never traced
    again while training changes the weights. PyTorch runs it eagerly, once per step."""
    from vizcallbacks.compute.gradients import GradientPass

    runs: list[int] = []
    body = GradientPass._loss_and_gradients

    def counted(self: GradientPass, *args: Any) -> Any:
        runs.append(1)
        return body(self, *args)

    monkeypatch.setattr(GradientPass, "_loss_and_gradients", counted)
    logger = vc.GradientLogger((X, Y), [vc.TensorBoardWriter(tmp_path)])
    hand_set_dense().fit(X, Y, epochs=3, batch_size=2, verbose=0, callbacks=[logger])
    assert sorted(read_events(tmp_path)["gradient_norm/dense"]) == [0, 1, 2, 3]
    assert len(runs) == (4 if keras.backend.backend() == "torch" else 1)


def test_batch_hook_only_when_asked(tmp_path: Path) -> None:
    """Without every_n_batches the logger defines no batch hook: Keras keeps its asynchronous
    batch dispatch."""
    plain = vc.GradientLogger((X, Y), [vc.TensorBoardWriter(tmp_path)])
    assert "on_train_batch_end" not in vars(plain)
    assert type(plain).on_train_batch_end is keras.callbacks.Callback.on_train_batch_end
    batched = vc.GradientLogger((X, Y), [vc.TensorBoardWriter(tmp_path)], every_n_batches=5)
    assert "on_train_batch_end" in vars(batched)


def test_a_resumed_fit_continues_at_epochs_not_batches(tmp_path: Path) -> None:
    """Batch-stepped tags (steps count batches) never set the step a second fit continues at:
    2 epochs of 8 batches, then 1 more epoch, log epoch steps 0, 1, 2 and 3."""
    model = hand_set_dense()
    x = np.tile(X, (8, 1))
    y = np.zeros((16, 1), np.float32)
    for epochs in (2, 1):
        logger = vc.GradientLogger((X, Y), [vc.TensorBoardWriter(tmp_path)], every_n_batches=1)
        model.fit(x, y, batch_size=2, epochs=epochs, verbose=0, callbacks=[logger])
    events = read_events(tmp_path)
    assert sorted(events["gradient_norm/dense"]) == [0, 1, 2, 3]
    assert max(events["batch_weight_norm/dense"]) >= 16  # batch steps went past the epochs


@pytest.mark.parametrize(
    ("batch", "error", "words"),
    [
        (X, TypeError, "batch must be a tuple (x, y)"),
        ((X, Y[:1]), ValueError, "batch y : 1"),
        ((X, Y, np.ones(3)), ValueError, "sample_weight must be 2 real numbers"),
        ((X.astype(str), Y), TypeError, "batch x must hold numbers"),
        ((np.full((2, 2), np.nan), Y), ValueError, "NaN or Inf"),
    ],
)
def test_bad_batches_are_refused_naming_the_part(
    batch: Any, error: type, words: str, tmp_path: Path
) -> None:
    with pytest.raises(error) as caught:
        vc.GradientLogger(batch, [vc.TensorBoardWriter(tmp_path)])
    assert words in str(caught.value)


def test_a_batch_that_does_not_fit_the_model_is_refused_before_training(
    digits: Any, tmp_path: Path
) -> None:
    logger = vc.GradientLogger((np.zeros((2, 3)), Y), [vc.TensorBoardWriter(tmp_path)])
    with pytest.raises(ValueError, match=r"input 'features' has shape \(3,\).*expects \(2,\)"):
        hand_set_dense().fit(X, Y, epochs=1, verbose=0, callbacks=[logger])
    x, y = digits
    one_hot = np.eye(10, dtype=np.float32)[y[:8]]  # the loss is sparse: it takes class indices
    wrong_labels = vc.GradientLogger((x[:8], one_hot), [vc.TensorBoardWriter(tmp_path)])
    model = models.compiled(models.functional())
    with pytest.raises(ValueError, match="loss could not be computed on the batch"):
        model.fit(x[:8], y[:8], epochs=1, verbose=0, callbacks=[wrong_labels])


def test_gradient_flow_picture_has_a_row_per_layer(digits: Any) -> None:
    from vizcallbacks.render.gradient_flow import HEADER_HEIGHT, ROW_HEIGHT

    x, y = digits
    model = models.compiled(models.functional())
    picture = vc.gradient_flow(model, x[:16], y[:16])
    assert picture.dtype == np.uint8 and picture.ndim == 3
    assert picture.shape[0] == HEADER_HEIGHT + 4 * ROW_HEIGHT + 4  # conv_a, bn_a, conv_b, probs
