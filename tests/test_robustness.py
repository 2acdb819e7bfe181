"""Bad input fails before the first step with a message that names the fix; a started run never
dies of a visualization problem."""

from __future__ import annotations

import logging
import resource
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import layers

import vizcallbacks as vc
from tests import models
from tests.events import read_events
from vizcallbacks.records import Image


def _fit(model: keras.Model, digits, callbacks: list, epochs: int = 1) -> keras.Model:
    x, y = digits
    models.compiled(model).fit(x[:32], y[:32], epochs=epochs, verbose=0, callbacks=callbacks)
    return model


# --- Bad input: a clear error before the first training step -------------------------------

CONSTRUCTOR_ERRORS = [
    (lambda w: vc.ActivationLogger(np.array([["a"]]), w), TypeError, "numeric.*<U1"),
    (lambda w: vc.ActivationLogger(np.full((16, 16, 1), np.nan), w), ValueError, "NaN or Inf"),
    (lambda w: vc.ActivationLogger(np.zeros((0, 16, 16, 1)), w), ValueError, "empty"),
    (
        lambda w: vc.ActivationLogger(np.zeros((16, 16, 1)), w, every_n_epochs=0),
        ValueError,
        "every_n_epochs must be ≥ 1. Received: every_n_epochs=0",
    ),
    (
        lambda w: vc.ActivationLogger(np.zeros((16, 16, 1)), w, max_channels=0),
        ValueError,
        "max_channels must be ≥ 1",
    ),
    (lambda w: vc.FilterLogger(w, cmap="nope"), ValueError, "'nope' is not a matplotlib colormap"),
    (lambda w: vc.FilterLogger([]), ValueError, "writers is empty"),
    (lambda w: vc.FilterLogger(["logs"]), TypeError, r"writers\[0\] is not a writer.*'logs'"),
    (lambda w: vc.FilterLogger("logs"), TypeError, "must be a list of writers"),
]


@pytest.mark.parametrize(("make", "error", "message"), CONSTRUCTOR_ERRORS)
def test_constructor_rejects(make, error, message, tmp_path: Path) -> None:
    with pytest.raises(error, match=message):
        make([vc.TensorBoardWriter(tmp_path)])


FIT_ERRORS = [
    (
        "probe size",
        models.functional,
        lambda w: vc.ActivationLogger(np.zeros((20, 20, 1)), w),
        r"shape \(20, 20, 1\) but the model expects inputs of shape \(16, 16, 1\)",
    ),
    (
        "probe channel axis",
        models.functional,
        lambda w: vc.ActivationLogger(np.zeros((16, 16)), w),
        r"shape \(16, 16\) but the model expects .*\(16, 16, 1\).*\[\.\.\., None\]",
    ),
    (
        "probe channels",
        models.functional,
        lambda w: vc.ActivationLogger(np.zeros((16, 16, 3)), w),
        r"expects inputs of shape \(16, 16, 1\)",
    ),
    (
        "unknown layer",
        models.functional,
        lambda w: vc.ActivationLogger(np.zeros((16, 16, 1)), w, layers=["conv_c"]),
        "no layer named 'conv_c'. Closest names: conv_b, conv_a",
    ),
    (
        "index",
        models.functional,
        lambda w: vc.FilterLogger(w, layers=[42]),
        r"index 42 is out of range: the model has 8 layers",
    ),
    (
        "nothing to draw",
        lambda: keras.Sequential(
            [keras.Input((16, 16, 1)), layers.Flatten(), layers.Dense(10, activation="softmax")]
        ),
        lambda w: vc.ActivationLogger(np.zeros((16, 16, 1)), w),
        "no layer with a 4-D .* found: Dense, Flatten",
    ),
    (
        "no conv",
        models.functional,
        lambda w: vc.FilterLogger(w, layers=["gap", "probs"]),
        "no Conv2D.*found: Dense, GlobalAveragePooling2D",
    ),
    (
        "unbuildable",
        lambda: keras.Sequential([layers.Flatten(), layers.Conv2D(4, 3)]),
        lambda w: vc.ActivationLogger(np.zeros((16, 16, 1)), w),
        r"not built and could not be built for inputs of shape \(None, 16, 16, 1\)",
    ),
]


