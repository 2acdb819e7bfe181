"""What the default callbacks cost: ``python -m benchmarks.overhead [--pairs 3] [--quick]``.

In one run, on real Fashion-MNIST: (1) epoch time of fashion_cnn with and without
ActivationLogger + FilterLogger writing to TensorBoard and MLflow's local store, alternating
runs, median of paired ratios; (2) the time ``on_epoch_end`` blocks, per callback and per stage;
(3) the tutorial way side by side; (4) memory growth over 100 logged epochs of a tiny model;
(5) one logged step on VGG16 at 224x224 and on a 512-channel layer, Grad-CAM and filter
patterns on VGG16; (6) Grad-CAM and filter patterns per logged step on fashion_cnn. Prints a
table of the targets and one of every measurement (markdown), also to ``--out`` if given.
About 10-15 minutes on 2 cores; ``--quick`` (tiny sizes, under a minute) is the smoke run."""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import logging
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from benchmarks import scale, stages
from benchmarks.common import (
    EpochClock,
    Row,
    StepTimer,
    machine_description,
    make_writers,
    median,
    mlflow_uri,
    progress,
    rss_mb,
    table_markdown,
)
from benchmarks.tutorial import TutorialLogger

__all__ = ["Config", "main", "run"]


@dataclass(frozen=True)
class Config:
    """Sizes of every measurement; ``QUICK`` is the smoke configuration."""

    pairs: int = 3
    samples: int = 60_000
    batch_size: int = 32
    probe_images: int = 11  # the experiments' probe: a bag + the first test image of each class
    warm_samples: int = 1_024  # a short fit first traces the train step outside the timed epoch
    tutorial_pairs: int = 2
    tutorial_epochs: int = 4  # the first of each fit is a warm-up; the last ends the run
    tutorial_samples: int = 640
    tutorial_layers: int | None = None  # None: every layer, as the tutorial does
    memory_epochs: int = 100
    memory_warm_epochs: int = 3
    memory_samples: int = 256
    vgg_size: int = 224
    vgg_steps: int = 3
    gradcam_steps: int = 3
    # Filter patterns on VGG16 cost about a second per filter and ascent step on 2 cores:
    # a few of each, reported per filter and step too.
    vgg_pattern_layer: str = "block3_conv3"
    vgg_pattern_filters: int = 2
    vgg_pattern_steps: int = 10
    pattern_filters: int = 16  # fashion_cnn: FilterPatternLogger's defaults
    pattern_steps: int = 30
    stage_repeats: int = 3


QUICK = Config(
    pairs=1,
    samples=256,
    probe_images=2,
    warm_samples=64,
    tutorial_pairs=1,
    tutorial_epochs=2,
    tutorial_samples=32,
    tutorial_layers=1,
    memory_epochs=4,
    memory_warm_epochs=1,
    memory_samples=32,
    vgg_size=32,
    vgg_steps=1,
    gradcam_steps=1,
    vgg_pattern_filters=1,
    vgg_pattern_steps=2,
    pattern_filters=2,
    pattern_steps=2,
    stage_repeats=1,
)

# The preprocessed photograph's range (ImageNet means off, BGR): patterns are clipped to it.
VGG_RANGE = (-124.0, 152.0)

Loggers = list[keras.callbacks.Callback]


# Models and data ----------------------------------------------------------------------------
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
    k = probe_images
    return Data(x, y, images[:k], names[:k], split.describe())


def default_loggers(probe: np.ndarray, writers: list[Any], names: Sequence[str] | None) -> Loggers:
    """ActivationLogger + FilterLogger on every layer, as the experiments use them."""
    import vizcallbacks as vc

    return [vc.ActivationLogger(probe, writers, probe_names=names), vc.FilterLogger(writers)]


# (1) and (2): epoch time with and without the loggers ---------------------------------------
@dataclass
class Overhead:
    """Paired epoch times and the loggers' own timings from the logged runs."""

    plain: list[float] = dataclasses.field(default_factory=list)
    logged: list[float] = dataclasses.field(default_factory=list)
    timings: dict[str, dict[str, list[float]]] = dataclasses.field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    blocking_per_epoch: list[float] = dataclasses.field(default_factory=list)
    model: keras.Model | None = None


