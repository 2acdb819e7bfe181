"""Target 1, the whole added cost of a real epoch, and memory over 100 logged epochs.

Plain and logged ``fit`` calls alternate (A B A B), each on a fresh fashion_cnn after a short
untimed fit that traces the train step. Timed: the whole ``fit`` of one epoch, with the loggers'
setup, step 0, step 1, the summary, the writers closed and MLflow's delivery waited for: wall
time and process CPU time (every thread), each pair's difference as a % of its plain epoch.
"""

from __future__ import annotations

import gc
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from benchmarks.common import Clock, Row, judged, make_writers, measured, progress, rss_mb

__all__ = ["Data", "EpochCost", "epoch_rows", "fashion_cnn", "load_data", "measure_epochs"]


def compiled(model: keras.Model) -> keras.Model:
    """``model`` compiled as the experiments train it (Adam, sparse cross-entropy)."""
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def fashion_cnn() -> keras.Model:
    """The 243,786-parameter fashion_cnn of ``experiments/``, seeded and compiled."""
    from experiments.fashion_cnn import build_model

    keras.utils.set_random_seed(0)
    return compiled(build_model())


def tiny_cnn() -> keras.Model:
    """A 1,418-parameter CNN for the 100-epoch memory run."""
    from keras import layers

    keras.utils.set_random_seed(0)
    return compiled(
        keras.Sequential(
            [
                keras.Input((28, 28, 1)),
                layers.Conv2D(8, 3, activation="relu", name="conv1"),
                layers.MaxPooling2D(2, name="pool1"),
                layers.Conv2D(8, 3, activation="relu", name="conv2"),
                layers.GlobalAveragePooling2D(name="gap"),
                layers.Dense(10, activation="softmax", name="probs"),
            ],
            name="tiny_cnn",
        )
    )


@dataclass(frozen=True)
class Data:
    """Training images and labels, and the probe the experiments log (a bag + one per class)."""

    x: np.ndarray
    y: np.ndarray
    probe: np.ndarray
    names: list[str]
    source: str


def load_data(samples: int, probe_images: int) -> Data:
    """The first ``samples`` Fashion-MNIST training images (the full Debian set when present)
    and the first ``probe_images`` images of the experiments' probe."""
    from experiments.datasets import load_fashion_mnist, scaled
    from experiments.fashion_cnn import probe

    split = load_fashion_mnist()
    images, names = probe(split)
    x, y = scaled(split.x_train[:samples]), split.y_train[:samples].astype("int64")
    return Data(x, y, images[:probe_images], names[:probe_images], split.describe())


def default_loggers(probe: np.ndarray, writers: list[Any], names: Sequence[str] | None) -> list:
    """ActivationLogger + FilterLogger on every layer, as the experiments use them."""
    import vizcallbacks as vc

    return [vc.ActivationLogger(probe, writers, probe_names=names), vc.FilterLogger(writers)]


@dataclass
class EpochCost:
    """Per pair: plain and logged epochs, wall and CPU seconds."""

    plain_wall: list[float] = field(default_factory=list)
    plain_cpu: list[float] = field(default_factory=list)
    logged_wall: list[float] = field(default_factory=list)
    logged_cpu: list[float] = field(default_factory=list)
    model: keras.Model | None = None


def timed_fit(
    data: Data, batch_size: int, warm: int, root: Path, name: str | None
) -> tuple[Clock, keras.Model]:
    """One epoch over ``data`` after a warm-up fit; with ``name``, the loggers (one probe image,
    TensorBoard + MLflow) are on and the clock runs until their writers are closed."""
    from benchmarks.common import wait_delivered

    model = fashion_cnn()
    model.fit(data.x[:warm], data.y[:warm], batch_size=batch_size, epochs=1, verbose=0)
    gc.collect()
    with Clock() as clock:
        writers = make_writers(root, name) if name else []
        loggers = default_loggers(data.probe[:1], writers, None) if name else []
        model.fit(data.x, data.y, batch_size=batch_size, epochs=1, verbose=0, callbacks=loggers)
        wait_delivered(writers)  # closed at train end; this returns at once if all is there
    return clock, model