@pytest.mark.parametrize(
    ("case", "factory", "make", "message"), FIT_ERRORS, ids=[c[0] for c in FIT_ERRORS]
)
def test_fit_fails_before_first_step(case, factory, make, message, digits, tmp_path) -> None:
    model = factory()
    with pytest.raises(ValueError, match=message):
        _fit(model, digits, [make([vc.TensorBoardWriter(tmp_path)])])
    assert int(model.optimizer.iterations) == 0


def test_unwritable_log_dir(digits, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    model = models.functional()
    with pytest.raises(ValueError, match="cannot create or write the log directory .*a-file/logs"):
        _fit(model, digits, [vc.FilterLogger([vc.TensorBoardWriter(blocker / "logs")])])
    assert int(model.optimizer.iterations) == 0


def test_probe_far_outside_training_range_warns(digits, tmp_path, caplog) -> None:
    probe = digits[0][0] * 255
    with caplog.at_level(logging.WARNING, "vizcallbacks"):
        _fit(
            models.functional(),
            digits,
            [vc.ActivationLogger(probe, [vc.TensorBoardWriter(tmp_path)])],
        )
    assert "probe's values reach 239.1" in caplog.text and "probe / 255" in caplog.text


def test_mean_subtracted_probe_is_not_mistaken_for_raw_pixels(digits, tmp_path, caplog) -> None:
    probe = digits[0][0] * 255 - 120  # VGG's "caffe" preprocessing: about -120..135
    with caplog.at_level(logging.WARNING, "vizcallbacks"):
        _fit(
            models.functional(),
            digits,
            [vc.ActivationLogger(probe, [vc.TensorBoardWriter(tmp_path)])],
        )
    assert "probe's values reach" not in caplog.text


class Subclassed(keras.Model):
    def __init__(self) -> None:
        super().__init__()
        self.conv = layers.Conv2D(4, 3, activation="relu", name="conv")
        self.pool = layers.GlobalAveragePooling2D()
        self.out = layers.Dense(10, activation="softmax")

    def call(self, x):
        return self.out(self.pool(self.conv(x)))


def test_subclassed_model_is_drawn_and_filters_still_work(digits, tmp_path) -> None:
    _fit(
        Subclassed(),
        digits,
        [vc.ActivationLogger(digits[0][0], [vc.TensorBoardWriter(tmp_path / "a")])],
    )
    assert sorted(read_events(tmp_path / "a")["activations/conv"]) == [0, 1]
    _fit(Subclassed(), digits, [vc.FilterLogger([vc.TensorBoardWriter(tmp_path / "f")])])
    # The model has weights only after its first step: steps 1.. are logged, not 0.
    assert sorted(read_events(tmp_path / "f")["filters/conv"]) == [1]


# --- During training: warn, skip, keep training --------------------------------------------


class PoisonKernel(keras.callbacks.Callback):
    """Puts NaN and Inf into conv_a's kernel after the first epoch, as a diverging run would."""

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            kernel = self.model.get_layer("conv_a").kernel
            value = np.asarray(kernel).copy()
            value[0, 0, 0, 0], value[1, 1, 0, 1] = np.nan, np.inf
            kernel.assign(value)


def test_diverging_run_is_drawn_and_warned_once(digits, tmp_path, caplog) -> None:
    writers = [vc.TensorBoardWriter(tmp_path)]
    loggers = [
        vc.ActivationLogger(digits[0][0], writers, layers=["conv_a"]),
        vc.FilterLogger(writers),
    ]
    with caplog.at_level(logging.WARNING, "vizcallbacks"):
        model = _fit(models.functional(), digits, [PoisonKernel(), *loggers], epochs=4)
    assert len(model.history.history["loss"]) == 4
    events = read_events(tmp_path)
    assert sorted(events["filters/conv_a"]) == [0, 1, 2, 3, 4]
    magenta = (events["filters/conv_a"][4] == [255, 0, 255]).all(axis=-1)
    assert magenta.any() and not (events["filters/conv_a"][0] == [255, 0, 255]).all(axis=-1).any()
    assert np.isnan(events["activation_mean/conv_a"][4])
    assert caplog.text.count("kernel of conv_a holds NaN or Inf") == 1
    assert caplog.text.count("activations of conv_a holds NaN or Inf") == 1


class BrokenWriter:
    """A sink whose disk is full: every image write fails."""

    def __init__(self) -> None:
        self.calls = 0

    def check(self): ...

    def last_step(self):
        return -1

    def write(self, records, step):
        if any(isinstance(record, Image) for record in records):
            self.calls += 1
            raise OSError("No space left on device")

    def flush(self): ...
    def close(self): ...


def test_failing_writer_is_reported_once_and_others_go_on(digits, tmp_path, caplog) -> None:
    broken = BrokenWriter()
    writers = [broken, vc.TensorBoardWriter(tmp_path)]
    with caplog.at_level(logging.WARNING, "vizcallbacks"):
        model = _fit(
            models.functional(),
            digits,
            [vc.ActivationLogger(digits[0][0], writers, layers=["conv_a"])],
            epochs=3,
        )
    assert len(model.history.history["loss"]) == 3
    assert broken.calls > 3
    assert caplog.text.count("BrokenWriter.write failed (OSError: No space left") == 1
    assert sorted(read_events(tmp_path)["activations/conv_a"]) == [0, 1, 2, 3]


class Stop(keras.callbacks.Callback):
    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise self.error


@pytest.mark.parametrize("error", [KeyboardInterrupt(), RuntimeError("another callback failed")])
def test_interrupted_fit_keeps_what_was_logged(error, digits, tmp_path) -> None:
    logger = vc.ActivationLogger(digits[0][0], [vc.TensorBoardWriter(tmp_path)], layers=["conv_a"])
    with pytest.raises(type(error)):
        _fit(models.functional(), digits, [logger, Stop(error)], epochs=5)
    logger.finish()
    assert sorted(read_events(tmp_path)["activations/conv_a"]) == [0, 1, 2]


def test_unsafe_layer_names_give_safe_distinct_tags(digits, tmp_path) -> None:
    # TensorFlow itself refuses spaces and non-ASCII in layer names; these it accepts.
    inputs = keras.Input((16, 16, 1))
    x = layers.Conv2D(2, 3, name="my>conv")(inputs)
    x = layers.Conv2D(2, 3, name="my_conv")(x)
    x = layers.Conv2D(2, 3, name="..")(x)
    x = layers.Conv2D(2, 3, name="up>..>..>evil")(x)
    outputs = layers.Dense(10, activation="softmax")(layers.Flatten(name="flat")(x))
    model = keras.Model(inputs, outputs)
    _fit(model, digits, [vc.ActivationLogger(digits[0][0], [vc.TensorBoardWriter(tmp_path)])])
    grids = {tag for tag in read_events(tmp_path) if tag.startswith("activations/")}
    assert grids == {
        "activations/my_conv",
        "activations/my_conv_2",
        "activations/_",
        "activations/up_._._evil",
    }
    gifs = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.gif")}
    assert gifs == {f"files/evolution/{g.split('/', 1)[1]}.gif" for g in grids}


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


@pytest.mark.slow
def test_memory_stays_flat_over_100_logged_epochs(digits, tmp_path) -> None:
    x, y = digits
    writers = [vc.TensorBoardWriter(tmp_path)]
    model = models.compiled(models.functional())
    callbacks = [vc.ActivationLogger(x[0], writers), vc.FilterLogger(writers)]
    model.fit(x[:16], y[:16], epochs=10, verbose=0, callbacks=callbacks)
    before = _rss_mb()
    model.fit(x[:16], y[:16], epochs=100, verbose=0, callbacks=callbacks)
    growth = _rss_mb() - before
    print(f"resident memory growth over 100 logged epochs: {growth:.1f} MB")
    assert sorted(read_events(tmp_path)["activations/conv_a"])[-1] == 110
    assert growth < 30