def timed_epoch(data: Data, cfg: Config, loggers: Loggers) -> tuple[float, keras.Model]:
    """Seconds of one epoch over all samples, after a short fit has traced the train step.

    With fresh loggers the epoch holds their step-0 rendering in the background and the
    ``on_epoch_end`` of step 1: the work of one steady-state logged epoch.
    """
    model = fashion_cnn()
    warm = slice(0, cfg.warm_samples)
    model.fit(data.x[warm], data.y[warm], batch_size=cfg.batch_size, epochs=1, verbose=0)
    clock = EpochClock()
    model.fit(
        data.x,
        data.y,
        batch_size=cfg.batch_size,
        epochs=1,
        verbose=0,
        callbacks=clock.around(loggers),
    )
    return clock.seconds[0], model


def measure_overhead(data: Data, cfg: Config, root: Path) -> Overhead:
    """Alternate plain and logged epochs (ABBA order), ``cfg.pairs`` of each."""
    result = Overhead()
    for pair in range(cfg.pairs):
        for logged in (False, True) if pair % 2 == 0 else (True, False):
            writers = make_writers(root, f"overhead_{pair}") if logged else []
            loggers = default_loggers(data.probe, writers, data.names) if logged else []
            seconds, result.model = timed_epoch(data, cfg, loggers)
            (result.logged if logged else result.plain).append(seconds)
            for logger in loggers:
                for stage, values in logger.timings.items():
                    result.timings[type(logger).__name__][stage].extend(values)
            if logged:
                result.blocking_per_epoch.append(sum(lg.timings["blocking"][0] for lg in loggers))
            progress(
                f"pair {pair + 1}/{cfg.pairs}: {'logged' if logged else 'plain'} "
                f"epoch {seconds:.1f} s"
            )
    return result


def overhead_rows(result: Overhead, cfg: Config, stage: dict[str, float]) -> list[Row]:
    """Measured overhead, the noise it sits in, and a noise-free bound from the work itself."""
    ratios = [lg / pl for pl, lg in zip(result.plain, result.logged, strict=True)]
    diffs = [lg - pl for pl, lg in zip(result.plain, result.logged, strict=True)]
    overhead = 100 * (median(ratios) - 1)
    spread = 100 * (max(result.plain) / min(result.plain) - 1)
    # Everything the loggers do for one step, serialized, as if none of it overlapped training:
    # on_epoch_end, each logger's rendering and writing, MLflow's delivery to its store.
    work = median(result.blocking_per_epoch) + stage["deliver_mlflow"]
    work += sum(median(t["publish"]) for t in result.timings.values())
    bound = 100 * work / median(result.plain)
    n = f"{cfg.samples:,} images, batch {cfg.batch_size}, median of {cfg.pairs}"
    return [
        Row(f"1. epoch without callbacks ({n})", median(result.plain), "s"),
        Row(
            "1. epoch with ActivationLogger + FilterLogger → TensorBoard + MLflow",
            median(result.logged),
            "s",
        ),
        # Paired epochs cannot resolve 1 % while plain epochs alone differ by more.
        Row(
            "1. overhead per epoch (median of paired ratios)",
            overhead,
            "%",
            "≤ 1 %",
            overhead <= 1 if spread <= 1 else None,
        ),
        Row("1. overhead per epoch (median of paired differences)", median(diffs), "s"),
        Row("1. noise: spread of the plain epochs (slowest / fastest - 1)", spread, "%"),
        Row(
            "1. bound from the loggers' own work per epoch (blocking + background + MLflow "
            "delivery, serialized) / plain epoch",
            bound,
            "%",
        ),
    ]


def blocking_rows(result: Overhead) -> list[Row]:
    rows = []
    for name, timings in result.timings.items():
        rows += [
            Row(
                f"2. {name}.on_epoch_end blocking (median)",
                1000 * median(timings["blocking"]),
                "ms",
            ),
            Row(
                f"2. {name} compute inside it (forward pass / weight copy)",
                1000 * median(timings["compute"]),
                "ms",
            ),
            Row(
                f"2. {name} publish on its background thread (render + encode + write)",
                1000 * median(timings["publish"]),
                "ms",
            ),
        ]
    total = 1000 * median(result.blocking_per_epoch)
    rows.append(
        Row(
            "2. on_epoch_end blocking per epoch, both loggers (median)",
            total,
            "ms",
            "≤ 50 ms",
            total <= 50,
        )
    )
    return rows