def measure_epochs(data: Data, pairs: int, batch_size: int, warm: int, root: Path) -> EpochCost:
    """``pairs`` pairs, plain then logged (A B A B)."""
    cost = EpochCost()
    for pair in range(pairs):
        plain, _ = timed_fit(data, batch_size, warm, root, None)
        logged, cost.model = timed_fit(data, batch_size, warm, root, f"epoch_{pair}")
        cost.plain_wall.append(plain.wall)
        cost.plain_cpu.append(plain.cpu)
        cost.logged_wall.append(logged.wall)
        cost.logged_cpu.append(logged.cpu)
        progress(
            f"epoch pair {pair + 1}/{pairs}: plain {plain.wall:.1f} s wall {plain.cpu:.1f} s CPU; "
            f"logged {logged.wall:.1f} s wall {logged.cpu:.1f} s CPU"
        )
    return cost


def epoch_rows(cost: EpochCost, samples: int, batch_size: int) -> list[Row]:
    def added(logged: list[float], plain: list[float]) -> list[float]:
        return [100 * (lg - pl) / pl for pl, lg in zip(plain, logged, strict=True)]

    n = f"{samples:,} images, batch {batch_size}, 1 probe image, TensorBoard + MLflow"
    spread = 100 * (max(cost.plain_cpu) / min(cost.plain_cpu) - 1)
    return [
        judged(
            f"1. added CPU time of a whole epoch's fit incl. drain ({n}), % of plain",
            added(cost.logged_cpu, cost.plain_cpu),
            "%",
            1,
        ),
        judged(
            "1. added wall time of the same fit incl. drain, % of plain",
            added(cost.logged_wall, cost.plain_wall),
            "%",
            1,
        ),
        measured("1. plain epoch: wall", cost.plain_wall, "s"),
        measured("1. plain epoch: CPU (all threads)", cost.plain_cpu, "s"),
        measured("1. logged epoch incl. drain: wall", cost.logged_wall, "s"),
        measured("1. logged epoch incl. drain: CPU (all threads)", cost.logged_cpu, "s"),
        measured(
            "1. added CPU per fit (logged - plain, seconds)",
            [lg - pl for pl, lg in zip(cost.plain_cpu, cost.logged_cpu, strict=True)],
            "s",
        ),
        Row("1. noise: plain epochs' CPU, slowest / fastest - 1", spread, "%"),
    ]


# Memory -------------------------------------------------------------------------------------
def memory_growth(data: Data, root: Path, epochs: int, warm: int, samples: int, logged: bool):
    """RSS growth (MB) over ``epochs`` epochs after a warm-up fit: at the end and the largest
    seen at an epoch end."""
    model = tiny_cnn()
    writers = make_writers(root, "memory") if logged else []
    loggers = default_loggers(data.probe[:1], writers, None) if logged else []
    fit: dict[str, Any] = {"batch_size": 32, "verbose": 0}
    model.fit(data.x[:samples], data.y[:samples], epochs=warm, callbacks=loggers, **fit)
    gc.collect()
    before = rss_mb()
    seen = [before]
    sampler = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: seen.append(rss_mb()))
    x, y = data.x[:samples], data.y[:samples]
    model.fit(x, y, epochs=epochs, callbacks=[*loggers, sampler], **fit)
    gc.collect()
    return rss_mb() - before, max(seen) - before


def memory_rows(data: Data, root: Path, epochs: int, warm: int, samples: int) -> list[Row]:
    control, _ = memory_growth(data, root, epochs, warm, samples, logged=False)
    growth, peak = memory_growth(data, root, epochs, warm, samples, logged=True)
    return [
        judged(
            f"7. RSS growth over {epochs} logged epochs, tiny CNN, both loggers, both writers",
            [growth],
            "MB",
            20,
        ),
        Row(f"7. largest RSS growth seen at an epoch end during those {epochs} epochs", peak, "MB"),
        Row(f"7. RSS growth over {epochs} epochs without callbacks (control)", control, "MB"),
    ]