def stage_rows(seconds: dict[str, float], data: Data) -> list[Row]:
    n = f"{len(data.probe)} probe images"
    images = int(seconds["images"])
    labels = [
        ("forward", f"forward pass, all layers, {n} (training thread)"),
        ("statistics", "statistics, all layers"),
        ("render", f"rendering: tiling + colour + evolution rows ({images} images)"),
        ("encode_tensorboard", f"PNG encoding for TensorBoard (tf.io.encode_png, {images})"),
        ("encode_mlflow", f"PNG encoding for MLflow (Pillow level 1, {images})"),
        ("write_tensorboard", "writing to TensorBoard (its PNG encoding included)"),
        ("write_mlflow", "writing to the MLflow spool (its PNG encoding included)"),
        ("deliver_mlflow", "MLflow delivery to the store (sender threads)"),
    ]
    return [Row(f"2. stage: {label}", 1000 * seconds[key], "ms") for key, label in labels]


# (3): the tutorial way ----------------------------------------------------------------------
def _steady(seconds: list[float]) -> list[float]:
    """Per-epoch times without the first (warm-up) one, when there are more."""
    return seconds[1:] if len(seconds) > 1 else seconds


def ours_per_epoch(data: Data, cfg: Config, root: Path, name: str) -> tuple[float, float]:
    """Median whole work and blocking time per logged epoch of the loggers, one probe image."""
    model = fashion_cnn()
    writers = make_writers(root, name)
    loggers = default_loggers(data.probe[:1], writers, None)
    timer = StepTimer(loggers, writers)
    n = cfg.tutorial_samples
    model.fit(
        data.x[:n],
        data.y[:n],
        batch_size=cfg.batch_size,
        epochs=cfg.tutorial_epochs,
        verbose=0,
        callbacks=timer.around(loggers),
    )
    blocking = [
        sum(lg.timings["blocking"][e] for lg in loggers) for e in range(cfg.tutorial_epochs)
    ]
    return median(_steady(timer.seconds)), median(_steady(blocking))


def tutorial_per_epoch(data: Data, cfg: Config, root: Path, name: str) -> float:
    """Median seconds per logged epoch of the tutorial way, one probe image."""
    model = fashion_cnn()
    tutorial = TutorialLogger(
        data.probe[:1], root / "tutorial" / name, mlflow_uri(root), name, cfg.tutorial_layers
    )
    n = cfg.tutorial_samples
    model.fit(
        data.x[:n],
        data.y[:n],
        batch_size=cfg.batch_size,
        epochs=cfg.tutorial_epochs,
        verbose=0,
        callbacks=[tutorial],
    )
    return median(_steady(tutorial.seconds))


def tutorial_rows(data: Data, cfg: Config, root: Path) -> list[Row]:
    ours, ours_blocking, theirs = [], [], []
    for pair in range(cfg.tutorial_pairs):
        for tutorial in (True, False) if pair % 2 == 0 else (False, True):
            if tutorial:
                theirs.append(tutorial_per_epoch(data, cfg, root, f"tutorial_{pair}"))
            else:
                whole, blocking = ours_per_epoch(data, cfg, root, f"ours_{pair}")
                ours.append(whole)
                ours_blocking.append(blocking)
        progress(
            f"tutorial pair {pair + 1}/{cfg.tutorial_pairs}: tutorial {theirs[-1]:.2f} s, "
            f"ours {ours[-1]:.3f} s per logged epoch"
        )
    speedup = median(t / o for t, o in zip(theirs, ours, strict=True))
    blocking_speedup = median(t / o for t, o in zip(theirs, ours_blocking, strict=True))
    return [
        Row(
            "3. tutorial way per logged epoch (1 probe image, TensorBoard + MLflow)",
            median(theirs),
            "s",
        ),
        Row(
            "3. vizcallbacks per logged epoch, whole work incl. background + MLflow delivery",
            median(ours),
            "s",
        ),
        Row(
            "3. speed-up, whole work (median of paired ratios)",
            speedup,
            "x",
            "≥ 20x",
            speedup >= 20,
        ),
        Row("3. speed-up, time training waits (on_epoch_end)", blocking_speedup, "x"),
    ]


# (4): memory --------------------------------------------------------------------------------
def memory_growth(data: Data, cfg: Config, root: Path, logged: bool) -> tuple[float, float]:
    """RSS growth (MB) over ``cfg.memory_epochs`` epochs after a warm-up fit: at the end and
    the largest seen at an epoch end."""
    model = tiny_cnn()
    writers = make_writers(root, "memory") if logged else []
    loggers = default_loggers(data.probe[:1], writers, None) if logged else []
    n = cfg.memory_samples
    fit: dict[str, Any] = {"batch_size": cfg.batch_size, "verbose": 0}
    warm = cfg.memory_warm_epochs
    model.fit(data.x[:n], data.y[:n], epochs=warm, callbacks=loggers, **fit)  # warm-up
    gc.collect()
    before = rss_mb()
    seen = [before]
    sampler = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: seen.append(rss_mb()))
    model.fit(
        data.x[:n], data.y[:n], epochs=cfg.memory_epochs, callbacks=[*loggers, sampler], **fit
    )
    gc.collect()
    return rss_mb() - before, max(seen) - before


def memory_rows(data: Data, cfg: Config, root: Path) -> list[Row]:
    control, _ = memory_growth(data, cfg, root, logged=False)
    growth, peak = memory_growth(data, cfg, root, logged=True)
    n = cfg.memory_epochs
    return [
        Row(
            f"4. RSS growth over {n} logged epochs, tiny CNN, both loggers, both writers",
            growth,
            "MB",
            "< 30 MB",
            growth < 30,
        ),
        Row(f"4. largest RSS growth seen at an epoch end during those {n} epochs", peak, "MB"),
        Row(f"4. RSS growth over {n} epochs without callbacks (control)", control, "MB"),
    ]


# (5) and issue 5: scale, Grad-CAM and filter patterns --------------------------------------
def scale_rows(cfg: Config, root: Path) -> list[Row]:
    size = cfg.vgg_size
    model, weights = scale.vgg16(size)
    image, photo = scale.photo(size)
    progress(f"VGG16 {size}x{size}: {weights}; probe: {photo}")
    every = scale.vgg_step(model, image, root, cfg.vgg_steps)
    progress(f"VGG16 step: {every}")
    wide = scale.vgg_step(model, image, root, cfg.vgg_steps, layer="block4_conv3")
    progress(f"VGG16 512-channel layer step: {wide}")
    once, reused = scale.gradcam_call_seconds(model, image)
    cam = scale.gradcam_step(model, image, root, "vgg16", cfg.gradcam_steps)
    progress(f"VGG16 Grad-CAM: grad_cam() {once:.2f} s, reused {reused:.2f} s; logger {cam}")
    layer, filters, steps = cfg.vgg_pattern_layer, cfg.vgg_pattern_filters, cfg.vgg_pattern_steps
    patterns = scale.patterns_step(model, root, "vgg16", [layer], filters, steps, VGG_RANGE)
    progress(f"VGG16 filter patterns: {patterns}")
    blocking, written, delivered = every.medians()
    _, wide_written, wide_delivered = wide.medians()
    cam_blocking, cam_written, _ = cam.medians()
    _, pattern_written, _ = patterns.medians()
    per_filter_step = median(patterns.blocking) / (filters * steps)
    vgg = f"VGG16 {size}x{size}"
    what = f"{vgg}, one logged step (13 conv grids, stats, first filters)"
    pattern = f"{vgg} FilterPatternLogger {layer}, {filters} filters x {steps} ascent steps"
    return [
        Row(f"5. {what}: on_epoch_end blocking", blocking, "s"),
        Row(f"5. {what}: rendered and written", written, "s", "< 2 s", written < 2),
        Row(f"5. {what}: until MLflow has it all", delivered, "s"),
        Row(
            f"5. {vgg} block4_conv3 (512 channels, all drawn), one step: rendered and written",
            wide_written,
            "s",
        ),
        Row(f"5. {vgg} block4_conv3 one step: until MLflow has it all", wide_delivered, "s"),
        Row(f"5. {vgg} vc.grad_cam() called once (builds and traces)", once, "s"),
        Row(f"5. {vgg} Grad-CAM, reused GradCAM (one forward + backward)", reused, "s"),
        Row(f"5. {vgg} GradCAMLogger, one logged step: on_epoch_end blocking", cam_blocking, "s"),
        Row(f"5. {vgg} GradCAMLogger, one logged step: rendered and written", cam_written, "s"),
        Row(f"5. {pattern}, one logged step: rendered and written", pattern_written, "s"),
        Row(f"5. {vgg} filter patterns {layer}: per filter and ascent step", per_filter_step, "s"),
    ]


def fashion_rows(model: keras.Model, data: Data, cfg: Config, root: Path) -> list[Row]:
    """Grad-CAM and filter patterns per logged step on the trained fashion_cnn (issue 5)."""
    cam = scale.gradcam_step(model, data.probe, root, "fashion", cfg.gradcam_steps, data.names)
    progress(f"fashion_cnn Grad-CAM: {cam}")
    filters, steps = cfg.pattern_filters, cfg.pattern_steps
    patterns = scale.patterns_step(model, root, "fashion", None, filters, steps, (0.0, 1.0))
    progress(f"fashion_cnn filter patterns: {patterns}")
    cam_blocking, cam_written, _ = cam.medians()
    pattern_blocking, pattern_written, _ = patterns.medians()
    n = f"{len(data.probe)} probe images"
    pattern = f"6. fashion_cnn FilterPatternLogger (both convs, {filters} filters x {steps} steps)"
    return [
        Row(f"6. fashion_cnn GradCAMLogger ({n}): on_epoch_end blocking", cam_blocking, "s"),
        Row(f"6. fashion_cnn GradCAMLogger ({n}): rendered and written", cam_written, "s"),
        Row(f"{pattern}: on_epoch_end blocking (the ascent)", pattern_blocking, "s"),
        Row(f"{pattern}: rendered and written", pattern_written, "s"),
    ]


# Running ------------------------------------------------------------------------------------
def run(cfg: Config, root: Path) -> list[Row]:
    """Every measurement in order, logs and MLflow store under ``root``; the table rows."""
    import mlflow

    mlflow.MlflowClient(mlflow_uri(root)).search_experiments()  # create the store untimed
    data = load_data(cfg.samples, cfg.probe_images)
    progress(f"data: {data.source}; training on {len(data.x):,} images")
    result = measure_overhead(data, cfg, root)
    assert result.model is not None
    seconds = stages.stage_seconds(result.model, data.probe, root, cfg.stage_repeats)
    progress("stages done")
    rows = overhead_rows(result, cfg, seconds) + blocking_rows(result)
    rows += stage_rows(seconds, data)
    rows += tutorial_rows(data, cfg, root)
    rows += memory_rows(data, cfg, root)
    progress("memory done")
    rows += scale_rows(cfg, root)
    return rows + fashion_rows(result.model, data, cfg, root)


def report(rows: Sequence[Row], header: Sequence[str]) -> str:
    """The header lines, the targets (a small table), then every measurement, as markdown."""
    targets = [row for row in rows if row.target]
    return "\n".join(
        [
            *header,
            "",
            "Targets:",
            "",
            table_markdown(targets),
            "",
            "Every measurement:",
            "",
            table_markdown(rows),
            "",
        ]
    )


def parse_args(argv: Sequence[str] | None) -> tuple[Config, argparse.Namespace]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.overhead", description=__doc__)
    parser.add_argument("--pairs", type=int, help="plain/logged epoch pairs (default 3)")
    parser.add_argument("--samples", type=int, help="training images per epoch (default 60000)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--out", type=Path, help="also write the tables here (and a .json)")
    parser.add_argument("--workdir", type=Path, help="keep the logs here (default: a temp dir)")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else Config()
    overrides = {k: getattr(args, k) for k in ("pairs", "samples") if getattr(args, k)}
    return dataclasses.replace(cfg, **overrides), args


def main(argv: Sequence[str] | None = None) -> list[Row]:
    cfg, args = parse_args(argv)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    keras.config.disable_interactive_logging()
    # The tutorial's sub-models and the many loggers made here retrace by design: not news.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    started = time.perf_counter()
    header = [f"Machine: {machine_description()}"]
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        rows = run(cfg, args.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="vizcallbacks-benchmark-") as tmp:
            rows = run(cfg, Path(tmp))
    command = " ".join(["python -m benchmarks.overhead", *(argv or sys.argv[1:])])
    header += [
        f"Command: `{command}`; {time.strftime('%Y-%m-%d %H:%M')}; whole run "
        f"{time.perf_counter() - started:.0f} s; load average at the end "
        + ", ".join(f"{x:.2f}" for x in os.getloadavg()),
        f"Configuration: {dataclasses.asdict(cfg)}",
    ]
    text = report(rows, header)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(
            json.dumps([dataclasses.asdict(r) for r in rows], indent=1, default=str)
        )
    return rows


if __name__ == "__main__":
    main()
